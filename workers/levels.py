"""The engine's side of the trigger levels (`core.triggers`): tightened after each commit that
opens a position or places an order, compared with the latest quote at once, and recomputed from
the database for the shards a trigger check or a sweep just covered."""

from collections import defaultdict
from collections.abc import Iterable

from flask import current_app
from sqlalchemy import select

from app.extensions import db, redis_client
from app.models import NetOrder, Order, Position
from app.prices.service import fresh_quote
from core.assets import ASSETS
from core.enums import NetOrderStatus, OrderStatus, OrderType, Side, TradeSide
from core.keys import TRIGGER_LEVELS_SWEPT_KEY
from core.shards import shard_of
from core.tasks import request_trigger_check
from core.triggers import Levels, TriggerLevels, fold, of_position, of_working
from workers.shards import account_shard

LEVEL_COLUMNS = (
    Order.asset,
    Order.account_id,
    Order.status,
    Order.side,
    Order.order_type,
    Order.liquidation_price,
    Order.stop_loss,
    Order.take_profit,
    Order.limit_price,
    Order.stop_price,
)


def levels_of(order) -> Levels:
    """Where an open position or a working order triggers (anything with the order's columns)."""
    if order.status == OrderStatus.OPEN:
        return of_position(Side(order.side), order.liquidation_price, order.stop_loss, order.take_profit)
    price = order.limit_price if order.order_type == OrderType.LIMIT else order.stop_price
    return of_working(OrderType(order.order_type), Side(order.side), price)


def netting_order_levels(side: str, price: int) -> Levels:
    """A working netting limit is reached as a buy's ask falls to its price or a sell's bid rises to it."""
    return of_working(OrderType.LIMIT, Side.LONG if side == TradeSide.BUY else Side.SHORT, price)


def netting_position_levels(quantity: int, liquidation_price: int | None) -> Levels:
    """A netting position's estimated liquidation price, crossed by its mark (bid = ask = mark)."""
    if liquidation_price is None or quantity == 0:
        return Levels()
    return Levels(bid_at_or_below=liquidation_price) if quantity > 0 else Levels(ask_at_or_above=liquidation_price)


NETTING_WORKING = (NetOrderStatus.NEW, NetOrderStatus.PARTIALLY_FILLED)


def netting_trigger_levels(trigger_price: int, above: bool) -> Levels:
    """A trigger order waiting for its price: the quote's nearer side reaching it asks for a check
    (which then compares the price it watches: mark, mid or index)."""
    return Levels(ask_at_or_above=trigger_price) if above else Levels(bid_at_or_below=trigger_price)


def added_netting(orders: Iterable[NetOrder], positions: Iterable[Position]) -> dict[tuple[str, int], Levels]:
    """As `added`, for netting accounts' working orders and positions."""
    shards = current_app.config["ENGINE_SHARDS"]
    tightened: dict[tuple[str, int], Levels] = defaultdict(Levels)
    for order in orders:
        key = (order.symbol, shard_of(order.account_id, shards))
        if order.status in NETTING_WORKING and order.price is not None:
            tightened[key] = tightened[key].tighter(netting_order_levels(order.side, order.price))
        elif order.status == NetOrderStatus.TRIGGER_PENDING and order.trigger_above is not None:
            tightened[key] = tightened[key].tighter(netting_trigger_levels(order.trigger_price, order.trigger_above))
    for row in positions:
        if row.quantity and row.liquidation_price is not None:
            key = (row.symbol, shard_of(row.account_id, shards))
            tightened[key] = tightened[key].tighter(netting_position_levels(row.quantity, row.liquidation_price))
    return tightened


# (asset, shard) -> the price (quote time, book update) this process last checked that shard at
_checked_at: dict[tuple[str, int], tuple] = {}


def unchecked(asset: str, shards: Iterable[int], price: tuple) -> list[int]:
    """Those of `shards` not checked at this very price yet."""
    return [shard for shard in shards if _checked_at.get((asset, shard)) != price]


def checked(asset: str, shards: Iterable[int], price: tuple) -> None:
    _checked_at.update(((asset, shard), price) for shard in shards)


def added(orders: Iterable[Order]) -> dict[tuple[str, int], Levels]:
    """The levels that open positions and working orders among `orders` add, by market and shard:
    taken before the commit, which leaves the rows unloaded."""
    shards = current_app.config["ENGINE_SHARDS"]
    tightened: dict[tuple[str, int], Levels] = defaultdict(Levels)
    for order in orders:
        if order.status in (OrderStatus.OPEN, OrderStatus.WORKING):
            key = (order.asset, shard_of(order.account_id, shards))
            tightened[key] = tightened[key].tighter(levels_of(order))
    return tightened


