"""Perpetuals' marks in Redis, one hash per market, written by the poller from Backpack's
`markPrice` stream (and `/api/v1/markPrices` at connect), read by the API and, with funding and
liquidation on the mark, by the engine.

`mark:<SYMBOL>` holds `mark`, `index` and `rate` (the decimal strings Backpack sent, checked),
`next` (the next funding time, ms) and `time` (the event time, µs). Only a later event replaces it.
"""

import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from core.keys import MARK_KEY

_WRITE_IF_LATER = """
local old = redis.call('HGET', KEYS[1], 'time')
if old and tonumber(old) >= tonumber(ARGV[5]) then return 0 end
redis.call('HSET', KEYS[1], 'mark', ARGV[1], 'index', ARGV[2], 'rate', ARGV[3], 'next', ARGV[4], 'time', ARGV[5])
return 1
"""


@dataclass(frozen=True)
class Mark:
    market: str
    mark: Decimal
    index: Decimal | None
    funding_rate: Decimal | None  # a fraction per funding interval; positive: longs pay shorts
    next_funding_ms: int | None
    time_us: int

    def age_s(self, now_us: int | None = None) -> float:
        now_us = now_us if now_us is not None else time.time_ns() // 1000
        return max(0, now_us - self.time_us) / 1_000_000

    def is_fresh(self, max_age_s: float, now_us: int | None = None) -> bool:
        """A mark older than PRICE_MAX_AGE_S counts as missing, as a quote does."""
        return self.age_s(now_us) <= max_age_s

    def units(self, decimals: int) -> int:
        return price_units(self.mark, decimals)


def price_units(price: Decimal, decimals: int) -> int:
    """A mark or index price in integer units of `decimals` (between ticks: the nearest)."""
    return int(price.scaleb(decimals).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _text(value: Decimal | int | None) -> str:
    return "" if value is None else str(value)


class MarkStore:
    def __init__(self, client: Any):
        self.client = client
        self._write = client.register_script(_WRITE_IF_LATER)

    def write(self, mark: Mark) -> bool:
        """Store `mark` unless a later one is there; True when it was stored."""
        values = [_text(mark.mark), _text(mark.index), _text(mark.funding_rate), _text(mark.next_funding_ms)]
        return bool(self._write(keys=[MARK_KEY.format(market=mark.market)], args=[*values, mark.time_us]))

    def read(self, market: str) -> Mark | None:
        return self.read_many([market]).get(market)

    def read_many(self, markets: list[str]) -> dict[str, Mark]:
        """The stored marks of these markets (one round trip), by market."""
        with self.client.pipeline(transaction=False) as pipe:
            for market in markets:
                pipe.hgetall(MARK_KEY.format(market=market))
            found = pipe.execute()
        return {market: _mark(market, values) for market, values in zip(markets, found, strict=True) if values}


def _mark(market: str, values: dict[str, str]) -> Mark:
    return Mark(
        market,
        Decimal(values["mark"]),
        Decimal(values["index"]) if values.get("index") else None,
        Decimal(values["rate"]) if values.get("rate") else None,
        int(values["next"]) if values.get("next") else None,
        int(values["time"]),
    )
