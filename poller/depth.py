"""An L2 book per market from `depth.<symbol>` deltas aligned with the REST snapshot.

Alignment (backpack-protocol.md §2.4, §4.5, §5): buffer deltas while the snapshot is fetched;
drop those with `u <= lastUpdateId`; the first kept delta must straddle it
(`U <= lastUpdateId + 1 <= u`), and every later one must follow on (`U == previous u + 1`). A gap
resyncs that market alone. REST bids come ascending; levels are applied by price, never by
position; a zero size deletes a level. Prices become integers in the asset's decimals (bids
rounded down, asks up, as quotes are) and sizes integers in 8 decimals (rounded down: never more
liquidity than shown).
"""

import bisect
import logging
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from core.assets import QUANTITY_DECIMALS, Asset
from core.money import plain_units

log = logging.getLogger(__name__)
TOP_LEVELS = 50  # a side, kept in Redis


class BookGap(Exception):
    """The deltas no longer follow on from the book: resync this market."""


def _size(value) -> int:
    plain = plain_units(value, QUANTITY_DECIMALS, ROUND_FLOOR) if isinstance(value, str) else None
    if plain is not None:
        return plain
    try:
        number = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"size is not a decimal: {value!r}") from None
    if not number.is_finite() or number < 0:
        raise ValueError(f"size is not a size: {value!r}")
    return int(number.scaleb(QUANTITY_DECIMALS).to_integral_value(rounding=ROUND_FLOOR))


def _price(value, decimals: int, rounding: str) -> int:
    plain = plain_units(value, decimals, rounding) if isinstance(value, str) else None
    if plain is not None and plain > 0:
        return plain
    number = Decimal(value)
    if not number.is_finite() or number <= 0:
        raise ValueError(f"price is not positive: {value!r}")
    return int(number.scaleb(decimals).to_integral_value(rounding=rounding))


class DepthBook:
    """One market's book. Not thread-safe by itself: the poller calls it under its lock."""

    def __init__(self, asset: Asset):
        self.asset = asset
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._bid_prices: list[int] = []  # ascending, kept in step with the dicts (no sort per frame)
        self._ask_prices: list[int] = []
        self._bid_json: dict[int, str] = {}  # "[price,size]" of each level, made once per change
        self._ask_json: dict[int, str] = {}
        self.last_u: int | None = None  # None while syncing
        self.buffer: list[dict] = []
        self.snapshot: dict | None = None  # fetched, waiting for the socket to catch up with it
        self.time_us = 0

    @property
    def live(self) -> bool:
        return self.last_u is not None

    def reset(self) -> None:
        self.last_u, self.buffer, self.snapshot = None, [], None
        self.reset_levels()

    def reset_levels(self) -> None:
        self.bids, self.asks, self._bid_prices, self._ask_prices = {}, {}, [], []
        self._bid_json, self._ask_json = {}, {}

    def _apply(self, side: dict[int, int], prices: list[int], texts: dict[int, str], levels, rounding: str) -> None:
        for price, size in levels:
            key, amount = _price(price, self.asset.decimals, rounding), _size(size)
            if amount == 0:
                if side.pop(key, None) is not None:
                    del prices[bisect.bisect_left(prices, key)]
            else:
                if key not in side:
                    bisect.insort(prices, key)
                side[key] = amount
                texts[key] = f"[{key},{amount}]"

    def _apply_delta(self, delta: dict) -> None:
        self._apply(self.bids, self._bid_prices, self._bid_json, delta.get("b") or [], ROUND_FLOOR)
        self._apply(self.asks, self._ask_prices, self._ask_json, delta.get("a") or [], ROUND_CEILING)
        self.last_u = int(delta["u"])
        self.time_us = int(delta.get("E") or self.time_us)

    def on_delta(self, delta: dict) -> bool:
        """Apply (or, while syncing, buffer) one delta; True when the live book changed. Raises BookGap."""
        if not self.live:
            self.buffer.append(delta)
            return self.snapshot is not None and self._align()
        if int(delta["U"]) != self.last_u + 1:
            raise BookGap(f"{self.asset.symbol}: update {delta['U']} after {self.last_u}")
        self._apply_delta(delta)
        return True

    def on_snapshot(self, snapshot: dict) -> bool:
        """Seed the book from a REST snapshot and replay the buffered deltas that follow it.

        True once live. False when the socket has not yet caught up with the snapshot (it is kept,
        and the next deltas try again). Raises BookGap when the deltas cannot bridge to it.
        """
        self.snapshot = snapshot
        return self._align()

    def _align(self) -> bool:
        snapshot = self.snapshot
        last = int(snapshot["lastUpdateId"])
        kept = [d for d in self.buffer if int(d["u"]) > last]
        if not kept:
            return False
        if not int(kept[0]["U"]) <= last + 1 <= int(kept[0]["u"]):
            self.buffer, self.snapshot = [], None
            raise BookGap(f"{self.asset.symbol}: snapshot {last} does not meet delta {kept[0]['U']}")
        self.reset_levels()
        self._apply(self.bids, self._bid_prices, self._bid_json, snapshot.get("bids") or [], ROUND_FLOOR)
        self._apply(self.asks, self._ask_prices, self._ask_json, snapshot.get("asks") or [], ROUND_CEILING)
        self.last_u, self.buffer, self.snapshot = last, [], None
        for delta in kept:
            if int(delta["U"]) > self.last_u + 1:
                self.reset()
                raise BookGap(f"{self.asset.symbol}: buffered update {delta['U']} after {self.last_u}")
            self._apply_delta(delta)
        return True

    def top(self, levels: int = TOP_LEVELS) -> dict:
        """The best `levels` a side: bids highest first, asks lowest first, as [price, size] pairs."""
        return {
            "bids": [[p, self.bids[p]] for p in reversed(self._bid_prices[-levels:])],
            "asks": [[p, self.asks[p]] for p in self._ask_prices[:levels]],
            "u": self.last_u,
            "time": self.time_us,
        }

    def serialized(self, levels: int = TOP_LEVELS) -> str:
        """`top()` as compact JSON, assembled from each level's cached text (once a write of the book)."""
        bids = ",".join(self._bid_json[p] for p in reversed(self._bid_prices[-levels:]))
        asks = ",".join(self._ask_json[p] for p in self._ask_prices[:levels])
        return f'{{"bids":[{bids}],"asks":[{asks}],"u":{self.last_u},"time":{self.time_us}}}'
