"""The account's own history: its ledger as activities, equity snapshots, and the reset.

Snapshots are set-based: one statement a round computes cash, locked margin and unrealized PnL
(at fresh prices, by the same rule as `core.rules.close_at`) for every account that has open
positions or new ledger entries since the previous round.
"""

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert

from app.balances.service import balances_view
from app.dispatch import enqueue
from app.errors import ErrorCode, abort
from app.events import wait_for_engine
from app.extensions import db
from app.markets.service import register_chosen_perpetuals
from app.models import AccountReset, LedgerEntry, Order, utcnow
from app.netting.service import positions as netting_positions
from app.prices.service import valuation
from app.trading.service import with_valuation
from core.assets import ASSETS, USD_DECIMALS
from core.enums import OrderStatus, ResetStatus
from core.events import AccountEvent, ResetEnded
from core.money import format_units, scale
from core.tasks import RESET_ACCOUNT

PERIODS = {"1D": timedelta(days=1), "1W": timedelta(days=7), "1M": timedelta(days=30), "all": None}
TIMEFRAMES = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86_400}
MAX_POINTS = 5000
MINUTE_POINTS_KEPT = timedelta(days=2)
CSV_BATCH = 1000

# {quotes} is a VALUES list of (asset, bid, ask, scale) of the fresh quotes, bound as parameters.
SNAPSHOT_ROUND = """
WITH quotes(asset, bid, ask, scale) AS (VALUES {quotes}),
open_pnl AS (
  SELECT account_id, sum(pnl)::bigint AS pnl, bool_and(priced) AS priced FROM (
    SELECT o.account_id, GREATEST(-o.margin, trunc(
             (CASE WHEN o.side = 'long' THEN q.bid - o.open_price ELSE o.open_price - q.ask END)::numeric
             * o.quantity / q.scale)) AS pnl, q.asset IS NOT NULL AS priced
    FROM orders o LEFT JOIN quotes q ON q.asset = o.asset
    WHERE o.status = 'open'
    UNION ALL  -- netting positions at the mark, as core.cross_margin.Position.unrealized values them
    SELECT p.account_id, floor((CASE WHEN p.quantity > 0 THEN q.bid * p.quantity - p.cost
                                     ELSE p.cost + q.ask * p.quantity END) / q.scale), q.asset IS NOT NULL
    FROM positions p LEFT JOIN quotes q ON q.asset = p.symbol
    WHERE p.quantity <> 0
  ) AS each_position
  GROUP BY account_id
),
previous AS (SELECT coalesce(max(taken_at), '-infinity'::timestamptz) AS at FROM equity_snapshots),
active AS (SELECT DISTINCT l.account_id FROM ledger_entries l, previous WHERE l.created_at > previous.at)
INSERT INTO equity_snapshots (account_id, taken_at, cash, locked_margin, unrealized_pnl)
SELECT b.account_id, :now, b.usd, b.locked_margin, coalesce(p.pnl, 0)
FROM balances b LEFT JOIN open_pnl p ON p.account_id = b.account_id
WHERE CASE WHEN p.account_id IS NULL THEN b.account_id IN (SELECT account_id FROM active) ELSE p.priced END
ON CONFLICT DO NOTHING
"""
# Older than two days, only the last point of each account's hour is kept.
COMPACT = text(
    """
    DELETE FROM equity_snapshots s
    WHERE s.taken_at < :cutoff AND EXISTS (
      SELECT 1 FROM equity_snapshots t
      WHERE t.account_id = s.account_id AND t.taken_at > s.taken_at
        AND t.taken_at < date_trunc('hour', s.taken_at) + interval '1 hour')
    """
)
HISTORY = text(
    """
    SELECT DISTINCT ON (bin) extract(epoch FROM date_bin(make_interval(secs => :step), taken_at,
             TIMESTAMPTZ 'epoch'))::bigint AS bin, cash, locked_margin, unrealized_pnl
    FROM equity_snapshots WHERE account_id = :account_id AND taken_at >= :start
    ORDER BY bin DESC, taken_at DESC LIMIT :limit
    """
)


# ---- activities ---------------------------------------------------------------------------
def _activity_query(account_id: int, kind: str | None):
    query = select(LedgerEntry).where(LedgerEntry.account_id == account_id).order_by(LedgerEntry.id.desc())
    return query.where(LedgerEntry.kind == kind) if kind else query


def activity(entry: LedgerEntry) -> dict:
    return {
        "id": str(entry.id),
        "type": entry.kind,
        "usd": entry.usd_delta,
        "lockedMargin": entry.locked_delta,
        "orderId": str(entry.order_id or entry.net_order_id) if entry.order_id or entry.net_order_id else None,
        "time": entry.created_at,
    }


def activities(account_id: int, kind: str | None, cursor: int | None, limit: int) -> dict:
    """Newest first, keyset-paged on the entry id: entries that arrive meanwhile are newer than any
    cursor, so paging on never skips or repeats one (an account's entries are written one at a time)."""
    query = _activity_query(account_id, kind).limit(limit + 1)
    if cursor is not None:
        query = query.where(LedgerEntry.id < cursor)
    entries = list(db.session.execute(query).scalars())
    page = {"activities": [activity(e) for e in entries[:limit]], "decimals": USD_DECIMALS}
    if len(entries) > limit:
        page["nextCursor"] = str(entries[limit - 1].id)
    return page


ACTIVITY_CSV_HEADER = ["id", "time", "type", "usd", "locked_margin", "order_id"]


