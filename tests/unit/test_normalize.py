"""Backpack frames to exact integer quotes: tables, malformed frames, and a property-based fuzz
that only the documented error (`BadFrame`) ever escapes."""

import contextlib
import json
import random
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poller.feed import backoff_delay
from poller.normalize import BadFrame, mark_from, parse_frame
from tests.support.feed import book_ticker


@pytest.mark.parametrize(
    "symbol, bid, ask, asset, bid_units, ask_units",
    [
        ("SOL_USDC", "178.42", "178.43", "SOL", 178_420_000, 178_430_000),
        ("BTC_USDC", "118318.3", "118318.4", "BTC", 1_183_183_000, 1_183_184_000),
        ("ETH_USDC", "3667.49", "3667.50", "ETH", 3_667_490_000, 3_667_500_000),
        # more digits than the asset keeps: the bid rounds down, the ask up (never a narrower spread)
        ("BTC_USDC", "118318.31239", "118318.31231", "BTC", 1_183_183_123, 1_183_183_124),
        ("SOL_USDC", "178.4200009", "178.4200001", "SOL", 178_420_000, 178_420_001),
    ],
)
def test_normalization_table(symbol, bid, ask, asset, bid_units, ask_units):
    quote = parse_frame(book_ticker(symbol, bid, ask))
    assert (quote.asset, quote.bid, quote.ask) == (asset, bid_units, ask_units)
    assert quote.time_us == 1754517402450016 and quote.update_id == 1


def test_update_id_and_time_accepted_as_strings_or_numbers():
    assert parse_frame(book_ticker("SOL_USDC", "1", "2", u="111063070525358080")).update_id == 111063070525358080
    millis = parse_frame(book_ticker("SOL_USDC", "1", "2", E=1754517402450))
    assert millis.time_us == 1754517402450000
    assert parse_frame(book_ticker("SOL_USDC", "1", "2", E="1754517402450016")).time_us == 1754517402450016
    assert parse_frame(book_ticker("SOL_USDC", "1", "2", u=None)).update_id == -1


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        b"\xff\xfe",
        "[1, 2]",
        '{"id": null, "error": {"code": 4002, "message": "Parse error"}}',
        '{"stream": "bookTicker.SOL_USDC", "data": "oops"}',
        book_ticker("SOL_USDC", None, "178.43"),
        book_ticker("SOL_USDC", "178.42", None),
        book_ticker("SOL_USDC", "abc", "178.43"),
        book_ticker("SOL_USDC", "-1", "178.43"),
        book_ticker("SOL_USDC", 1.5, "178.43"),
        book_ticker("SOL_USDC", "179", "178"),
        book_ticker("SOL_USDC", "1", "2", u=True),
        book_ticker("SOL_USDC", "1", "2", E="soon"),
        book_ticker("SOL_USDC", "1", "2", E=0),  # no time at all: not the epoch, 56 years stale
    ],
)
def test_bad_frames_raise_bad_frame(raw):
    with pytest.raises(BadFrame):
        parse_frame(raw)


def test_frames_without_a_tracked_quote_are_ignored():
    assert parse_frame(book_ticker("DOGE_USDC", "1", "2")) is None
    trade = {"data": {"e": "trade", "s": "SOL_USDC", "p": "1"}, "stream": "trade.SOL_USDC"}
    assert parse_frame(json.dumps(trade)) is None


def test_backoff_is_exponential_with_full_jitter_and_capped():
    rng = random.Random(7)
    for attempt in range(12):
        delays = [backoff_delay(attempt, 0.5, 30, rng) for _ in range(200)]
        assert all(0 <= d <= min(30, 0.5 * 2**attempt) for d in delays)
        assert max(delays) > min(30, 0.5 * 2**attempt) * 0.8