def track(tightened: dict[tuple[str, int], Levels]) -> None:
    """After the commit: levels `added` join their shards' levels; a quote that already crosses
    them gets its trigger check now, not at the next move (the poller compared it with the levels
    before they were tightened)."""
    store = TriggerLevels(redis_client)
    for (asset, shard), levels in tightened.items():
        store.tighten(asset, shard, levels)
    for asset in {asset for asset, _ in tightened}:
        by_shard = {shard: levels for (a, shard), levels in tightened.items() if a == asset}
        _check_crossed(asset, by_shard, recheck=True)


def _check_crossed(asset: str, by_shard: dict[int, Levels], recheck: bool = False) -> None:
    """Request a trigger check for the shards whose levels the latest quote already crosses;
    `recheck`: also where this process already checked them at this very price (before the
    levels that now cross it)."""
    quote = fresh_quote(asset)
    if quote is None:
        return
    crossed = [shard for shard, levels in by_shard.items() if levels.crossed(quote.bid, quote.ask)]
    if recheck:
        for shard in crossed:
            _checked_at.pop((asset, shard), None)
    request_trigger_check(redis_client, current_app.extensions["celery"], asset, crossed)


def _netting_levels(shards: list[int], assets: Iterable[str] | None) -> list[tuple[str, int, Levels]]:
    """The levels of the shards' netting working orders and open positions."""
    orders = select(
        NetOrder.symbol,
        NetOrder.account_id,
        NetOrder.status,
        NetOrder.side,
        NetOrder.price,
        NetOrder.trigger_price,
        NetOrder.trigger_above,
    ).where(
        NetOrder.status.in_([*NETTING_WORKING, NetOrderStatus.TRIGGER_PENDING]),
        account_shard(NetOrder.account_id).in_(shards),
    )
    positions = select(Position.symbol, Position.account_id, Position.quantity, Position.liquidation_price).where(
        Position.quantity != 0, account_shard(Position.account_id).in_(shards)
    )
    if assets is not None:
        orders = orders.where(NetOrder.symbol.in_(sorted(set(assets))))
        positions = positions.where(Position.symbol.in_(sorted(set(assets))))
    found = [
        (
            r.symbol,
            r.account_id,
            netting_order_levels(r.side, r.price)
            if r.status in NETTING_WORKING
            else netting_trigger_levels(r.trigger_price, r.trigger_above),
        )
        for r in db.session.execute(orders)
        if r.status in NETTING_WORKING or r.trigger_above is not None
    ]
    found += [
        (r.symbol, r.account_id, netting_position_levels(r.quantity, r.liquidation_price))
        for r in db.session.execute(positions)
    ]
    return found


SWEEP_LEVELS_EVERY_S = 60


def sweep(shard: int) -> bool:
    """The backstop for levels lost with Redis (or left too tight by closes and cancels where no
    check came since): recompute the shard's levels of every market, at most every
    SWEEP_LEVELS_EVERY_S, and check the shards its latest quotes cross. Whether it ran."""
    if redis_client.set(TRIGGER_LEVELS_SWEPT_KEY.format(shard=shard), 1, nx=True, ex=SWEEP_LEVELS_EVERY_S):
        recompute([shard], check_crossed=True)
        return True
    return False


def recompute(shards: Iterable[int], assets: Iterable[str] | None = None, check_crossed: bool = False) -> None:
    """Put the levels of `shards` (on `assets`, or every market) back to what their open positions
    and working orders say: what closes and cancels left too tight loosens again. `check_crossed`
    (the sweep, the backstop for levels lost with Redis): request a check where the latest quote
    crosses them. Never after a trigger check: a limit the book holds beyond its limit stays
    crossed, and would be checked again and again at one price."""
    shards = sorted(set(shards))
    query = select(*LEVEL_COLUMNS).where(
        Order.status.in_([OrderStatus.OPEN, OrderStatus.WORKING]), account_shard(Order.account_id).in_(shards)
    )
    if assets is not None:
        query = query.where(Order.asset.in_(sorted(set(assets))))
    by_market: dict[str, dict[int, list[Levels]]] = defaultdict(lambda: defaultdict(list))
    count = current_app.config["ENGINE_SHARDS"]
    for row in db.session.execute(query):
        by_market[row.asset][shard_of(row.account_id, count)].append(levels_of(row))
    for symbol, account_id, levels in _netting_levels(shards, assets):
        by_market[symbol][shard_of(account_id, count)].append(levels)
    db.session.rollback()
    store = TriggerLevels(redis_client)
    for asset in sorted(set(assets)) if assets is not None else ASSETS:
        by_shard = {shard: fold(by_market[asset][shard]) for shard in shards}
        store.replace(asset, by_shard)
        if check_crossed:
            _check_crossed(asset, by_shard)
