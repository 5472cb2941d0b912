"""Perpetuals' marks in Redis, one hash per market, written by the poller from Backpack's
`markPrice` stream (and `/api/v1/markPrices` at connect), read by the API and, with funding and
liquidation on the mark, by the engine.

`mark:<SYMBOL>` holds `mark`, `index` and `rate` (the decimal strings Backpack sent, checked),
`next` (the next funding time, ms) and `time` (the event time, µs). Only a later event replaces it.

The event that closes a funding interval (`core.funding.boundary_crossed`, the same arithmetic in
the script) records the rate and mark it replaces under that boundary in `funding:<SYMBOL>`, in
the same atomic step: a boundary's figures survive a restart of any process but Redis.
"""

import time
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from core.keys import FUNDING_KEY, MARK_KEY

_WRITE_IF_LATER = """
local old = redis.call('HMGET', KEYS[1], 'time', 'rate', 'mark')
local now = tonumber(ARGV[5])
if old[1] and tonumber(old[1]) >= now then return 0 end
local interval = tonumber(ARGV[6]) * 1000
if old[1] and old[2] and old[2] ~= '' and interval > 0 then
  local previous = tonumber(old[1])
  local boundary = math.floor(now / interval) * interval
  if previous < boundary and previous >= boundary - interval then
    redis.call('HSETNX', KEYS[2], string.format('%d', boundary / 1000), old[2] .. ' ' .. old[3])
  end
end
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
    def __init__(self, client: Any, funding_intervals_ms: dict[str, int] | None = None):
        self.client = client
        self.funding_intervals_ms = funding_intervals_ms or {}  # markets without one record no funding
        self._write = client.register_script(_WRITE_IF_LATER)

    def write(self, mark: Mark) -> bool:
        """Store `mark` unless a later one is there; True when it was stored."""
        values = [_text(mark.mark), _text(mark.index), _text(mark.funding_rate), _text(mark.next_funding_ms)]
        keys = [MARK_KEY.format(market=mark.market), FUNDING_KEY.format(market=mark.market)]
        interval_ms = self.funding_intervals_ms.get(mark.market, 0)
        return bool(self._write(keys=keys, args=[*values, mark.time_us, interval_ms]))

    def funding_rounds(self, markets: list[str]) -> dict[str, dict[int, tuple[Decimal, Decimal]]]:
        """The recorded funding of these markets: market -> boundary (ms) -> (rate, mark)."""
        with self.client.pipeline(transaction=False) as pipe:
            for market in markets:
                pipe.hgetall(FUNDING_KEY.format(market=market))
            found = pipe.execute()
        return {
            market: {int(boundary): _rate_and_mark(value) for boundary, value in rounds.items()}
            for market, rounds in zip(markets, found, strict=True)
            if rounds
        }

    def forget_funding(self, market: str, boundaries: list[int]) -> None:
        """Drop recorded rounds that are kept elsewhere now (PostgreSQL's `funding_rates`)."""
        if boundaries:
            self.client.hdel(FUNDING_KEY.format(market=market), *map(str, boundaries))

    def read(self, market: str) -> Mark | None:
        return self.read_many([market]).get(market)

    def read_many(self, markets: list[str]) -> dict[str, Mark]:
        """The stored marks of these markets (one round trip), by market."""
        with self.client.pipeline(transaction=False) as pipe:
            for market in markets:
                pipe.hgetall(MARK_KEY.format(market=market))
            found = pipe.execute()
        return {market: _mark(market, values) for market, values in zip(markets, found, strict=True) if values}


def _rate_and_mark(value: str) -> tuple[Decimal, Decimal]:
    rate, mark = value.split(" ")
    return Decimal(rate), Decimal(mark)


def _mark(market: str, values: dict[str, str]) -> Mark:
    return Mark(
        market,
        Decimal(values["mark"]),
        Decimal(values["index"]) if values.get("index") else None,
        Decimal(values["rate"]) if values.get("rate") else None,
        int(values["next"]) if values.get("next") else None,
        int(values["time"]),
    )
