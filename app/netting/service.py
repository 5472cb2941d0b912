"""Netting orders (Backpack's model): checked against the market's filters, recorded pending in
one statement, executed by the engine (`workers.netting_execution`), answered once it has.

Quantities arrive and leave in the market's quantity decimals and are kept in QUANTITY_DECIMALS
inside; prices in the market's price decimals, USD in cents."""

import uuid
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from sqlalchemy import bindparam, select
from sqlalchemy.dialects.postgresql import insert

from app.dispatch import enqueue, wake_engine
from app.errors import ErrorCode, abort
from app.events import wait_for_engine
from app.extensions import autocommit, db
from app.markets.service import asset_named, book_state, netting_spec
from app.models import Account, Balance, Fill, NetFundingPayment, NetOrder, Position, utcnow
from app.prices.service import fresh_mark, fresh_quote
from core import cross_margin, netting
from core.assets import QUANTITY_DECIMALS, Asset
from core.enums import AccountMode, NetOrderStatus, NetRejectReason, TradeSide, TriggerBy
from core.events import AccountEvent, RequestFailed
from core.markets import BookState
from core.money import format_units, scale
from core.net_events import NetOrderChanged, NetOrderState, PositionState
from core.tasks import CANCEL_NET_ORDER

REJECTIONS = {
    NetRejectReason.PRICE_UNAVAILABLE: (ErrorCode.PRICE_UNAVAILABLE, "No fresh price for this market"),
    NetRejectReason.INSUFFICIENT_MARGIN: (
        ErrorCode.INSUFFICIENT_MARGIN,
        "The account's equity after this order would not cover its initial margin",
    ),
    NetRejectReason.INSUFFICIENT_LIQUIDITY: (ErrorCode.INSUFFICIENT_LIQUIDITY, "The visible book cannot fill it"),
    NetRejectReason.QUANTITY_TOO_SMALL: (
        ErrorCode.INVALID_QUANTITY,
        "quoteQuantity buys less than the market's minQuantity",
    ),
    NetRejectReason.REDUCE_ONLY_NOT_REDUCING: (
        ErrorCode.REDUCE_ONLY,
        "reduceOnly: the order would not reduce the position (none open, or on the same side)",
    ),
    NetRejectReason.POST_ONLY_WOULD_TAKE: (ErrorCode.POST_ONLY, "postOnly: the order would take liquidity now"),
    NetRejectReason.TOO_MANY_WORKING_ORDERS: (
        ErrorCode.TOO_MANY_WORKING_ORDERS,
        "The account has MAX_WORKING_ORDERS working orders already; cancel one first",
    ),
    NetRejectReason.EXPIRED: (ErrorCode.EXPIRED, "Not executed within ORDER_MAX_DELAY_S; nothing was traded"),
}

NEW_FIELDS = (
    "id",
    "account_id",
    "symbol",
    "side",
    "order_type",
    "status",
    "quantity",
    "quote_quantity",
    "price",
    "time_in_force",
    "post_only",
    "reduce_only",
    "client_id",
    "executed_quantity",
    "executed_quote",
    "fee",
    "liquidation",
    "trigger_price",
    "trigger_by",
    "take_profit",
    "stop_loss",
    "created_at",
)
# The order, if its account is a netting one and not archived: no round trip of its own.
INSERT_NET_ORDER = (
    insert(NetOrder.__table__)
    .from_select(
        NEW_FIELDS,
        select(*(bindparam(name, type_=NetOrder.__table__.c[name].type) for name in NEW_FIELDS)).where(
            Account.id == bindparam("account_id"),
            Account.archived_at.is_(None),
            Account.mode == AccountMode.NETTING,
        ),
    )
    .returning(NetOrder.__table__.c.id)
)
NET_ORDER_COLUMNS = tuple(column.name for column in NetOrder.__table__.columns)
ORDER_BY_ID = select(NetOrder).where(NetOrder.id == bindparam("order_id")).execution_options(populate_existing=True)


def lot(asset: Asset) -> int:
    """Internal quantity units per unit of the market's quantity decimals."""
    return 10 ** (QUANTITY_DECIMALS - asset.quantity_decimals)


