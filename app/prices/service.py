"""Quotes from Redis and candles from PostgreSQL."""

import json
import time
import urllib.request
from datetime import UTC, datetime
from decimal import ROUND_FLOOR

from flask import current_app
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert

from app.extensions import db, redis_client
from app.markets.service import asset_named, price_decimals
from app.models import Candle
from core.assets import ASSETS, QUANTITY_DECIMALS, Asset
from core.book import BookStore
from core.candles import INTERVALS_S
from core.execution import Market
from core.marks import MarkStore
from core.money import to_units
from core.prices import PriceStore, Quote

MAX_CANDLES = 1000
# One query for every interval: minutes binned by the interval from the Unix epoch (1m bins are the
# rows themselves), first open and last close by time, newest `limit` bins, returned oldest first.
CANDLES_SQL = text(
    """
    SELECT * FROM (
      SELECT extract(epoch FROM date_bin(make_interval(secs => :step), bucket, TIMESTAMPTZ 'epoch'))::bigint AS time,
             (array_agg(open ORDER BY bucket))[1] AS open, max(high) AS high, min(low) AS low,
             (array_agg(close ORDER BY bucket DESC))[1] AS close, sum(ticks)::bigint AS ticks
      FROM candles
      WHERE asset = :asset AND bucket >= to_timestamp(:start) AND bucket < to_timestamp(:end)
      GROUP BY 1 ORDER BY 1 DESC LIMIT :limit
    ) AS newest ORDER BY time
    """
)


def fresh_quote(asset: str) -> Quote | None:
    """The asset's quote, if the feed delivered it within PRICE_MAX_AGE_S."""
    return PriceStore(redis_client).read_fresh(asset, current_app.config["PRICE_MAX_AGE_S"])


def position_trigger(asset: str, quote: Quote) -> Quote | None:
    """The prices an open position's liquidation, stop-loss and take-profit are compared with: a
    perpetual's fresh mark, on both sides (a last-trade spike through a level with a calm mark
    closes nothing; no fresh mark, nothing triggers); a spot market's bid and ask."""
    tradable = asset_named(asset)
    return fresh_mark(tradable) if tradable is not None and tradable.perpetual else quote


def valuation(asset: str) -> Quote | None:
    """What an open position is valued at (unrealized PnL, equity): a perpetual's fresh mark, as
    Backpack values margin; a spot market's fresh bid and ask."""
    tradable = asset_named(asset)
    return fresh_mark(tradable) if tradable is not None and tradable.perpetual else fresh_quote(asset)


def fresh_mark(asset: Asset) -> Quote | None:
    """A perpetual's mark as a quote (bid = ask = mark), if it is fresh."""
    mark = MarkStore(redis_client).read(asset.market)
    if mark is None or not mark.is_fresh(current_app.config["PRICE_MAX_AGE_S"]):
        return None
    units = mark.units(asset.decimals)
    return Quote(asset.symbol, units, units, mark.time_us)


def market_at(quote: Quote) -> Market:
    """The market at `quote`, with the depth book when the poller keeps a fresh one: what the
    engine executes against and the preview shows."""
    return Market(
        quote.bid, quote.ask, BookStore(redis_client).read(quote.asset, current_app.config["PRICE_MAX_AGE_S"])
    )


def latest_quotes() -> dict:
    store, max_age = PriceStore(redis_client), current_app.config["PRICE_MAX_AGE_S"]
    prices = {}
    for symbol, asset in ASSETS.items():
        quote = store.read(symbol)
        if quote is not None:
            prices[symbol] = {
                **quote.event(),
                "decimals": asset.decimals,
                "ageSeconds": quote.age_s(),
                "stale": not quote.is_fresh(max_age),
            }
    return prices


def candles(asset: str, interval: str, start: int | None, end: int | None, limit: int) -> list[dict]:
    step = INTERVALS_S[interval]
    end = end if end is not None else int(time.time()) + step
    start = start if start is not None else end - step * limit
    start -= start % step  # whole bins only: the first one is not cut short
    rows = db.session.execute(
        CANDLES_SQL, {"step": step, "asset": asset, "start": start, "end": end, "limit": limit}
    ).mappings()
    return [dict(row) for row in rows]


def _kline_minute(value: str) -> datetime:
    """Backpack's `"YYYY-MM-DD HH:MM:SS"` (UTC) kline start."""
    return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def backfill(asset: str, days: int, chunk_minutes: int = 1000, pause_s: float = 0.0) -> int:
    """Load 1-minute klines from Backpack's REST API where the service has no candle of its own.

    Klines are trade prices, not mids; they only fill minutes the service never saw. Returns the
    number of minutes inserted.
    """
    market, decimals = ASSETS[asset].market, price_decimals(asset)
    base = current_app.config["BACKPACK_REST_URL"]
    now = int(time.time()) // 60 * 60
    inserted = 0
    for chunk_start in range(now - days * 86_400, now, chunk_minutes * 60):
        chunk_end = min(chunk_start + chunk_minutes * 60, now)
        url = f"{base}/api/v1/klines?symbol={market}&interval=1m&startTime={chunk_start}&endTime={chunk_end}"
        with urllib.request.urlopen(url, timeout=30) as response:
            klines = json.load(response)
        rows = [
            {
                "asset": asset,
                "bucket": _kline_minute(k["start"]),
                **{field: to_units(k[field], decimals, ROUND_FLOOR) for field in ("open", "high", "low", "close")},
                "ticks": int(k.get("trades") or 0),
            }
            for k in klines
            if k.get("open") is not None
        ]
        if rows:
            added = db.session.execute(insert(Candle).values(rows).on_conflict_do_nothing().returning(Candle.bucket))
            inserted += len(added.all())
            db.session.commit()
        if pause_s:
            time.sleep(pause_s)  # Backpack allows 30 historical-data requests a minute
    return inserted


def book_levels(asset: str, levels: int) -> dict:
    """The live depth book's best `levels` a side; empty and not `live` without a fresh one."""
    book = BookStore(redis_client).read(asset, current_app.config["PRICE_MAX_AGE_S"])
    return {
        "asset": asset,
        "live": book is not None,
        "decimals": price_decimals(asset),
        "quantityDecimals": QUANTITY_DECIMALS,
        "bids": [{"price": lv.price, "quantity": lv.quantity} for lv in book.bids[:levels]] if book else [],
        "asks": [{"price": lv.price, "quantity": lv.quantity} for lv in book.asks[:levels]] if book else [],
        "updateId": book.update_id if book else None,
    }
