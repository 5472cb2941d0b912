"""Trade requests: validate, record the order, hand it to the engine, wait for its answer.

The API never changes balances itself; it writes `pending` orders (and close requests), each in
one statement that commits by itself, and the engine executes them. Enqueueing happens after the
commit, and the engine's sweep re-enqueues anything whose message got lost, so an accepted trade
is never dropped.
"""

import hashlib
import json
import uuid
from collections.abc import Callable

from flask import current_app
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert

from app.dispatch import enqueue, wake_engine
from app.errors import ErrorCode, abort
from app.events import wait_for_engine
from app.extensions import autocommit, db
from app.markets.service import asset_named, book_state, is_perpetual, lot_of, price_decimals
from app.models import Account as AccountRow
from app.models import FundingPayment, IdempotencyKey, Order, utcnow
from app.prices.service import fresh_quote, market_at, valuation
from core import execution, rules
from core.assets import QUANTITY_DECIMALS, USD_DECIMALS
from core.book import fee, notional
from core.enums import AccountMode, CloseReason, OrderStatus, OrderType, RejectReason, Side
from core.events import AccountEvent, OrderChanged, OrderState, RequestFailed
from core.execution import Account, Costs, Reject, Rest, Terms
from core.markets import BookState
from core.money import format_units
from core.prices import Quote
from core.tasks import CANCEL_ORDER

# How the engine's reject reasons reach the client.
REJECTIONS = {
    RejectReason.INSUFFICIENT_BALANCE: (ErrorCode.INSUFFICIENT_BALANCE, "Not enough free USD balance for the margin"),
    RejectReason.SLIPPAGE_EXCEEDED: (ErrorCode.SLIPPAGE_EXCEEDED, "Price moved beyond the requested slippage"),
    RejectReason.PRICE_UNAVAILABLE: (ErrorCode.PRICE_UNAVAILABLE, "No fresh price for this asset"),
    RejectReason.INVALID_STOPS: (ErrorCode.VALIDATION, "stopLoss/takeProfit are on the wrong side of the fill price"),
    RejectReason.INVALID_QUANTITY: (ErrorCode.VALIDATION, "margin x leverage / price gives no tradable quantity"),
    RejectReason.EXPIRED: (ErrorCode.EXPIRED, "Not executed within ORDER_MAX_DELAY_S; nothing was traded"),
    RejectReason.INSUFFICIENT_LIQUIDITY: (ErrorCode.INSUFFICIENT_LIQUIDITY, "The visible book cannot fill this size"),
    RejectReason.TOO_MANY_WORKING_ORDERS: (
        ErrorCode.TOO_MANY_WORKING_ORDERS,
        "The account has MAX_WORKING_ORDERS working orders already; cancel one first",
    ),
}


def _error_for(reason: str):
    code, message = REJECTIONS[RejectReason(reason)]
    abort(code, message)


def _require_fresh_price(asset: str) -> Quote:
    quote = fresh_quote(asset)
    if quote is None:
        abort(ErrorCode.PRICE_UNAVAILABLE, f"No fresh price for {asset}")
    return quote


PRICED_FIELDS = ("price", "limitPrice", "stopPrice", "stopLoss", "takeProfit")


def _check_market_open(symbol: str) -> None:
    """A perpetual's market takes new orders only while its book is Open."""
    asset = asset_named(symbol)
    if asset is not None and asset.perpetual and (state := book_state(symbol)) != BookState.OPEN:
        abort(ErrorCode.MARKET_NOT_OPEN, f"{symbol} is {state}: it takes no new orders")


def _check_market_filters(body: dict, quote: Quote) -> None:
    """A perpetual's order names every price on its market's tickSize, and margin x leverage at
    the price now buys at least its minQuantity on its stepSize."""
    asset = asset_named(body["asset"])
    if asset is None or not asset.perpetual:
        return
    for name in PRICED_FIELDS:
        if body.get(name) is not None and body[name] % asset.tick:
            tick = format_units(asset.tick, asset.decimals)
            abort(ErrorCode.INVALID_PRICE, f"{name} {body[name]} is not on {asset.symbol}'s tickSize {tick}")
    reference = body.get("limitPrice") or body.get("stopPrice") or rules.open_fill(body["type"], quote.bid, quote.ask)
    kind, side = OrderType(body["orderType"]), Side(body["type"])
    if not Terms(kind, side, body["margin"], body["leverage"], asset.decimals, **lot_of(asset.symbol)).sized(reference):
        minimum = format_units(asset.min_quantity, QUANTITY_DECIMALS)
        abort(ErrorCode.INVALID_QUANTITY, f"margin x leverage buys less than {asset.symbol}'s minQuantity {minimum}")