def _market(symbol: str) -> Asset:
    asset = asset_named(symbol)
    if asset is None or not asset.perpetual or asset.imf is None:
        abort(ErrorCode.VALIDATION, f"{symbol} is not a perpetual this service trades (GET /api/v1/markets)")
    state = book_state(symbol)
    if state != BookState.OPEN:
        abort(ErrorCode.MARKET_NOT_OPEN, f"{symbol} is {state}: it takes no new orders")
    return asset


def _checked(asset: Asset, body: dict) -> dict:
    """The order's figures inside, each on the market's filters (a 400 naming the filter)."""
    for name in ("price", "triggerPrice", "takeProfit", "stopLoss"):
        if body.get(name) is not None and body[name] % asset.tick:
            tick = format_units(asset.tick, asset.decimals)
            abort(ErrorCode.INVALID_PRICE, f"{name} {body[name]} is not on {asset.symbol}'s tickSize {tick}")
    price = body.get("price")
    quantity = body.get("quantity")
    if quantity is not None:
        quantity *= lot(asset)
        if quantity % asset.step or quantity < asset.min_quantity:
            step = format_units(asset.step // lot(asset), asset.quantity_decimals)
            minimum = format_units(asset.min_quantity // lot(asset), asset.quantity_decimals)
            abort(
                ErrorCode.INVALID_QUANTITY,
                f"quantity must be a multiple of {asset.symbol}'s stepSize {step}, at least its minQuantity {minimum}",
            )
    return {"quantity": quantity, "price": price}


def create_order(account_id: int, body: dict) -> dict:
    """Record the order pending, wake the engine, and answer with the order as it executed."""
    asset = _market(body["symbol"])
    figures = _checked(asset, body)
    quote = fresh_quote(asset.symbol)
    if quote is None:
        abort(ErrorCode.PRICE_UNAVAILABLE, f"No fresh price for {asset.symbol}")
    buying = body["side"] == TradeSide.BUY
    reference = body.get("price") or body.get("triggerPrice") or (quote.ask if buying else quote.bid)
    if not netting.stops_on_the_right_side(
        TradeSide(body["side"]), reference, body.get("takeProfit"), body.get("stopLoss")
    ):
        side = "above" if buying else "below"
        abort(
            ErrorCode.VALIDATION,
            f"a {body['side']}'s takeProfit must be {side} the price it opens at and its stopLoss on the other side",
        )
    order_id = uuid.uuid4()
    values = dict(
        id=order_id,
        account_id=account_id,
        symbol=asset.symbol,
        side=body["side"],
        order_type=body["orderType"],
        status=NetOrderStatus.PENDING,
        quantity=figures["quantity"],
        quote_quantity=body.get("quoteQuantity"),
        price=figures["price"],
        time_in_force=body["timeInForce"],
        post_only=body["postOnly"],
        reduce_only=body["reduceOnly"],
        client_id=body.get("clientId"),
        executed_quantity=0,
        executed_quote=0,
        fee=0,
        liquidation=False,
        trigger_price=body.get("triggerPrice"),
        trigger_by=(body.get("triggerBy") or TriggerBy.MARK) if body.get("triggerPrice") else None,
        take_profit=body.get("takeProfit"),
        stop_loss=body.get("stopLoss"),
        created_at=utcnow(),
    )

    def record_and_wake() -> None:
        with autocommit() as connection:
            if connection.execute(INSERT_NET_ORDER, values).first() is None:
                _refuse(connection.execute(select(Account.mode).where(Account.id == account_id)).scalar())
        wake_engine(account_id)

    found, _ = _wait(
        account_id,
        order_id,
        lambda o: o.status != NetOrderStatus.PENDING,
        record_and_wake,
        from_event=lambda event: event if isinstance(event, NetOrderChanged) else None,
    )
    # its first event carries the order and every fill it made: nothing to read again
    shown = event_view(found) if isinstance(found, NetOrderChanged) else view(found)
    if shown["status"] == NetOrderStatus.REJECTED:
        code, message = REJECTIONS[NetRejectReason(shown["reject_reason"])]
        abort(code, message)
    return shown


def _refuse(mode: str | None) -> None:
    if mode == AccountMode.HEDGING:
        abort(ErrorCode.WRONG_ACCOUNT_MODE, "This is a hedging account: trade it with POST /api/v1/trade/create")
    abort(ErrorCode.ACCOUNT_ARCHIVED, "This account is archived: it takes no new orders")


def _wait(account_id: int, order_id: uuid.UUID, done, send=None, from_event=lambda _event: None):
    def reload() -> NetOrder:
        return db.session.execute(ORDER_BY_ID, {"order_id": order_id}).scalar_one()

    def about(event: AccountEvent) -> bool:
        return isinstance(event, NetOrderChanged | RequestFailed) and event.order_id == str(order_id)

    return wait_for_engine(account_id, about, reload, done, send, from_event)


def _order_key(order_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(order_id))
    except ValueError:
        abort(ErrorCode.NOT_FOUND, "No such order")


def get_order(account_id: int, order_id: str) -> dict:
    order = db.session.execute(ORDER_BY_ID, {"order_id": _order_key(order_id)}).scalar_one_or_none()
    if order is None or order.account_id != account_id:
        abort(ErrorCode.NOT_FOUND, "No such order")
    return view(order)


def cancel(account_id: int, order_id: str) -> dict:
    """Cancel a working order through the engine, so it cannot race the order's fill."""
    key = _order_key(order_id)
    order = db.session.execute(ORDER_BY_ID, {"order_id": key}).scalar_one_or_none()
    if order is None or order.account_id != account_id:
        abort(ErrorCode.NOT_FOUND, "No such order")
    working = (NetOrderStatus.NEW, NetOrderStatus.PARTIALLY_FILLED, NetOrderStatus.TRIGGER_PENDING)
    if order.status not in working:
        abort(ErrorCode.NOT_WORKING, f"The order is {order.status}, not working")
    db.session.rollback()
    order, error = _wait(
        account_id,
        key,
        lambda o: o.status not in working,
        send=lambda: enqueue(CANCEL_NET_ORDER, str(key), account_id=account_id),
    )
    if error or order.status != NetOrderStatus.CANCELLED:
        abort(ErrorCode.NOT_WORKING, f"The order is {order.status}: it filled or ended first")
    return view(order)


def list_orders(account_id: int, status: str | None, symbol: str | None, limit: int = 200) -> list[dict]:
    query = select(NetOrder).where(NetOrder.account_id == account_id)
    if status:
        query = query.where(NetOrder.status == status)
    if symbol:
        query = query.where(NetOrder.symbol == symbol)
    orders = list(db.session.scalars(query.order_by(NetOrder.created_at.desc(), NetOrder.id).limit(limit)))
    return views(orders)


def find_order(account_id: int, symbol: str, number: int | None, client_id: int | None) -> NetOrder | None:
    """An order of the account by its numeric id (Backpack's) or its clientId (the latest), on `symbol`."""
    query = select(NetOrder).where(NetOrder.account_id == account_id, NetOrder.symbol == symbol)
    if number is not None:
        query = query.where(NetOrder.number == number)
    else:
        query = query.where(NetOrder.client_id == client_id)
    return db.session.scalars(query.order_by(NetOrder.created_at.desc()).limit(1)).first()


OPEN_STATUSES = (NetOrderStatus.NEW, NetOrderStatus.PARTIALLY_FILLED, NetOrderStatus.TRIGGER_PENDING)


def open_orders(account_id: int, symbol: str | None) -> list[dict]:
    query = select(NetOrder).where(NetOrder.account_id == account_id, NetOrder.status.in_(OPEN_STATUSES))
    if symbol:
        query = query.where(NetOrder.symbol == symbol)
    return views(list(db.session.scalars(query.order_by(NetOrder.created_at))))


def list_fills(account_id: int, symbol: str | None, limit: int = 500) -> list[dict]:
    query = select(Fill).where(Fill.account_id == account_id)
    if symbol:
        query = query.where(Fill.symbol == symbol)
    return [_fill(fill) for fill in db.session.scalars(query.order_by(Fill.id.desc()).limit(limit))]


def event_view(event: NetOrderChanged) -> dict:
    """The order as its event carries it, with the fills that change made."""
    order = event.order
    of_order = {
        "order_id": order.id,
        "account_id": order.account_id,
        "symbol": order.symbol,
        "side": order.side,
        "liquidation": order.liquidation,
    }
    return view_of(order, [_fill_view({**fill.values(), **of_order}) for fill in event.fills])


def _fill(fill: Fill) -> dict:
    return _fill_view({c.name: getattr(fill, c.name) for c in Fill.__table__.columns})


def _fill_view(columns: dict) -> dict:
    """A fill's columns as the API shows them: its quantity in the market's quantity decimals."""
    asset = asset_named(columns["symbol"])
    per = lot(asset) if asset is not None else 1
    return {**columns, "quantity": columns["quantity"] // per}


def view(order: NetOrder) -> dict:
    return views([order])[0]


def views(orders: list[NetOrder]) -> list[dict]:
    """The orders with their fills (one query for the list), quantities in the market's decimals."""
    fills: dict[uuid.UUID, list[dict]] = {order.id: [] for order in orders}
    if orders:
        for fill in db.session.scalars(select(Fill).where(Fill.order_id.in_(list(fills))).order_by(Fill.id)):
            fills[fill.order_id].append(_fill(fill))
    return [view_of(order, fills[order.id]) for order in orders]


def view_of(order: NetOrder | NetOrderState, fills: list[dict]) -> dict:
    """An order (a row, or its state as an event carries it) as the API shows it."""
    asset = asset_named(order.symbol)
    per = lot(asset) if asset is not None else 1
    row = {name: getattr(order, name) for name in NET_ORDER_COLUMNS}
    row["id"] = str(order.id)
    row["related_order_id"] = None if order.related_order_id is None else str(order.related_order_id)
    row["quantity"] = None if order.quantity is None else order.quantity // per
    row["executed_quantity"] = order.executed_quantity // per
    row["price_decimals"] = asset.decimals if asset is not None else 0
    row["quantity_decimals"] = asset.quantity_decimals if asset is not None else QUANTITY_DECIMALS
    row["fills"] = fills
    return row


def _funding_since_opened(account_id: int, rows: list[Position]) -> dict[str, int]:
    """Each position's funding since it last opened from flat (Backpack's cumulativeFundingPayment)."""
    if not rows:
        return {}
    opened = {row.symbol: row.opened_at for row in rows}
    payments = db.session.execute(
        select(NetFundingPayment.symbol, NetFundingPayment.boundary, NetFundingPayment.amount).where(
            NetFundingPayment.account_id == account_id, NetFundingPayment.symbol.in_(list(opened))
        )
    )
    paid: dict[str, int] = {}
    for symbol, boundary, amount in payments:
        if opened[symbol] is not None and boundary >= opened[symbol]:
            paid[symbol] = paid.get(symbol, 0) + amount
    return paid


def positions(account_id: int) -> list[dict]:
    """The account's open positions, valued at their fresh marks (none: no valuation shown), with
    the estimated liquidation price the engine keeps."""
    rows = list(
        db.session.scalars(
            select(Position).where(Position.account_id == account_id, Position.quantity != 0).order_by(Position.symbol)
        )
    )
    paid = _funding_since_opened(account_id, rows)
    shown = []
    for row in rows:
        valued = position_view(row)
        if valued is not None:
            shown.append(
                {**valued, "liquidation_price": row.liquidation_price, "cumulative_funding": paid.get(row.symbol, 0)}
            )
    return shown


def position_view(row: Position | PositionState) -> dict | None:
    """A position (a row, or its state as an event carries it) valued at its market's fresh mark."""
    asset = asset_named(row.symbol)
    if asset is None:
        return None
    held = cross_margin.Position(row.quantity, int(row.cost))
    mark = fresh_mark(asset)
    entry = held.entry_price() or Decimal(0)
    value = None if mark is None else netting_spec(row.symbol)
    return {
        "symbol": row.symbol,
        "net_quantity": row.quantity // lot(asset),
        "entry_price": int(entry.to_integral_value(rounding=ROUND_HALF_UP)),
        "mark_price": None if mark is None else mark.bid,
        "notional": None if value is None or mark is None else value.notional(mark.bid, row.quantity),
        "unrealized_pnl": None if mark is None else held.unrealized(mark.bid, asset.decimals),
        "realized_pnl": row.realized_pnl,
        "cost_cents": (int(row.cost) // scale(asset.decimals)) * (1 if row.quantity > 0 else -1),
        "price_decimals": asset.decimals,
        "quantity_decimals": asset.quantity_decimals,
        "opened_at": row.opened_at,
    }


def account_view(account_id: int, *extra: str) -> cross_margin.Account:
    """The account as cross margin sees it now (`core.cross_margin.Account`): each position at its
    latest fresh mark (else its entry), working orders' notional; markets in `extra` included flat."""
    cash = db.session.scalar(select(Balance.usd).where(Balance.account_id == account_id))
    rows = db.session.scalars(select(Position).where(Position.account_id == account_id, Position.quantity != 0))
    working = db.session.scalars(
        select(NetOrder).where(
            NetOrder.account_id == account_id,
            NetOrder.status.in_([NetOrderStatus.NEW, NetOrderStatus.PARTIALLY_FILLED]),
            NetOrder.reduce_only.is_(False),
        )
    ).all()
    limit = db.session.scalar(select(Account.leverage_limit).where(Account.id == account_id))
    holdings: dict[str, cross_margin.Holding] = {}
    for row in rows:
        spec = netting_spec(row.symbol)
        if spec is None:
            continue
        asset = asset_named(row.symbol)
        held = cross_margin.Position(row.quantity, int(row.cost))
        mark = fresh_mark(asset)
        holdings[row.symbol] = cross_margin.Holding(spec, held, mark.bid if mark else int(held.entry_price() or 0))
    for order in working:
        spec = netting_spec(order.symbol)
        if spec is None or order.price is None:
            continue
        holding = holdings.get(order.symbol, cross_margin.Holding(spec))
        notional = spec.notional(order.price, (order.quantity or 0) - order.executed_quantity)
        holdings[order.symbol] = cross_margin.Holding(spec, holding.position, holding.mark, holding.working + notional)
    for symbol in extra:
        spec = netting_spec(symbol)
        if symbol not in holdings and spec is not None:
            mark = fresh_mark(asset_named(symbol))
            holdings[symbol] = cross_margin.Holding(spec, cross_margin.Position(), mark.bid if mark else 0)
    return cross_margin.Account(cash, limit, holdings)


def margin(account_id: int) -> dict:
    """Cash, equity, initial and maintenance margin and exposure in cents (`account_view`)."""
    view = account_view(account_id)
    cash = view.cash
    return {
        "cash": cash,
        "equity": view.equity(),
        "initial": view.initial_margin(),
        "maintenance": view.maintenance_margin(),
        "exposure": view.exposure(),
        "unrealized": view.equity() - cash,
    }


def max_order_quantity(
    account_id: int, symbol: str, buying: bool, price: int | None, reduce_only: bool
) -> tuple[int, int]:
    """The largest quantity (in the market's quantity decimals) an order may have now, at `price`
    or else the top of book, and that price: `core.netting.max_order_quantity`."""
    asset = _market(symbol)
    if price is None:
        quote = fresh_quote(asset.symbol)
        if quote is None:
            abort(ErrorCode.PRICE_UNAVAILABLE, f"No fresh price for {asset.symbol}")
        price = quote.ask if buying else quote.bid
    costs = netting.Costs(
        current_app.config["NETTING_TAKER_FEE_BPS"],
        current_app.config["NETTING_MAKER_FEE_BPS"],
        current_app.config["MAX_WORKING_ORDERS"],
    )
    view = account_view(account_id, asset.symbol)
    largest = netting.max_order_quantity(view, asset.symbol, buying, price, costs, reduce_only)
    return largest // lot(asset), price


def position_of(row: Position) -> cross_margin.Position:
    return cross_margin.Position(row.quantity, int(row.cost))


def mark_of(symbol: str) -> int | None:
    """The market's fresh mark in its price units, if any."""
    asset = asset_named(symbol)
    mark = fresh_mark(asset) if asset is not None else None
    return mark.bid if mark is not None else None
