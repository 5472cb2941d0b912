"""Backpack paper mode's reads: the account's figures in Backpack's shapes, from the same tables
and services the native API reads."""

from decimal import Decimal

from flask import current_app
from sqlalchemy import func, select

from app.backpack import shapes
from app.extensions import db
from app.markets.service import asset_named, list_markets, price_decimals
from app.models import Account, Balance, CatalogAsset, Fill, NetFundingPayment, NetOrder, Position
from app.netting import service as netting
from core.assets import QUANTITY_DECIMALS
from core.enums import NetOrderStatus


def capital(account_id: int) -> dict:
    usd = db.session.scalar(select(Balance.usd).where(Balance.account_id == account_id))
    return {"USDC": {"available": shapes.usd(max(usd, 0)), "locked": "0", "staked": "0"}}


def collateral(account_id: int) -> dict:
    """Backpack's `MarginAccountSummary`: the USDC cash as the only collateral, the account's
    margin fractions over its exposure at the marks."""
    figures = netting.margin(account_id)
    exposure = figures["exposure"]

    def fraction(cents: int) -> str | None:
        return str((Decimal(cents) / exposure).quantize(Decimal("0.0001"))) if exposure else None

    cash = shapes.usd(figures["cash"])
    return {
        "assetsValue": cash,
        "borrowLiability": "0",
        "collateral": [
            {
                "symbol": "USDC",
                "assetMarkPrice": "1",
                "totalQuantity": cash,
                "balanceNotional": cash,
                "collateralWeight": "1",
                "collateralValue": cash,
                "openOrderQuantity": "0",
                "lendQuantity": "0",
                "availableQuantity": cash,
            }
        ],
        "imf": fraction(figures["initial"]) or "0",
        "mmf": fraction(figures["maintenance"]) or "0",
        "marginFraction": fraction(figures["equity"]),
        "netEquity": shapes.usd(figures["equity"]),
        "netEquityAvailable": shapes.usd(max(0, figures["equity"] - figures["initial"])),
        "netEquityLocked": shapes.usd(min(figures["equity"], figures["initial"])),
        "netExposureFutures": shapes.usd(exposure),
        "pnlUnrealized": shapes.usd(figures["unrealized"]),
        "unsettledEquity": "0",
        "liabilitiesValue": "0",
    }


def positions(account_id: int, symbol: str | None) -> list[dict]:
    user_id = db.session.scalar(select(Account.user_id).where(Account.id == account_id))
    markets = {market["symbol"]: market for market in list_markets("PERP")}
    held = [view for view in netting.positions(account_id) if symbol is None or view["symbol"] == symbol]
    return [shapes.position(view, account_id, user_id, markets[view["symbol"]]) for view in held]


def account_settings(account_id: int) -> dict:
    config = current_app.config
    maker, taker = str(config["NETTING_MAKER_FEE_BPS"]), str(config["NETTING_TAKER_FEE_BPS"])
    return {
        "autoBorrowSettlements": False,
        "autoLend": False,
        "autoRealizePnl": True,
        "autoRepayBorrows": False,
        "borrowLimit": "0",
        "futuresMakerFee": maker,
        "futuresTakerFee": taker,
        "leverageLimit": str(db.session.get(Account, account_id).leverage_limit),
        "limitOrders": config["MAX_WORKING_ORDERS"],
        "liquidating": False,
        "positionLimit": "0",
        "spotMakerFee": maker,
        "spotTakerFee": taker,
        "triggerOrders": config["MAX_WORKING_ORDERS"],
    }


def update_account(account_id: int, body: dict) -> None:
    """`PATCH /api/v1/account`: the leverage limit (1 to 100); Backpack's lending switches are
    not simulated and accepted only as off."""
    account = db.session.get(Account, account_id)
    if body.get("leverageLimit") is not None:
        try:
            limit = int(str(body["leverageLimit"]))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            db.session.rollback()
            raise ValueError("leverageLimit is a whole number from 1 to 100")
        account.leverage_limit = limit
    for switch in ("autoBorrowSettlements", "autoLend", "autoRepayBorrows"):
        if body.get(switch):
            db.session.rollback()
            raise ValueError(f"{switch} is not simulated by this paper venue")
    db.session.commit()


def assets() -> list[dict]:
    return list(db.session.scalars(select(CatalogAsset.backpack).order_by(CatalogAsset.symbol)))


NATIVE_FIGURES = (
    "priceDecimals",
    "quantityDecimals",
    "bid",
    "ask",
    "markPrice",
    "indexPrice",
    "fundingRate",
    "nextFundingTimestamp",
)


def markets(symbol: str | None = None) -> list[dict]:
    """The catalog as Backpack serves it (the service's own figures left out)."""
    return [
        {key: value for key, value in market.items() if key not in NATIVE_FIGURES}
        for market in list_markets(symbol=symbol)
    ]


def mark_prices(symbol: str | None) -> list[dict]:
    return [
        {
            "fundingRate": market["fundingRate"],
            "indexPrice": shapes.plain(market["indexPrice"], market["priceDecimals"]),
            "markPrice": shapes.plain(market["markPrice"], market["priceDecimals"]),
            "nextFundingTimestamp": market["nextFundingTimestamp"],
            "symbol": market["symbol"],
        }
        for market in list_markets("PERP", symbol)
        if market["markPrice"] is not None
    ]


# ---- history (/wapi/v1/history/...): newest first unless sortDirection=Asc ---------------------


def _page(query, column, page: dict):
    ordered = column.asc() if page["ascending"] else column.desc()
    return query.order_by(ordered).offset(page["offset"]).limit(page["limit"])


