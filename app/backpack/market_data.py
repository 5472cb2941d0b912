"""Backpack's public market data from the service's own: tickers and klines from the minute
candles the poller writes (mid prices, as the terminal charts them) with the volume of this
venue's own fills, those fills as anonymous public trades, the funding rates the poller recorded
and the netting accounts' open interest. Shared by the REST routes and the socket's streams."""

import time
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import func, select, text

from app.backpack import shapes
from app.extensions import db
from app.models import Fill, FundingRate, Position
from app.prices.service import fresh_quote
from core.assets import QUANTITY_DECIMALS, Asset
from core.candles import mid

# Backpack's KlineInterval: fixed lengths in seconds, and the calendar month
KLINE_INTERVALS_S = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14_400,
    "6h": 21_600,
    "8h": 28_800,
    "12h": 43_200,
    "1d": 86_400,
    "3d": 259_200,
    "1w": 604_800,
}
MONTH = "1month"
KLINE_INTERVALS = (*KLINE_INTERVALS_S, MONTH)
TICKER_WINDOWS_S = {"1d": 86_400, "1w": 604_800}
KLINES_AT_MOST = 1000

# Weeks start on Monday (2024-01-01 was one); the month is the calendar's, in UTC.
_FIXED = "date_bin(make_interval(secs => :step), {column}, TIMESTAMPTZ '2024-01-01 00:00:00+00')"
_CALENDAR = "date_trunc('month', {column}, 'UTC')"


def _klines_sql(bucket: str, length: str) -> text:
    return text(
        f"""
        WITH bars AS (
          SELECT {bucket.format(column="bucket")} AS start,
                 (array_agg(open ORDER BY bucket))[1] AS open, max(high) AS high, min(low) AS low,
                 (array_agg(close ORDER BY bucket DESC))[1] AS close
          FROM candles WHERE asset = :asset AND bucket >= :start AND bucket < :end
          GROUP BY 1
        ), volume AS (
          SELECT {bucket.format(column="created_at")} AS start, sum(quantity) AS quantity,
                 sum(quantity::numeric * price) AS quote, count(*) AS trades
          FROM fills WHERE symbol = :asset AND created_at >= :start AND created_at < :end
          GROUP BY 1
        )
        SELECT bars.start, bars.start + {length} AS "end", open, high, low, close,
               coalesce(quantity, 0) AS quantity, coalesce(quote, 0) AS quote, coalesce(trades, 0) AS trades
        FROM bars LEFT JOIN volume USING (start)
        ORDER BY bars.start LIMIT :limit
        """
    )


KLINES_SQL = _klines_sql(_FIXED, "make_interval(secs => :step)")
MONTHLY_KLINES_SQL = _klines_sql(_CALENDAR, "interval '1 month'")

TICKERS_SQL = text(
    """
    WITH bars AS (
      SELECT asset, (array_agg(open ORDER BY bucket))[1] AS first, (array_agg(close ORDER BY bucket DESC))[1] AS last,
             max(high) AS high, min(low) AS low
      FROM candles WHERE asset = ANY(:assets) AND bucket >= :since GROUP BY asset
    ), volume AS (
      SELECT symbol AS asset, sum(quantity) AS quantity, sum(quantity::numeric * price) AS quote, count(*) AS trades
      FROM fills WHERE symbol = ANY(:assets) AND created_at >= :since GROUP BY symbol
    )
    SELECT bars.*, coalesce(quantity, 0) AS quantity, coalesce(quote, 0) AS quote, coalesce(trades, 0) AS trades
    FROM bars LEFT JOIN volume USING (asset)
    """
)


def _decimal(value: Decimal) -> str:
    """A Decimal as Backpack writes it: plain notation, no trailing zeros."""
    text_ = format(value.normalize(), "f")
    return text_ if text_ != "-0" else "0"


def _quote(units: int | Decimal, asset: Asset) -> str:
    """price units × quantity units, in USDC."""
    return _decimal(Decimal(units).scaleb(-(asset.decimals + QUANTITY_DECIMALS)))


def _naive(moment: datetime) -> str:
    """Klines' `"YYYY-MM-DD HH:MM:SS"` (UTC, no zone), as Backpack's REST writes them."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def klines(asset: Asset, interval: str, start_s: int, end_s: int) -> list[dict]:
    """Backpack's `Kline` rows from `start_s` (seconds) up to `end_s`: the oldest KLINES_AT_MOST."""
    return [_kline(asset, row) for row in _kline_rows(asset, interval, start_s, end_s)]


def _kline_rows(asset: Asset, interval: str, start_s: int, end_s: int) -> list:
    statement = MONTHLY_KLINES_SQL if interval == MONTH else KLINES_SQL
    params = {
        "asset": asset.symbol,
        "step": KLINE_INTERVALS_S.get(interval, 0),
        "start": datetime.fromtimestamp(start_s, UTC),
        "end": datetime.fromtimestamp(end_s, UTC),
        "limit": KLINES_AT_MOST,
    }
    return list(db.session.execute(statement, params).mappings().all())


def _kline(asset: Asset, row) -> dict:
    return {
        "start": _naive(row["start"]),
        "end": _naive(row["end"]),
        "open": shapes.plain(row["open"], asset.decimals),
        "high": shapes.plain(row["high"], asset.decimals),
        "low": shapes.plain(row["low"], asset.decimals),
        "close": shapes.plain(row["close"], asset.decimals),
        "volume": shapes.plain(int(row["quantity"]), QUANTITY_DECIMALS),
        "quoteVolume": _quote(row["quote"], asset),
        "trades": str(row["trades"]),
    }


