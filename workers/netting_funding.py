"""Funding of netting positions at a boundary, inside the funding round of `workers.funding`.

A netting position changes with every fill, so the quantity it held at the boundary is its
quantity now with the fills since the boundary taken back out: exact however late the round
runs (an engine down at the boundary catches up at that boundary's quantity, rate and mark).
Exactly once: a payment's primary key is (account, market, boundary), written with its ledger
entry and the account's cash in one transaction per batch, choosing only unpaid positions. The
cash of a netting account may go below zero (cross margin): nothing is waived here, the
account's liquidation deals with it.
"""

from collections import defaultdict
from datetime import timedelta

from flask import current_app
from sqlalchemy import text

from app.extensions import db
from app.models import FundingRate, utcnow
from core import funding
from core.enums import Side
from core.events import BalanceState, FundingPaid
from core.shards import shard_of
from workers.execution import publish

# Each position of the market that was open at the boundary, at its quantity then.
DUE = text(
    """
    SELECT account_id, quantity FROM (
      SELECT p.account_id, p.quantity - COALESCE((
        SELECT sum(CASE WHEN f.side = 'buy' THEN f.quantity ELSE -f.quantity END) FROM fills f
        WHERE f.account_id = p.account_id AND f.symbol = p.symbol AND f.created_at > :boundary
      ), 0) AS quantity
      FROM positions p
      WHERE p.symbol = :market AND (p.quantity <> 0 OR p.updated_at > :boundary)
        AND NOT EXISTS (SELECT 1 FROM net_funding_payments n
                        WHERE n.account_id = p.account_id AND n.symbol = p.symbol AND n.boundary = :boundary)
    ) AS at_boundary WHERE quantity <> 0 ORDER BY account_id
    """
)
LOCK = text("SELECT account_id, usd FROM balances WHERE account_id = ANY(CAST(:accounts AS bigint[])) FOR UPDATE")
INSERT_PAYMENTS = text(
    """
    INSERT INTO net_funding_payments (account_id, symbol, boundary, rate, mark, quantity, amount)
    SELECT account_id, :market, :boundary, :rate, :mark, quantity, amount
    FROM unnest(CAST(:account AS bigint[]), CAST(:quantity AS bigint[]), CAST(:amount AS bigint[]))
      AS v(account_id, quantity, amount)
    """
)
INSERT_ENTRIES = text(
    """
    INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
    SELECT account_id, 'funding', amount, 0, :now
    FROM unnest(CAST(:account AS bigint[]), CAST(:amount AS bigint[])) AS v(account_id, amount) WHERE amount <> 0
    """
)
UPDATE_CASH = text(
    """
    UPDATE balances b SET usd = b.usd + v.amount
    FROM unnest(CAST(:account AS bigint[]), CAST(:amount AS bigint[])) AS v(account_id, amount)
    WHERE b.account_id = v.account_id
    """
)


def _array(items) -> str:
    return "{" + ",".join(str(item) for item in items) + "}"


def settle_round(shards: list[int], rate: FundingRate) -> int:
    """Pay the netting positions of `shards` on the rate's market at its boundary. Returns how many."""
    shard_count, owned = current_app.config["ENGINE_SHARDS"], set(shards)
    params = {"market": rate.market, "boundary": rate.boundary}
    due = [row for row in db.session.execute(DUE, params) if shard_of(row.account_id, shard_count) in owned]
    db.session.rollback()
    size = current_app.config["FUNDING_BATCH"]
    for start in range(0, len(due), size):
        _settle_batch(due[start : start + size], rate)
    return len(due)


def _settle_batch(batch: list, rate: FundingRate) -> None:
    accounts = [row.account_id for row in batch]  # one position per account and market
    cash = dict(db.session.execute(LOCK, {"accounts": _array(accounts)}).all())
    amounts = [
        funding.payment(Side.LONG if row.quantity > 0 else Side.SHORT, abs(row.quantity), rate.rate, rate.mark)
        for row in batch
    ]
    columns = {"account": _array(accounts), "amount": _array(amounts)}
    figures = {"market": rate.market, "boundary": rate.boundary, "rate": rate.rate, "mark": rate.mark}
    connection = db.session.connection()
    with connection.connection.driver_connection.pipeline():
        connection.execute(INSERT_PAYMENTS, figures | columns | {"quantity": _array(r.quantity for r in batch)})
        connection.execute(INSERT_ENTRIES, {"now": utcnow(), **columns})
        connection.execute(UPDATE_CASH, columns)
        db.session.commit()
    boundary_ms = (rate.boundary - funding.EPOCH) // timedelta(milliseconds=1)
    after: dict[int, int] = defaultdict(int)
    for account, amount in zip(accounts, amounts, strict=True):
        after[account] = cash[account] + amount
    publish(
        *(
            FundingPaid(account, rate.market, boundary_ms, amount, BalanceState(after[account], 0))
            for account, amount in zip(accounts, amounts, strict=True)
        )
    )