def _request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def preview(
    asset: str, side: str, margin: int, leverage: int, order_type: str = OrderType.MARKET, trigger: int | None = None
) -> dict:
    """What an order would get now: the engine's own decision (`core.execution.arrive`) on the
    live book (or the top of book without one). A limit or stop order (`trigger`: its limit or
    stop price) the book does not fill now shows as `working` at its own price."""
    quote = _require_fresh_price(asset)
    decimals = price_decimals(asset)
    market = market_at(quote)
    kind = OrderType(order_type)
    terms = Terms(
        kind,
        Side(side),
        margin,
        leverage,
        decimals,
        limit_price=trigger if kind == OrderType.LIMIT else None,
        stop_price=trigger if kind == OrderType.STOP else None,
        **lot_of(asset),
    )
    costs = Costs.of(current_app.config)
    decision = execution.arrive(terms, Account(None), market, costs, utcnow())
    if isinstance(decision, Reject):
        _error_for(decision.reason)
    working = isinstance(decision, Rest)
    if isinstance(decision, Rest):
        price, quantity = decision.price, decision.quantity
        fee_bps = costs.maker_fee_bps if kind == OrderType.LIMIT else costs.taker_fee_bps  # filled once it rested
        charged = fee(notional(price, quantity, decimals), fee_bps)
        liquidation = rules.liquidation_price(side, price, quantity, margin, costs.liquidation_ratio, decimals)
    else:
        price, quantity, charged, liquidation = (
            decision.price,
            decision.quantity,
            decision.fee,
            decision.liquidation_price,
        )
    return {
        "price": price,
        "fillModel": market.model,
        "working": working,
        "decimals": decimals,
        "quantity": quantity,
        "quantityDecimals": QUANTITY_DECIMALS,
        "notional": margin * leverage,
        "fee": charged,
        "liquidationPrice": liquidation,
    }


# Built once: a statement built per request, and the cache key SQLAlchemy derives from each new
# one, cost more CPU than the database's answer. Always the row as committed now.
ORDER_BY_ID = select(Order).where(Order.id == bindparam("order_id")).execution_options(populate_existing=True)
NEW_ORDER_FIELDS = (
    "id",
    "account_id",
    "asset",
    "side",
    "margin",
    "leverage",
    "slippage_bps",
    "requested_price",
    "order_type",
    "limit_price",
    "stop_price",
    "expires_at",
    "stop_loss",
    "take_profit",
    "status",
)
# The order, if its account is a hedging one and not archived: the check costs no round trip of its own.
INSERT_ORDER = (
    insert(Order.__table__)  # the table: a session runs it as one statement
    .from_select(
        NEW_ORDER_FIELDS,
        select(*(bindparam(name, type_=Order.__table__.c[name].type) for name in NEW_ORDER_FIELDS)).where(
            AccountRow.id == bindparam("account_id"),
            AccountRow.archived_at.is_(None),
            AccountRow.mode == AccountMode.HEDGING,
        ),
    )
    .returning(Order.__table__.c.id)  # psycopg reports no rowcount for INSERT ... SELECT
)
CLOSE_TARGET = select(Order.account_id, Order.status, Order.asset).where(Order.id == bindparam("order_id"))
REQUEST_CLOSE = update(Order).where(Order.id == bindparam("order_id")).values(close_requested_at=bindparam("at"))


def _order_key(order_id: str | uuid.UUID) -> uuid.UUID:
    try:
        return order_id if isinstance(order_id, uuid.UUID) else uuid.UUID(order_id)
    except (ValueError, TypeError):
        abort(ErrorCode.NOT_FOUND, "No such order")


def get_order(account_id: int, order_id: str | uuid.UUID) -> Order:
    order = db.session.execute(ORDER_BY_ID, {"order_id": _order_key(order_id)}).scalar_one_or_none()
    if order is None or order.account_id != account_id:
        abort(ErrorCode.NOT_FOUND, "No such order")
    return order


def with_valuation(orders: list[Order]) -> list[Order]:
    """Open positions marked with what closing them at their valuation would realize (a fresh
    quote; a perpetual's fresh mark, also shown as its `mark_price`), and perpetual positions with
    their cumulative funding (the sum of their payments, one query for the list)."""
    quotes: dict = {}
    for order in orders:
        if order.status != OrderStatus.OPEN:
            continue
        order.mark_price = order.unrealized_pnl = None  # never a figure left from an earlier valuation
        if order.asset not in quotes:
            quotes[order.asset] = valuation(order.asset)
        quote = quotes[order.asset]
        if quote is None:
            continue
        if is_perpetual(order.asset):
            order.mark_price = quote.bid
        decimals = price_decimals(order.asset)
        closing = rules.close_at(
            order.side, order.open_price, order.quantity, order.margin, decimals, quote.bid, quote.ask
        )
        order.unrealized_pnl = closing.pnl
    _with_funding(orders)
    return orders


