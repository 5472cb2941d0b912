"""Trigger levels: per market and shard, the nearest prices at which something of that shard would
change (a liquidation, a stop-loss, a take-profit, a working limit or stop order), kept in Redis
where the poller compares every price with them. A price move costs a trigger check only when it
crosses a level, and only for the shards that hold it: with nobody trading, it costs nothing.

The engine (the one writer of its shards) tightens a shard's levels as it opens positions and
places orders, then compares them with the latest quote; the poller writes each quote, then
compares it with the levels. Redis runs one command at a time, so of a new level and a new quote
crossing it, one of the two sides sees the other: no crossing goes unchecked. Closing and
cancelling leave the levels tight (a spurious check costs a read); each trigger check and sweep
puts its shards' levels back to what the book of positions and orders says.
"""

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from core.enums import OrderType, Side
from core.keys import TRIGGER_LEVELS_KEY


@dataclass(frozen=True)
class Levels:
    """A shard's nearest trigger prices on one market (None: nothing triggers that way)."""

    bid_at_or_below: int | None = None  # longs' liquidation and stop-loss, shorts' stop orders
    bid_at_or_above: int | None = None  # longs' take-profit, shorts' limit orders
    ask_at_or_above: int | None = None  # shorts' liquidation and stop-loss, longs' stop orders
    ask_at_or_below: int | None = None  # shorts' take-profit, longs' limit orders

    def crossed(self, bid: int, ask: int) -> bool:
        """Whether this quote reaches any of the levels (as `workers.triggers` finds what it crossed)."""
        return (
            (self.bid_at_or_below is not None and bid <= self.bid_at_or_below)
            or (self.bid_at_or_above is not None and bid >= self.bid_at_or_above)
            or (self.ask_at_or_above is not None and ask >= self.ask_at_or_above)
            or (self.ask_at_or_below is not None and ask <= self.ask_at_or_below)
        )

    def tighter(self, other: "Levels") -> "Levels":
        """The nearer of each pair of levels: what triggers at either triggers here."""
        return Levels(
            _nearest(max, self.bid_at_or_below, other.bid_at_or_below),
            _nearest(min, self.bid_at_or_above, other.bid_at_or_above),
            _nearest(min, self.ask_at_or_above, other.ask_at_or_above),
            _nearest(max, self.ask_at_or_below, other.ask_at_or_below),
        )


NEAREST = {"bid_at_or_below": "max", "bid_at_or_above": "min", "ask_at_or_above": "min", "ask_at_or_below": "max"}


def _nearest(pick: Any, a: int | None, b: int | None) -> int | None:
    present = [level for level in (a, b) if level is not None]
    return pick(present) if present else None


def of_position(side: Side, liquidation: int, stop_loss: int | None, take_profit: int | None) -> Levels:
    """An open position closes as the price it closes at (a long's bid, a short's ask) crosses these."""
    losing = _nearest(max if side == Side.LONG else min, liquidation, stop_loss)
    if side == Side.LONG:
        return Levels(bid_at_or_below=losing, bid_at_or_above=take_profit)
    return Levels(ask_at_or_above=losing, ask_at_or_below=take_profit)


def of_working(order_type: OrderType, side: Side, price: int) -> Levels:
    """A working order is reached as the price it opens at (a long's ask, a short's bid) crosses it."""
    if order_type == OrderType.LIMIT:
        return Levels(ask_at_or_below=price) if side == Side.LONG else Levels(bid_at_or_above=price)
    return Levels(ask_at_or_above=price) if side == Side.LONG else Levels(bid_at_or_below=price)


def fold(levels: Iterable[Levels]) -> Levels:
    nearest = Levels()
    for level in levels:
        nearest = nearest.tighter(level)
    return nearest


# KEYS[1]: the market's hash; ARGV: (field, price, 'max'|'min') triples. A level only ever moves
# nearer the price here.
_TIGHTEN = """
for i = 1, #ARGV, 3 do
    local current = redis.call('HGET', KEYS[1], ARGV[i])
    local price = tonumber(ARGV[i + 1])
    if not current or (ARGV[i + 2] == 'max' and price > tonumber(current))
            or (ARGV[i + 2] == 'min' and price < tonumber(current)) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
end
"""


# KEYS: level hashes; one call answers every one's fields and values, flat.
_READ_MANY = """
local found = {}
for i = 1, #KEYS do found[i] = redis.call('HGETALL', KEYS[i]) end
return found
"""


def _field(shard: int, name: str) -> str:
    return f"{shard}:{name}"


class TriggerLevels:
    """The levels in Redis: one hash per market, a field per shard and kind of level."""

    def __init__(self, client: Any):
        self.client = client

    def tighten(self, asset: str, shard: int, levels: Levels) -> None:
        args: list[Any] = []
        for kind in fields(Levels):
            price = getattr(levels, kind.name)
            if price is not None:
                args += [_field(shard, kind.name), price, NEAREST[kind.name]]
        if args:
            self.client.eval(_TIGHTEN, 1, TRIGGER_LEVELS_KEY.format(asset=asset), *args)

    def replace(self, asset: str, levels: dict[int, Levels]) -> None:
        """Set these shards' levels to exactly `levels` (a shard with nothing left: none)."""
        key = TRIGGER_LEVELS_KEY.format(asset=asset)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(key, *(_field(shard, kind.name) for shard in levels for kind in fields(Levels)))
            values = {
                _field(shard, kind.name): getattr(shard_levels, kind.name)
                for shard, shard_levels in levels.items()
                for kind in fields(Levels)
                if getattr(shard_levels, kind.name) is not None
            }
            if values:
                pipe.hset(key, mapping=values)
            pipe.execute()

    def read(self, asset: str) -> dict[int, Levels]:
        return _by_shard(self.client.hgetall(TRIGGER_LEVELS_KEY.format(asset=asset)))

    def crossed_shards(self, asset: str, bid: int, ask: int) -> list[int]:
        """The shards whose levels on `asset` this quote crosses."""
        return sorted(shard for shard, levels in self.read(asset).items() if levels.crossed(bid, ask))

    def crossed_shards_many(self, prices: list[tuple[str, int, int]]) -> dict[str, list[int]]:
        """`crossed_shards` of several (asset, bid, ask) in one call: the assets crossing any."""
        if not prices:
            return {}
        flat = self.client.eval(_READ_MANY, len(prices), *(TRIGGER_LEVELS_KEY.format(asset=a) for a, _, _ in prices))
        crossed = {}
        for (asset, bid, ask), pairs in zip(prices, flat, strict=True):
            raw = dict(zip(pairs[::2], pairs[1::2], strict=True))
            shards = sorted(shard for shard, levels in _by_shard(raw).items() if levels.crossed(bid, ask))
            if shards:
                crossed[asset] = shards
        return crossed


def _by_shard(raw: dict[Any, Any]) -> dict[int, Levels]:
    by_shard: dict[int, Levels] = {}
    for field, price in raw.items():
        shard, kind = _text(field).split(":")
        by_shard[int(shard)] = replace(by_shard.get(int(shard), Levels()), **{kind: int(price)})
    return by_shard


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