def fill_history(account_id: int, page: dict, symbol: str | None, order_number: int | None) -> list[dict]:
    query = select(Fill, NetOrder.number, NetOrder.client_id).join(NetOrder, NetOrder.id == Fill.order_id)
    query = query.where(Fill.account_id == account_id)
    if symbol:
        query = query.where(Fill.symbol == symbol)
    if order_number is not None:
        query = query.where(NetOrder.number == order_number)
    shown = []
    for fill, number, client_id in db.session.execute(_page(query, Fill.id, page)):
        asset = asset_named(fill.symbol)
        quantities = asset.quantity_decimals if asset is not None else QUANTITY_DECIMALS
        shown.append(shapes.fill(fill, number, client_id, price_decimals(fill.symbol), quantities))
    return shown


def order_history(account_id: int, page: dict, symbol: str | None, order_number: int | None) -> list[dict]:
    query = select(NetOrder).where(NetOrder.account_id == account_id, NetOrder.status != NetOrderStatus.PENDING)
    if symbol:
        query = query.where(NetOrder.symbol == symbol)
    if order_number is not None:
        query = query.where(NetOrder.number == order_number)
    orders = list(db.session.scalars(_page(query, NetOrder.number, page)))
    return [shapes.history_order(view) for view in netting.views(orders)]


def funding_history(account_id: int, page: dict, symbol: str | None) -> list[dict]:
    user_id = db.session.scalar(select(Account.user_id).where(Account.id == account_id))
    query = select(NetFundingPayment).where(NetFundingPayment.account_id == account_id)
    if symbol:
        query = query.where(NetFundingPayment.symbol == symbol)
    return [
        {
            "userId": user_id,
            "subaccountId": None,
            "symbol": payment.symbol,
            "quantity": shapes.usd(payment.amount),
            "intervalEndTimestamp": shapes.naive(payment.boundary).split(".")[0],
            "fundingRate": str(payment.rate),
        }
        for payment in db.session.scalars(_page(query, NetFundingPayment.boundary, page))
    ]


def position_history(account_id: int, page: dict, symbol: str | None, state: str | None) -> list[dict]:
    """Each market's position of the account as `/wapi/v1/history/position` lists it: the one open
    now, or the last one closed (the service keeps one position row per market)."""
    query = select(Position).where(Position.account_id == account_id, Position.opened_at.is_not(None))
    if symbol:
        query = query.where(Position.symbol == symbol)
    if state == "Open":
        query = query.where(Position.quantity != 0)
    elif state == "Closed":
        query = query.where(Position.quantity == 0)
    rows = list(db.session.scalars(_page(query, Position.updated_at, page)))
    leverage = db.session.scalar(select(Account.leverage_limit).where(Account.id == account_id))
    return [_position_row(account_id, row, leverage) for row in rows]


def _position_row(account_id: int, row: Position, leverage: int) -> dict:
    asset = asset_named(row.symbol)
    prices = price_decimals(row.symbol)
    quantities = asset.quantity_decimals if asset is not None else QUANTITY_DECIMALS
    fills = list(
        db.session.scalars(
            select(Fill)
            .where(Fill.account_id == account_id, Fill.symbol == row.symbol, Fill.created_at >= row.opened_at)
            .order_by(Fill.id)
        )
    )
    funding = db.session.scalar(
        select(func.coalesce(func.sum(NetFundingPayment.amount), 0)).where(
            NetFundingPayment.account_id == account_id,
            NetFundingPayment.symbol == row.symbol,
            NetFundingPayment.boundary >= row.opened_at,
        )
    )
    held = netting.position_of(row)
    mark = netting.mark_of(row.symbol)
    entry = held.entry_price()
    volume = sum(fill.quantity for fill in fills)
    closed = row.quantity == 0
    scale_of = 10**prices * 10**QUANTITY_DECIMALS // 100  # price × quantity units per cent
    return {
        "id": shapes.position_id(account_id, row.symbol, row.opened_at),
        "symbol": row.symbol,
        "netQuantity": shapes.quantity(row.quantity, quantities),
        "netExposureQuantity": shapes.quantity(abs(row.quantity), quantities),
        "netExposureNotional": shapes.usd(mark * abs(row.quantity) // scale_of if mark else 0),
        "netCost": shapes.usd(int(row.cost) // scale_of),
        "markPrice": shapes.plain(mark or 0, prices),
        "entryPrice": shapes.plain(int(entry) if entry is not None else 0, prices),
        "cumulativePnlRealized": shapes.usd(row.realized_pnl),
        "unrealizedPnl": shapes.usd(held.unrealized(mark, prices) if mark and row.quantity else 0),
        "fundingQuantity": shapes.usd(funding),
        "interest": "0",
        "liquidated": "true" if any(fill.liquidation for fill in fills) else "false",
        "imf": str(asset.imf.base) if asset is not None and asset.imf is not None else "0",
        "fees": shapes.usd(sum(fill.fee for fill in fills if not fill.liquidation)),
        "state": "Closed" if closed else "Open",
        "closedVolume": shapes.quantity((volume - abs(row.quantity)) // 2, quantities),
        "liquidationFees": shapes.usd(sum(fill.fee for fill in fills if fill.liquidation)),
        "closingPrice": shapes.plain(fills[-1].price, prices) if closed and fills else None,
        "accountLeverage": str(leverage),
        "openedAt": shapes.naive(row.opened_at),
        "closedAt": shapes.naive(row.updated_at) if closed else None,
    }