FUNDING_OF = (
    select(FundingPayment.order_id, func.sum(FundingPayment.amount))
    .where(FundingPayment.order_id.in_(bindparam("ids", expanding=True)))
    .group_by(FundingPayment.order_id)
)


def _with_funding(orders: list[Order]) -> None:
    perpetual = [order for order in orders if order.opened_at is not None and is_perpetual(order.asset)]
    if not perpetual:
        return
    paid = dict(db.session.execute(FUNDING_OF, {"ids": [order.id for order in perpetual]}).all())
    for order in perpetual:
        order.cumulative_funding = int(paid.get(order.id, 0))


def list_orders(account_id: int, status: str | None):
    query = select(Order).where(Order.account_id == account_id).order_by(Order.created_at.desc(), Order.id)
    if status:
        query = query.where(Order.status == status)
    return query


ORDER_CSV_HEADER = [
    "order_id",
    "created_at",
    "asset",
    "type",
    "status",
    "leverage",
    "margin",
    "quantity",
    "open_price",
    "liquidation_price",
    "stop_loss",
    "take_profit",
    "close_price",
    "pnl",
    "close_reason",
    "reject_reason",
    "closed_at",
]


def order_csv_rows(account_id: int, status: str | None):
    """Every matching order, newest first, from a server-side cursor; amounts as decimals."""
    result = db.session.execute(list_orders(account_id, status).execution_options(yield_per=1000))
    for o in result.scalars():
        price = price_decimals(o.asset)

        def units(value, decimals):
            return "" if value is None else format_units(value, decimals)

        yield [
            o.id,
            o.created_at.isoformat(),
            o.asset,
            o.side,
            o.status,
            o.leverage,
            units(o.margin, USD_DECIMALS),
            units(o.quantity, QUANTITY_DECIMALS),
            units(o.open_price, price),
            units(o.liquidation_price, price),
            units(o.stop_loss, price),
            units(o.take_profit, price),
            units(o.close_price, price),
            units(o.pnl, USD_DECIMALS),
            o.close_reason or "",
            o.reject_reason or "",
            o.closed_at.isoformat() if o.closed_at else "",
        ]


def _existing_for_key(account_id: int, key: str, request_hash: str) -> Order | None:
    record = db.session.get(IdempotencyKey, (account_id, key))
    if record is None:
        return None
    if record.request_hash != request_hash:
        abort(ErrorCode.IDEMPOTENCY_MISMATCH, "This Idempotency-Key was used with a different request body")
    return db.session.get(Order, record.order_id)


def create_order(account_id: int, body: dict, idempotency_key: str | None) -> Order | OrderState:
    """Record the order as pending (once per idempotency key), enqueue it, wait for the engine."""
    request_hash = _request_hash(body) if idempotency_key else ""
    if idempotency_key:
        existing = _existing_for_key(account_id, idempotency_key, request_hash)
        if existing is not None:
            return wait_for_open(account_id, existing.id)
    _check_market_open(body["asset"])
    quote = _require_fresh_price(body["asset"])
    _check_market_filters(body, quote)
    order_id = uuid.uuid4()
    values = dict(
        id=order_id,
        account_id=account_id,
        asset=body["asset"],
        side=body["type"],
        margin=body["margin"],
        leverage=body["leverage"],
        slippage_bps=body["slippage"],
        # the price the client saw, or else the top of book now: slippage is always checked against one
        requested_price=body.get("price") or rules.open_fill(body["type"], quote.bid, quote.ask),
        order_type=body["orderType"],
        limit_price=body.get("limitPrice"),
        stop_price=body.get("stopPrice"),
        expires_at=body.get("expiresAt"),
        stop_loss=body.get("stopLoss"),
        take_profit=body.get("takeProfit"),
        status=OrderStatus.PENDING,
    )
    if not idempotency_key:

        def record_and_wake() -> None:
            with autocommit() as connection:
                _refuse_unless_inserted(connection.execute(INSERT_ORDER, values).first(), account_id)
            wake_engine(account_id)

        return wait_for_open(account_id, order_id, send=record_and_wake)
    _refuse_unless_inserted(db.session.execute(INSERT_ORDER, values).first(), account_id)
    claimed = db.session.execute(
        insert(IdempotencyKey)
        .values(
            account_id=account_id,
            key=idempotency_key,
            request_hash=request_hash,
            order_id=order_id,
            created_at=utcnow(),
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyKey.key)
    ).scalar_one_or_none()
    if claimed is None:  # a concurrent request with the same key won the race
        db.session.rollback()
        return wait_for_open(account_id, _existing_for_key(account_id, idempotency_key, request_hash).id)
    return wait_for_open(account_id, order_id, send=_commit_and_wake(account_id))


