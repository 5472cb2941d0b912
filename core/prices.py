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

# KEYS[1] price hash, KEYS[2] feed status; ARGV: bid, ask, time, u, channel, payload,
# status field, receipt time. Newer means a larger update id; without ids (u = -1), a later
# event time. The receipt time is recorded either way: it is the feed's liveness.
_WRITE_IF_NEWER = """
redis.call('HSET', KEYS[2], ARGV[7], ARGV[8])
local current = redis.call('HMGET', KEYS[1], 'u', 'time')
local new_u, new_time = tonumber(ARGV[4]), tonumber(ARGV[3])
if current[1] then
  local old_u, old_time = tonumber(current[1]), tonumber(current[2])
  if new_u >= 0 and old_u >= 0 then
    if new_u <= old_u then return 0 end
  elseif new_time <= old_time then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'bid', ARGV[1], 'ask', ARGV[2], 'time', ARGV[3], 'u', ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
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

    def write(self, quote: Quote) -> bool:
        """Store `quote` unless a newer one is already there; True when it was stored.

        Also records when the feed last delivered this asset (one round trip for both).
        """
        payload = json.dumps(quote.event())
        stored = self._write(
            keys=[PRICE_KEY.format(asset=quote.asset), FEED_STATUS_KEY],
            args=[
                quote.bid,
                quote.ask,
                quote.time_us,
                quote.update_id,
                PRICE_CHANNEL.format(asset=quote.asset),
                payload,
                f"{FEED_LAST_MESSAGE_FIELD}{quote.asset}",
                now_micros(),
            ],
        )
        return bool(stored)

    def read(self, asset: str) -> Quote | None:
        values = self.client.hgetall(PRICE_KEY.format(asset=asset))
        if not values:
            return None
        return Quote(asset, int(values["bid"]), int(values["ask"]), int(values["time"]), int(values["u"]))

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
