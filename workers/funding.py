"""Funding rounds on the engine (`core.funding`): each shard settles every recorded boundary of
every perpetual, oldest first, for the positions of its own accounts, in short transactions.

The poller records each boundary's rate and mark in Redis as it happens (`core.marks`); the sweep
(every few seconds per shard) copies them into `funding_rates` and settles what its shard has not
settled yet. So an engine or beat that was down at a boundary catches up later, at that
boundary's figures.

Exactly once: a payment's primary key is (position, boundary), and each batch writes its payments
with their ledger entries and balances in one transaction, choosing only positions without a
payment for the boundary. A process killed mid-round leaves whole batches behind; the next sweep
finishes the round. `funding_settled` then records the shard's progress per market.
"""

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import DateTime, String, and_, column, select, text, values
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db, redis_client
from app.markets.service import perpetual_symbols, price_decimals
from app.models import FundingRate, FundingSettled, utcnow
from core import funding, rules
from core.enums import Side
from core.events import BalanceState, FundingPaid
from core.marks import MarkStore
from core.shards import shard_of
from workers import levels, netting_funding
from workers.execution import publish

log = logging.getLogger(__name__)


def record_rates() -> int:
    """Copy the boundaries the poller recorded in Redis into `funding_rates` (every shard's sweep
    may; the first wins), then forget them in Redis. Returns how many it found."""
    store = MarkStore(redis_client)
    recorded = store.funding_rounds(perpetual_symbols())
    rows = [
        {"market": market, "boundary": _time(boundary), "rate": rate, "mark": mark}
        for market, rounds in recorded.items()
        for boundary, (rate, mark) in rounds.items()
    ]
    if rows:
        db.session.execute(insert(FundingRate).values(rows).on_conflict_do_nothing())
        db.session.commit()
        for market, rounds in recorded.items():
            store.forget_funding(market, list(rounds))
    return len(rows)


CHECK_AT_MOST_EVERY_S = 1.0
_checked_at = float("-inf")


def settle_now_and_then(shards: Iterable[int]) -> int:
    """`settle_due` for the sweeps: the sweeps of all a process's shards arrive together every few
    seconds, and one check covers them all."""
    global _checked_at
    if time.monotonic() - _checked_at < CHECK_AT_MOST_EVERY_S:
        return 0
    _checked_at = time.monotonic()
    return settle_due(shards)


def settle_due(shards: Iterable[int]) -> int:
    """Settle every recorded boundary that any of `shards` (this process's) has not settled,
    oldest first. Returns how many payments it made."""
    record_rates()
    shards = sorted(shards)
    progress: dict[str, dict[int, datetime]] = defaultdict(dict)
    for row in db.session.scalars(select(FundingSettled).where(FundingSettled.shard.in_(shards))):
        progress[row.market][row.shard] = row.boundary
    markets = perpetual_symbols()
    if not markets:
        db.session.rollback()
        return 0
    floors = [min(progress[market].get(shard, EPOCH) for shard in shards) for market in markets]
    since = values(column("market", String), column("floor", DateTime(timezone=True)), name="since")
    since = since.data(list(zip(markets, floors, strict=True)))
    due = db.session.scalars(
        select(FundingRate)
        .join(since, and_(FundingRate.market == since.c.market, FundingRate.boundary > since.c.floor))
        .order_by(FundingRate.boundary, FundingRate.market)
    ).all()
    db.session.rollback()
    paid = 0
    for rate in due:
        behind = [shard for shard in shards if progress[rate.market].get(shard, EPOCH) < rate.boundary]
        paid += settle_round(behind, rate)
    return paid


DUE_POSITIONS = text(
    """
    SELECT o.id, o.account_id, o.side, o.quantity, o.margin, o.status, o.open_price FROM orders o
    WHERE o.asset = :market AND o.opened_at <= :boundary
      AND (o.status = 'open' OR (o.status = 'closed' AND o.closed_at > :boundary))
      AND NOT EXISTS (SELECT 1 FROM funding_payments p WHERE p.order_id = o.id AND p.boundary = :boundary)
    ORDER BY o.account_id, o.id
    """
)
LOCK_BALANCES = text(
    "SELECT account_id, usd, locked_margin FROM balances WHERE account_id = ANY(CAST(:accounts AS bigint[])) FOR UPDATE"
)
INSERT_PAYMENTS = text(
    """
    INSERT INTO funding_payments (order_id, boundary, account_id, market, rate, mark, quantity, amount, waived)
    SELECT id, :boundary, account_id, :market, :rate, :mark, quantity, amount, waived
    FROM unnest(CAST(:id AS uuid[]), CAST(:account AS bigint[]), CAST(:quantity AS bigint[]),
                CAST(:amount AS bigint[]), CAST(:waived AS bigint[])) AS v(id, account_id, quantity, amount, waived)
    """
)
INSERT_ENTRIES = text(
    """
    INSERT INTO ledger_entries (account_id, order_id, kind, usd_delta, locked_delta, created_at)
    SELECT account_id, id, 'funding', usd, locked, :now
    FROM unnest(CAST(:account AS bigint[]), CAST(:id AS uuid[]), CAST(:usd AS bigint[]), CAST(:locked AS bigint[]))
      AS v(account_id, id, usd, locked)
    """
)
UPDATE_BALANCES = text(
    """
    UPDATE balances b SET usd = v.usd, locked_margin = v.locked
    FROM unnest(CAST(:accounts AS bigint[]), CAST(:usd AS bigint[]), CAST(:locked AS bigint[]))
      AS v(account_id, usd, locked)
    WHERE b.account_id = v.account_id
    """
)
UPDATE_MARGINS = text(
    """
    UPDATE orders o SET margin = v.margin, liquidation_price = v.liquidation_price
    FROM unnest(CAST(:id AS uuid[]), CAST(:margin AS bigint[]), CAST(:liquidation_price AS bigint[]))
      AS v(id, margin, liquidation_price)
    WHERE o.id = v.id
    """
)