def stream_kline(asset: Asset, interval: str, now_s: int) -> dict | None:
    """The kline that holds `now_s` as the `kline.<interval>.<symbol>` stream's data (ISO `t`/`T`,
    `X` once it has closed), None while it has no candle."""
    length = KLINE_INTERVALS_S.get(interval, 31 * 86_400)
    rows = _kline_rows(asset, interval, now_s - length, now_s + 1)
    if not rows:
        return None
    row = rows[-1]
    shown = _kline(asset, row)
    return {
        "e": "kline",
        "E": int(time.time() * 1_000_000),
        "s": asset.market,
        "t": row["start"].astimezone(UTC).replace(tzinfo=None).isoformat(),
        "T": row["end"].astimezone(UTC).replace(tzinfo=None).isoformat(),
        "o": shown["open"],
        "c": shown["close"],
        "h": shown["high"],
        "l": shown["low"],
        "v": shown["volume"],
        "n": int(row["trades"]),
        "X": row["end"].timestamp() <= now_s,
    }


def tickers(assets: list[Asset], window: str = "1d") -> list[dict]:
    """Backpack's `Ticker` of each market over the window (24 hours, or a week): first and last
    price, high and low from the candles, volume and trades from this venue's fills. A market
    without a candle in the window is priced at its quote's mid, if it has a fresh one."""
    since = datetime.fromtimestamp(time.time() - TICKER_WINDOWS_S[window], UTC)
    rows = {
        row["asset"]: row
        for row in db.session.execute(TICKERS_SQL, {"assets": [a.symbol for a in assets], "since": since}).mappings()
    }
    shown = []
    for asset in assets:
        row = rows.get(asset.symbol)
        if row is None:
            quote = fresh_quote(asset.symbol)
            if quote is None:
                continue
            price = mid(quote.bid, quote.ask)
            row = {"first": price, "last": price, "high": price, "low": price, "quantity": 0, "quote": 0, "trades": 0}
        change = row["last"] - row["first"]
        percent = Decimal(change) / row["first"] if row["first"] else Decimal(0)
        shown.append(
            {
                "symbol": asset.market,
                "firstPrice": shapes.plain(row["first"], asset.decimals),
                "lastPrice": shapes.plain(row["last"], asset.decimals),
                "priceChange": shapes.plain(change, asset.decimals),
                "priceChangePercent": _decimal(percent.quantize(Decimal("0.000001"))),
                "high": shapes.plain(row["high"], asset.decimals),
                "low": shapes.plain(row["low"], asset.decimals),
                "volume": shapes.plain(int(row["quantity"]), QUANTITY_DECIMALS),
                "quoteVolume": _quote(row["quote"], asset),
                "trades": str(row["trades"]),
            }
        )
    return shown


def stream_ticker(asset: Asset) -> dict | None:
    """The `ticker.<symbol>` stream's data: the 24-hour ticker in the stream's keys."""
    found = tickers([asset])
    if not found:
        return None
    ticker = found[0]
    return {
        "e": "ticker",
        "E": int(time.time() * 1_000_000),
        "s": asset.market,
        "o": ticker["firstPrice"],
        "c": ticker["lastPrice"],
        "h": ticker["high"],
        "l": ticker["low"],
        "v": ticker["volume"],
        "V": ticker["quoteVolume"],
        "n": int(ticker["trades"]),
    }


def trade(asset: Asset, fill: Fill) -> dict:
    """A fill as Backpack's public `Trade`: the book was the other side of it."""
    return {
        "id": fill.id,
        "price": shapes.plain(fill.price, asset.decimals),
        "quantity": shapes.plain(fill.quantity, QUANTITY_DECIMALS),
        "quoteQuantity": _quote(fill.price * fill.quantity, asset),
        "timestamp": shapes.ms(fill.created_at),
        "isBuyerMaker": (fill.side == "buy") == fill.maker,
    }


def trades(asset: Asset, limit: int, offset: int = 0) -> list[dict]:
    """The market's latest fills on this venue, anonymous, oldest first."""
    query = select(Fill).where(Fill.symbol == asset.symbol).order_by(Fill.created_at.desc(), Fill.id.desc())
    latest = db.session.scalars(query.offset(offset).limit(limit)).all()
    return [trade(asset, fill) for fill in reversed(latest)]


def funding_rates(asset: Asset, limit: int, offset: int) -> list[dict]:
    """The funding rates the poller recorded at each boundary, newest first."""
    query = select(FundingRate).where(FundingRate.market == asset.market).order_by(FundingRate.boundary.desc())
    return [
        {
            "symbol": asset.market,
            "intervalEndTimestamp": rate.boundary.astimezone(UTC).replace(tzinfo=None).isoformat(),
            "fundingRate": _decimal(rate.rate),
        }
        for rate in db.session.scalars(query.offset(offset).limit(limit))
    ]


def open_interest(assets: list[Asset]) -> list[dict]:
    """The base quantity the netting accounts hold long (= held short) on each market."""
    held = dict(
        db.session.execute(
            select(Position.symbol, func.sum(Position.quantity))
            .where(Position.symbol.in_([a.symbol for a in assets]), Position.quantity > 0)
            .group_by(Position.symbol)
        ).all()
    )
    now_ms = int(time.time() * 1000)
    return [
        {
            "symbol": asset.market,
            "openInterest": shapes.plain(int(held.get(asset.symbol, 0)), QUANTITY_DECIMALS),
            "timestamp": now_ms,
        }
        for asset in assets
    ]
