"""Latest prices in Redis: one hash per asset, written by the poller, read by the engine and API.

`price:<ASSET>` holds `bid`, `ask` (integers in the asset's decimals), `time` (exchange event
time, µs) and `u` (Backpack update id). A Lua script replaces it only with a newer update and
publishes the update on `prices:<ASSET>` in the same atomic step.
"""

import json
import time
from dataclasses import dataclass
from typing import Any

from core.candles import mid
from core.keys import FEED_LAST_MESSAGE_FIELD, FEED_STATUS_KEY, PRICE_CHANNEL, PRICE_KEY

# KEYS: each quote's price hash, then the feed status hash; ARGV: the receipt time, then seven
# values a quote: bid, ask, time, u, channel, payload, status field. A quote is stored only when
# newer: a larger update id, or without ids (u = -1) a later event time; the receipt time is
# recorded either way (it is the feed's liveness). One call for every waiting market's quote.
_WRITE_IF_NEWER = """
local status, now, stored = KEYS[#KEYS], ARGV[1], {}
for i = 1, #KEYS - 1 do
  local a = 1 + (i - 1) * 7
  redis.call('HSET', status, ARGV[a + 7], now)
  local current = redis.call('HMGET', KEYS[i], 'u', 'time')
  local new_u, new_time = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 3])
  local newer = true
  if current[1] then
    local old_u, old_time = tonumber(current[1]), tonumber(current[2])
    if new_u >= 0 and old_u >= 0 then newer = new_u > old_u else newer = new_time > old_time end
  end
  if newer then
    redis.call('HSET', KEYS[i], 'bid', ARGV[a + 1], 'ask', ARGV[a + 2], 'time', ARGV[a + 3], 'u', ARGV[a + 4])
    redis.call('PUBLISH', ARGV[a + 5], ARGV[a + 6])
  end
  stored[i] = newer and 1 or 0
end
return stored
"""
# KEYS: price hashes; one call answers every one's bid, ask, time and u (false where absent).
_READ_MANY = """
local found = {}
for i = 1, #KEYS do found[i] = redis.call('HMGET', KEYS[i], 'bid', 'ask', 'time', 'u') end
return found
"""


def now_micros() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Quote:
    asset: str
    bid: int
    ask: int
    time_us: int
    update_id: int = -1

    def age_s(self, now_us: int | None = None) -> float:
        now_us = now_us if now_us is not None else now_micros()
        return max(0, now_us - self.time_us) / 1_000_000

    def event(self) -> dict[str, Any]:
        """The quote as the price channel and the price stream carry it (mid and spread computed here)."""
        return {
            "asset": self.asset,
            "bid": self.bid,
            "ask": self.ask,
            "mid": mid(self.bid, self.ask),
            "spread": self.ask - self.bid,
            "time": self.time_us,
        }

    def is_fresh(self, max_age_s: float, now_us: int | None = None) -> bool:
        """The one freshness rule: trading uses a quote no older than `max_age_s` (PRICE_MAX_AGE_S)."""
        return self.age_s(now_us) <= max_age_s


class PriceStore:
    def __init__(self, client: Any):
        self.client = client
        self._write = client.register_script(_WRITE_IF_NEWER)
        self._read_many = client.register_script(_READ_MANY)

    def write(self, quote: Quote) -> bool:
        """Store `quote` unless a newer one is already there; True when it was stored.

        Also records when the feed last delivered this asset (one round trip for both).
        """
        return bool(self.write_many([quote]))

    def write_many(self, quotes: list[Quote]) -> list[Quote]:
        """`write` for several markets' quotes in one call; the ones stored."""
        keys = [PRICE_KEY.format(asset=quote.asset) for quote in quotes] + [FEED_STATUS_KEY]
        args: list[Any] = [now_micros()]
        for quote in quotes:
            args += [quote.bid, quote.ask, quote.time_us, quote.update_id, PRICE_CHANNEL.format(asset=quote.asset)]
            args += [json.dumps(quote.event()), f"{FEED_LAST_MESSAGE_FIELD}{quote.asset}"]
        stored = self._write(keys=keys, args=args)
        return [quote for quote, done in zip(quotes, stored, strict=True) if done]

    def read(self, asset: str) -> Quote | None:
        found = self.read_many([asset])
        return found[0] if found else None

    def read_many(self, assets: list[str]) -> list[Quote]:
        """The quotes of those of `assets` that have one, in one call."""
        if not assets:
            return []
        rows = self._read_many(keys=[PRICE_KEY.format(asset=asset) for asset in assets])
        return [
            Quote(asset, int(bid), int(ask), int(time_us), int(u))
            for asset, (bid, ask, time_us, u) in zip(assets, rows, strict=True)
            if bid is not None
        ]

    def read_fresh(self, asset: str, max_age_s: float) -> Quote | None:
        """The latest quote if it is fresh, else None."""
        quote = self.read(asset)
        return quote if quote is not None and quote.is_fresh(max_age_s) else None


class FeedStatus:
    """The poller's health in Redis: connection state, reconnect count, last message per asset."""

    def __init__(self, client: Any):
        self.client = client

    def set_state(self, state: str) -> None:
        self.client.hset(FEED_STATUS_KEY, "state", state)

    def mark_alive(self, assets: list[str]) -> None:
        """Record that these markets' feed is alive now (their socket delivers, even if they are quiet)."""
        if assets:
            now = now_micros()
            self.client.hset(FEED_STATUS_KEY, mapping={f"{FEED_LAST_MESSAGE_FIELD}{a}": now for a in assets})

    def count_reconnect(self) -> None:
        self.client.hincrby(FEED_STATUS_KEY, "reconnects", 1)

    def read(self) -> dict[str, Any]:
        values = self.client.hgetall(FEED_STATUS_KEY)
        now = now_micros()
        return {
            "state": values.get("state"),
            "reconnects": int(values.get("reconnects", 0)),
            "lastMessageAgeSeconds": {
                key.removeprefix(FEED_LAST_MESSAGE_FIELD): max(0, now - int(value)) / 1_000_000
                for key, value in values.items()
                if key.startswith(FEED_LAST_MESSAGE_FIELD)
            },
        }