@pytest.mark.parametrize(
    "raw",
    [
        book_ticker("SOL_USDC", "1", "2", u="²"),  # str.isdigit() accepts superscripts; int() does not
        book_ticker("SOL_USDC", "1", "2", E="１２３"),  # full-width digits
        book_ticker("SOL_USDC", "1", "2", u=-5),
        book_ticker("SOL_USDC", "1e999999", "2"),
        book_ticker("SOL_USDC", "NaN", "2"),
        book_ticker("SOL_USDC", "0.0000001", "2"),  # positive, but a zero bid once rounded down: refused
        book_ticker("SOL_USDC", "1", "Infinity"),
        '{"data": {"e": "bookTicker", "s": "SOL_USDC", "b": "1", "a": "2", "u": ' + "9" * 5000 + "}}",
        "[" * 100_000 + "]" * 100_000,
    ],
)
def test_odd_numbers_and_deep_frames_are_bad_frames_not_crashes(raw):
    with pytest.raises(BadFrame):
        parse_frame(raw)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=12,
)
field_values = json_values | st.sampled_from(["178.42", "²", "1e9999", "-0", "0.00000001", " 12 ", "NaN", ""])


@settings(max_examples=400, deadline=None)
@given(
    symbol=st.sampled_from(["SOL_USDC", "BTC_USDC", "ETH_USDC", "DOGE_USDC"]) | st.text(max_size=10),
    bid=field_values,
    ask=field_values,
    u=field_values,
    event_time=field_values,
    kind=st.sampled_from(["bookTicker", "trade"]) | st.text(max_size=5),
)
def test_fuzzed_frames_give_a_quote_none_or_bad_frame(symbol, bid, ask, u, event_time, kind):
    data = {"e": kind, "s": symbol, "b": bid, "a": ask, "u": u, "E": event_time}
    try:
        quote = parse_frame(json.dumps({"data": data, "stream": f"bookTicker.{symbol}"}))
    except BadFrame:
        return
    if quote is not None:
        assert 0 < quote.bid <= quote.ask and quote.time_us > 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_give_none_or_bad_frame(raw):
    with contextlib.suppress(BadFrame):
        parse_frame(raw)


PERPS = frozenset({"SOL_USDC_PERP", "AAPL.US_USDC_PERP"})
MARK = {"E": 1754517402000412, "T": 1754517401999871, "e": "markPrice", "f": "0.0000125", "i": "178.4391"}
MARK |= {"n": 1754517600000, "p": "178.43", "s": "SOL_USDC_PERP"}


def test_a_mark_frame_gives_mark_index_rate_and_next_funding_exactly():
    mark = mark_from(MARK, PERPS)
    assert (mark.market, mark.mark, mark.index) == ("SOL_USDC_PERP", Decimal("178.43"), Decimal("178.4391"))
    assert (mark.funding_rate, mark.next_funding_ms, mark.time_us) == (Decimal("0.0000125"), 1754517600000, MARK["E"])
    assert mark_from({**MARK, "f": "-0.0001"}, PERPS).funding_rate == Decimal("-0.0001")  # shorts pay
    prediction = mark_from({key: v for key, v in MARK.items() if key not in "fin"}, PERPS)
    assert prediction.funding_rate is None and prediction.index is None and prediction.next_funding_ms is None
    assert mark_from({**MARK, "E": 1754517402000}, PERPS).time_us == 1754517402000000  # milliseconds
    assert mark_from({**MARK, "s": "BTC_USDC_PERP"}, PERPS) is None  # not followed
    assert mark_from({**MARK, "e": "bookTicker"}, PERPS) is None


BAD_MARKS = [{"p": "0"}, {"p": "-1"}, {"p": 178.43}, {"p": "NaN"}, {"i": "x"}, {"f": "Infinity"}]
BAD_MARKS += [{"n": "soon"}, {"E": 0}]


@pytest.mark.parametrize("change", BAD_MARKS)
def test_a_malformed_mark_is_a_bad_frame(change):
    with pytest.raises(BadFrame):
        mark_from({**MARK, **change}, PERPS)
