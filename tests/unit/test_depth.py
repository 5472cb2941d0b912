"""The depth book's alignment with the REST snapshot, by hand-made deltas (backpack-protocol.md §2.4)."""

import json

import pytest

from core.assets import ASSETS
from poller.depth import BookGap, DepthBook

SOL = ASSETS["SOL"]


def delta(first: int, last: int, bids=(), asks=()) -> dict:
    return {
        "e": "depth",
        "s": "SOL_USDC",
        "U": first,
        "u": last,
        "b": [list(b) for b in bids],
        "a": [list(a) for a in asks],
        "E": 1_000_000 * last,
    }


def snapshot(last: int, bids=(("178.40", "1.0"), ("178.41", "2.0")), asks=(("178.43", "3.0"), ("178.44", "4.0"))):
    # REST: both sides ascending, the best bid last; lastUpdateId is a string
    return {"bids": [list(b) for b in bids], "asks": [list(a) for a in asks], "lastUpdateId": str(last)}


def test_deltas_up_to_the_snapshot_are_dropped_and_the_first_kept_one_straddles_it():
    book = DepthBook(SOL)
    book.on_delta(delta(8, 8, bids=[("178.39", "9")]))  # older than the snapshot: dropped
    book.on_delta(delta(9, 11, asks=[("178.43", "0.000")]))  # U <= 10 + 1 <= u: applied on top
    assert book.on_snapshot(snapshot(10)) is True and book.live
    top = book.top()
    assert top["bids"] == [[178_410_000, 200_000_000], [178_400_000, 100_000_000]]  # best first, 8-decimal sizes
    assert top["asks"] == [[178_440_000, 400_000_000]] and top["u"] == 11  # the zero size deleted its level
    assert book.on_delta(delta(12, 12, bids=[("178.42", "0.5")])) is True
    assert book.top()["bids"][0] == [178_420_000, 50_000_000]
    assert json.loads(book.serialized()) == book.top()  # the per-frame JSON, assembled from cached levels
    with pytest.raises(BookGap):
        book.on_delta(delta(14, 14))  # 13 never came


def test_a_snapshot_ahead_of_the_socket_waits_for_the_deltas_that_reach_it():
    book = DepthBook(SOL)
    book.on_delta(delta(15, 15))
    assert book.on_snapshot(snapshot(20)) is False and not book.live  # the REST book is ahead
    for update in range(16, 20):
        assert book.on_delta(delta(update, update)) is False
    assert book.on_delta(delta(20, 21, bids=[("178.42", "1")])) is True and book.live
    assert book.top()["bids"][0] == [178_420_000, 100_000_000]


def test_a_snapshot_the_deltas_cannot_reach_is_refused():
    book = DepthBook(SOL)
    book.on_delta(delta(9, 9))
    with pytest.raises(BookGap):
        book.on_snapshot(snapshot(5))  # 6, 7, 8 are missing between the snapshot and the deltas
    assert not book.live and book.buffer == []


def test_levels_are_applied_by_price_never_by_position():
    book = DepthBook(SOL)
    book.on_delta(delta(11, 11, bids=[("178.30", "1"), ("178.42", "2"), ("178.41", "0")]))
    book.on_snapshot(snapshot(10))
    assert [price for price, _ in book.top()["bids"]] == [178_420_000, 178_400_000, 178_300_000]


def test_a_resync_forgets_the_book():
    book = DepthBook(SOL)
    book.on_delta(delta(11, 11))
    book.on_snapshot(snapshot(10))
    book.reset()
    assert not book.live and book.top()["bids"] == [] and book.snapshot is None
