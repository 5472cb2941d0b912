"""The order book: its store in Redis, and fills that walk it (pure rules: integers, no I/O).

A book is usable while the poller keeps it (it deletes it while resyncing or disconnected) and
its market's feed is alive; a quiet market is not stale as long as its socket lives.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.enums import FillModel
from core.keys import BOOK_KEY, FEED_LAST_MESSAGE_FIELD, FEED_STATUS_KEY
from core.money import BPS, ceil_div, scale
from core.prices import now_micros


@dataclass(frozen=True)
class Level:
    price: int  # in the asset's price decimals
    quantity: int  # in 8 decimals


@dataclass(frozen=True)
class Book:
    asset: str
    bids: tuple[Level, ...]  # best (highest) first
    asks: tuple[Level, ...]  # best (lowest) first
    update_id: int


class BookStore:
    def __init__(self, client: Any):
        self.client = client

    def write(self, asset: str, book_json: str) -> None:
        """One round trip a frame; the market's liveness is kept by its quotes and the poller's
        socket (`FeedStatus.mark_alive`), not written again with every book."""
        self.client.set(BOOK_KEY.format(asset=asset), book_json)

    def write_many(self, books: dict[str, str]) -> None:
        """Several markets' books in one round trip."""
        self.client.mset({BOOK_KEY.format(asset=asset): book_json for asset, book_json in books.items()})

    def delete(self, *assets: str) -> None:
        if assets:
            self.client.delete(*(BOOK_KEY.format(asset=asset) for asset in assets))

    def read(self, asset: str, max_age_s: float) -> Book | None:
        """The book if the poller keeps one and the market's feed was alive within `max_age_s`."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(BOOK_KEY.format(asset=asset))
        pipe.hget(FEED_STATUS_KEY, f"{FEED_LAST_MESSAGE_FIELD}{asset}")
        raw, alive = pipe.execute()
        if raw is None or alive is None or now_micros() - int(alive) > max_age_s * 1_000_000:
            return None
        data = json.loads(raw)
        return Book(
            asset,
            tuple(Level(int(p), int(q)) for p, q in data["bids"]),
            tuple(Level(int(p), int(q)) for p, q in data["asks"]),
            int(data["u"]),
        )


@dataclass(frozen=True)
class Execution:
    fills: tuple[Level, ...]  # what each level gave, best first
    quantity: int  # filled in all
    price: int  # the volume-weighted average, rounded against the trader


def levels_within(book: Book, buying: bool, limit: int | None = None) -> tuple[Level, ...]:
    """The levels a buy takes (the asks) or a sell (the bids), only those at or better than `limit`."""
    levels = book.asks if buying else book.bids
    if limit is None:
        return levels
    return tuple(level for level in levels if (level.price <= limit if buying else level.price >= limit))


def walk(levels: Sequence[Level], quantity: int, buying: bool) -> Execution | None:
    """Fill `quantity` from `levels` (best first): the VWAP over the levels consumed, rounded up
    when buying and down when selling. None when the visible book is too thin for all of it."""
    fills, remaining, cost = [], quantity, 0
    for level in levels:
        if remaining == 0:
            break
        take = min(level.quantity, remaining)
        if take > 0:
            fills.append(Level(level.price, take))
            cost += level.price * take
            remaining -= take
    if remaining or quantity <= 0:
        return None
    return Execution(tuple(fills), quantity, ceil_div(cost, quantity) if buying else cost // quantity)


def walk_or_worst(levels: Sequence[Level], quantity: int, buying: bool) -> Execution | None:
    """As `walk`, but a book too thin fills the rest at its worst visible level (engine-triggered
    closes must happen). None only for an empty side."""
    visible = sum(level.quantity for level in levels)
    if not levels or visible == 0:
        return None
    if visible >= quantity:
        return walk(levels, quantity, buying)
    worst = levels[-1]
    extended = [*levels[:-1], Level(worst.price, worst.quantity + quantity - visible)]
    return walk(extended, quantity, buying)


def expected_fill(
    book: Book | None, bid: int, ask: int, quantity: int, buying: bool, limit: int | None = None, forced: bool = False
) -> tuple[Execution, FillModel] | None:
    """What `quantity` fills at now: the book walked level by level (within `limit`, if any), or the
    top of book for any size without a fresh depth book. None: it cannot fill (a `forced` fill
    takes what a thin book lacks at its worst visible level instead)."""
    if book is not None:
        execution = (walk_or_worst if forced else walk)(levels_within(book, buying, limit), quantity, buying)
        return None if execution is None else (execution, FillModel.DEPTH)
    price = ask if buying else bid
    if limit is not None and (price > limit if buying else price < limit):
        return None
    return Execution((Level(price, quantity),), quantity, price), FillModel.TOP_OF_BOOK


def notional(price: int, quantity: int, price_decimals: int) -> int:
    """USD units of `quantity` at `price`, rounded down."""
    return price * quantity // scale(price_decimals)


def fee(notional_usd: int, fee_bps: int) -> int:
    """The taker fee on a notional, rounded up (against the trader)."""
    return ceil_div(notional_usd * fee_bps, BPS)


def slippage_bps(reference: int, price: int, buying: bool) -> int:
    """How far the fill is from the reference, in basis points, positive when worse for the trader
    (rounded toward zero)."""
    worse = price - reference if buying else reference - price
    magnitude = abs(worse) * BPS // reference
    return magnitude if worse >= 0 else -magnitude