def _refuse_unless_inserted(inserted, account_id: int) -> None:
    """Nothing inserted: the account is a netting one, or archived (a rare path: read which)."""
    if inserted is None:
        db.session.rollback()
        if db.session.scalar(select(AccountRow.mode).where(AccountRow.id == account_id)) == AccountMode.NETTING:
            abort(ErrorCode.WRONG_ACCOUNT_MODE, "This is a netting account: place its orders with POST /api/v1/orders")
        abort(ErrorCode.ACCOUNT_ARCHIVED, "This account is archived: it takes no new orders")


def close(account_id: int, order_id: str) -> Order | OrderState:
    order_id = _order_key(order_id)

    def request_close_and_wake() -> None:
        """Check the position and record its close request on one connection, without a
        transaction: the engine takes the close request whenever it lands, and the row cannot
        stop being this account's."""
        with autocommit() as connection:
            order = connection.execute(CLOSE_TARGET, {"order_id": order_id}).one_or_none()
            if order is None or order.account_id != account_id:
                abort(ErrorCode.NOT_FOUND, "No such order")
            if order.status == OrderStatus.CLOSED:
                abort(ErrorCode.ALREADY_CLOSED, "The order is already closed")
            if order.status != OrderStatus.OPEN:
                abort(ErrorCode.NOT_OPEN, f"The order is {order.status}, not open")
            _require_fresh_price(order.asset)
            connection.execute(REQUEST_CLOSE, {"order_id": order_id, "at": utcnow()})
        wake_engine(account_id)

    closed = lambda o: o.status == OrderStatus.CLOSED  # noqa: E731
    order, error = _wait(account_id, order_id, closed, send=request_close_and_wake)
    if error:
        _error_for(error)
    if order.status == OrderStatus.CLOSED and order.close_reason != CloseReason.USER:
        abort(ErrorCode.ALREADY_CLOSED, f"The position was closed by {order.close_reason} first")
    return order


def cancel(account_id: int, order_id: str) -> Order | OrderState:
    """Cancel a working order through the engine (so it cannot race the order's fill)."""
    order = get_order(account_id, order_id)
    if order.status != OrderStatus.WORKING:
        abort(ErrorCode.NOT_WORKING, f"The order is {order.status}, not working")
    order_id = order.id
    db.session.rollback()
    ended = lambda o: o.status != OrderStatus.WORKING  # noqa: E731
    # not a wake-up: a cancel is the engine's answer about this one order
    order, error = _wait(
        account_id, order_id, ended, send=lambda: enqueue(CANCEL_ORDER, str(order_id), account_id=account_id)
    )
    if error == ErrorCode.NOT_WORKING or order.status not in (OrderStatus.WORKING, OrderStatus.CANCELLED):
        abort(ErrorCode.NOT_WORKING, f"The order is {order.status}: it filled or ended first")
    return order


def _commit_and_wake(account_id: int) -> Callable[[], None]:
    """Commit the work, then wake the engine: sent while the request already listens, since a
    batch the engine is about to start executes the work as soon as it is committed."""

    def send() -> None:
        db.session.commit()
        wake_engine(account_id)

    return send


def wait_for_open(account_id: int, order_id: uuid.UUID, send: Callable[[], object] | None = None) -> Order | OrderState:
    """The order once the engine executed it (raising the contract's error for a rejection)."""
    order, _ = _wait(account_id, order_id, lambda o: o.status != OrderStatus.PENDING, send)
    if order.status == OrderStatus.REJECTED:
        _error_for(order.reject_reason)
    return order


def _wait(
    account_id: int, order_id: uuid.UUID, done, send: Callable[[], object] | None = None
) -> tuple[Order | OrderState, str | None]:
    """`send()` the order's work to the engine, if given, then wait up to TRADE_WAIT_S for
    `done(order)` or an engine error published for the order. The order comes from its event as
    the engine committed it, or from the row."""

    def reload() -> Order:
        return db.session.execute(ORDER_BY_ID, {"order_id": order_id}).scalar_one()

    def about(event: AccountEvent) -> bool:
        return isinstance(event, OrderChanged | RequestFailed) and event.order_id == str(order_id)

    def from_event(event: AccountEvent) -> OrderState | None:
        return event.order if isinstance(event, OrderChanged) else None

    return wait_for_engine(account_id, about, reload, done, send, from_event)