def settle_round(shards: list[int], rate: FundingRate) -> int:
    """One market's boundary for the positions of `shards`: the unpaid ones listed once (this
    process is their one writer: nothing changes them meanwhile), then settled in transactions of
    about FUNDING_BATCH positions (an account's never split), each locking its accounts' balances
    and committing payments, ledger entries, balances and moved margins together; then the
    shards' progress."""
    shard_count = current_app.config["ENGINE_SHARDS"]
    owned = set(shards)
    params = {"market": rate.market, "boundary": rate.boundary}
    listed = db.session.execute(DUE_POSITIONS, params).all()
    unpaid = [row for row in listed if shard_of(row.account_id, shard_count) in owned]
    db.session.rollback()
    paid, margins_changed = 0, False
    for batch in _batches(unpaid, current_app.config["FUNDING_BATCH"]):
        settled, changed_margin = _settle_batch(batch, rate)
        paid, margins_changed = paid + settled, margins_changed or changed_margin
    paid += netting_funding.settle_round(shards, rate)
    for shard in shards:
        db.session.execute(
            insert(FundingSettled)
            .values(shard=shard, market=rate.market, boundary=rate.boundary)
            .on_conflict_do_update(index_elements=["shard", "market"], set_={"boundary": rate.boundary})
        )
    db.session.commit()
    if margins_changed:
        levels.recompute(shards, [rate.market], check_crossed=True)
    if paid:
        log.info("funding of %s at %s: %d positions of shards %s", rate.market, rate.boundary, paid, shards)
    return paid


def _batches(unpaid: list, size: int) -> Iterator[list]:
    """Runs of positions (ordered by account) of about `size`, never splitting an account's."""
    batch: list = []
    for position in unpaid:
        if len(batch) >= size and position.account_id != batch[-1].account_id:
            yield batch
            batch = []
        batch.append(position)
    if batch:
        yield batch


def _array(items: Iterable) -> str:
    """A PostgreSQL array literal (cast in the statement): psycopg's own dumping of lists took a
    third of a round's time."""
    return "{" + ",".join("NULL" if item is None else str(item) for item in items) + "}"


def _settle_batch(batch: list, rate: FundingRate) -> tuple[int, bool]:
    """Pay a batch's positions (`core.funding`) in one transaction, written in one round trip;
    (how many, whether a margin moved)."""
    accounts = sorted({position.account_id for position in batch})
    locked_rows = db.session.execute(LOCK_BALANCES, {"accounts": _array(accounts)})
    balances = {account: [usd, locked] for account, usd, locked in locked_rows}
    ratio, decimals = current_app.config["LIQUIDATION_RATIO"], price_decimals(rate.market)
    paid: dict[str, list] = defaultdict(list)  # a column per name, a row per position
    moved: dict[str, list] = defaultdict(list)  # the positions whose margin paid a part
    for position in batch:
        side, balance = Side(position.side), balances[position.account_id]
        owed = funding.payment(side, position.quantity, rate.rate, rate.mark)
        taken = funding.split(owed, balance[0], position.margin, position.status == "open")
        balance[0], balance[1] = balance[0] + taken.usd, balance[1] + taken.margin
        signed = position.quantity if side == Side.LONG else -position.quantity
        row = (position.id, position.account_id, signed, taken.settled, taken.waived, taken.usd, taken.margin)
        for name, value in zip(PAID_COLUMNS, row, strict=True):
            paid[name].append(value)
        if taken.margin:
            margin = position.margin + taken.margin
            level = rules.liquidation_price(side, position.open_price, position.quantity, margin, ratio, decimals)
            for name, value in (("id", position.id), ("margin", margin), ("liquidation_price", level)):
                moved[name].append(value)
    entries = [i for i, amount in enumerate(paid["amount"]) if amount]  # nothing moved: no ledger entry
    entry = {name: _array(paid[name][i] for i in entries) for name in ("id", "account", "usd", "locked")}
    figures = {"boundary": rate.boundary, "market": rate.market, "rate": rate.rate, "mark": rate.mark}
    after = {"accounts": _array(accounts), "usd": _array(balances[a][0] for a in accounts)}
    connection = db.session.connection()
    with connection.connection.driver_connection.pipeline():
        connection.execute(INSERT_PAYMENTS, figures | {name: _array(values) for name, values in paid.items()})
        connection.execute(INSERT_ENTRIES, {"now": utcnow(), **entry})
        connection.execute(UPDATE_BALANCES, after | {"locked": _array(balances[a][1] for a in accounts)})
        if moved:
            connection.execute(UPDATE_MARGINS, {name: _array(values) for name, values in moved.items()})
        db.session.commit()
    by_account: dict[int, int] = defaultdict(int)
    for account, amount in zip(paid["account"], paid["amount"], strict=True):
        by_account[account] += amount
    boundary_ms = (rate.boundary - EPOCH) // timedelta(milliseconds=1)
    publish(
        *(
            FundingPaid(account, rate.market, boundary_ms, amount, BalanceState(*balances[account]))
            for account, amount in by_account.items()
        )
    )
    return len(batch), bool(moved)


PAID_COLUMNS = ("id", "account", "quantity", "amount", "waived", "usd", "locked")

EPOCH = funding.EPOCH


def _time(boundary_ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=boundary_ms)