def activity_csv_rows(account_id: int, kind: str | None) -> Iterator[list]:
    """Every entry, newest first, read in batches from a server-side cursor (never all in memory)."""
    result = db.session.execute(_activity_query(account_id, kind).execution_options(yield_per=CSV_BATCH))
    for entry in result.scalars():
        yield [
            entry.id,
            entry.created_at.isoformat(),
            entry.kind,
            format_units(entry.usd_delta, USD_DECIMALS),
            format_units(entry.locked_delta, USD_DECIMALS),
            entry.order_id or "",
        ]


# ---- equity snapshots ---------------------------------------------------------------------
def position_prices() -> dict:
    """What every tradable asset's positions are valued at now (`valuation`: a perpetual's fresh
    mark); a perpetual listed since this process started included."""
    register_chosen_perpetuals()
    return {asset: quote for asset in ASSETS if (quote := valuation(asset)) is not None}


def snapshot_round(now: datetime | None = None) -> int:
    """Snapshot every account with open positions (all priced fresh) or new ledger entries; returns how many."""
    now = now or utcnow()
    quotes = position_prices()
    params: dict = {"now": now}
    rows = []
    for i, (asset, quote) in enumerate(quotes.items()):
        rows.append(f"(:a{i}, CAST(:b{i} AS bigint), CAST(:k{i} AS bigint), CAST(:s{i} AS numeric))")
        params |= {f"a{i}": asset, f"b{i}": quote.bid, f"k{i}": quote.ask, f"s{i}": scale(ASSETS[asset].decimals)}
    if not rows:  # no fresh price at all: a VALUES row that matches no order
        rows.append("(NULL::text, NULL::bigint, NULL::bigint, NULL::numeric)")
    taken = db.session.execute(text(SNAPSHOT_ROUND.format(quotes=", ".join(rows))), params).rowcount
    db.session.execute(COMPACT, {"cutoff": now - MINUTE_POINTS_KEPT})
    db.session.commit()
    return taken


def portfolio_history(account_id: int, period: str, timeframe: str) -> dict:
    now = utcnow()
    start = now - PERIODS[period] if PERIODS[period] else datetime.fromtimestamp(0, now.tzinfo)
    rows = db.session.execute(
        HISTORY, {"step": TIMEFRAMES[timeframe], "account_id": account_id, "start": start, "limit": MAX_POINTS}
    ).all()
    now_s = int(now.timestamp())
    points = [_point(bin_, cash, locked, pnl) for bin_, cash, locked, pnl in reversed(rows) if bin_ <= now_s]
    live = live_equity(account_id)
    # after the last bin, even one that starts this very second (a chart's times must increase)
    live_s = max(now_s, points[-1]["time"] + 1) if points else now_s
    points.append(_point(live_s, live["cash"], live["lockedMargin"], live["unrealizedPnl"]))
    resets = db.session.execute(
        select(AccountReset.done_at).where(
            AccountReset.account_id == account_id,
            AccountReset.status == ResetStatus.DONE,
            AccountReset.done_at >= start,
        )
    ).scalars()
    return {"points": points, "resets": [int(at.timestamp()) for at in resets], "decimals": USD_DECIMALS}


def _point(time_s: int, cash: int, locked: int, unrealized: int) -> dict:
    return {
        "time": time_s,
        "equity": cash + locked + unrealized,
        "cash": cash,
        "lockedMargin": locked,
        "unrealizedPnl": unrealized,
    }


def live_equity(account_id: int) -> dict:
    """Cash, locked margin and unrealized PnL now (open positions at the latest fresh prices)."""
    balance = balances_view(account_id)
    open_orders = db.session.execute(
        select(Order).where(Order.account_id == account_id, Order.status == OrderStatus.OPEN)
    ).scalars()
    unrealized = sum(getattr(order, "unrealized_pnl", None) or 0 for order in with_valuation(list(open_orders)))
    unrealized += sum(position["unrealized_pnl"] or 0 for position in netting_positions(account_id))
    return {
        "cash": balance["USD"]["balance"],
        "lockedMargin": balance["lockedMargin"]["balance"],
        "unrealizedPnl": unrealized,
    }


# ---- reset ----------------------------------------------------------------------------------
def reset(account_id: int, idempotency_key: str | None) -> AccountReset:
    """Record the reset (once per key), hand it to the engine, and wait for it like a trade."""
    reset_id = db.session.execute(
        insert(AccountReset)
        .values(
            id=uuid.uuid4(),
            account_id=account_id,
            idempotency_key=idempotency_key,
            status=ResetStatus.PENDING,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
        .returning(AccountReset.id)
    ).scalar_one_or_none()
    if reset_id is None:  # this key was used before: the same reset, never a second one
        reset_id = db.session.execute(
            select(AccountReset.id).where(
                AccountReset.account_id == account_id, AccountReset.idempotency_key == idempotency_key
            )
        ).scalar_one()
    db.session.commit()
    # again for a retried key: the engine does a reset once
    enqueue(RESET_ACCOUNT, str(reset_id), account_id=account_id)

    def reload() -> AccountReset:
        query = select(AccountReset).where(AccountReset.id == reset_id).execution_options(populate_existing=True)
        return db.session.execute(query).scalar_one()

    def about(event: AccountEvent) -> bool:
        return isinstance(event, ResetEnded) and event.reset_id == str(reset_id)

    done, error = wait_for_engine(account_id, about, reload, lambda r: r.status != ResetStatus.PENDING)
    if error or done.status == ResetStatus.FAILED:
        abort(ErrorCode.PRICE_UNAVAILABLE, "No fresh price to close every position at; nothing was changed")
    return done
