"""Trigger levels on the real engine, Redis and poller path: a price move costs a check only when
it crosses something, and only for the shards that hold it; the engine keeps the levels as it
opens, closes and sweeps, and checks a new position its own quote already crosses at once."""

import pytest

from app.extensions import redis_client
from core.prices import Quote, now_micros
from core.shards import shard_of
from core.triggers import Levels, TriggerLevels
from poller.wiring import check_crossings
from tests.support.feed import RecordingSender, request_trigger_checks
from tests.support.trading import BTC_ASK, BTC_BID, open_trade
from tests.support.waiting import eventually, wait_for_status

pytestmark = pytest.mark.usefixtures("engine_worker")


def quote(bid: int) -> Quote:
    return Quote("BTC", bid, bid + 100_000, now_micros())


def test_a_price_move_crossing_no_level_sends_no_check(app_ctx):
    sender = RecordingSender()
    assert check_crossings(redis_client, sender, [quote(BTC_BID)]) == 0  # nothing open anywhere
    TriggerLevels(redis_client).tighten("BTC", 3, Levels(bid_at_or_below=990_000_000))
    TriggerLevels(redis_client).tighten("BTC", 5, Levels(ask_at_or_above=1_200_000_000))
    assert check_crossings(redis_client, sender, [quote(995_000_000)]) == 0
    assert check_crossings(redis_client, sender, [quote(989_000_000)]) == 1
    assert sender.sent == [("engine.check_triggers", "BTC", 3)]  # only the shard that holds it
    TriggerLevels(redis_client).tighten("ETH", 7, Levels(bid_at_or_below=3_000_000_000))
    eth, sol = Quote("ETH", 2_999_000_000, 2_999_100_000, now_micros()), Quote("SOL", 1, 2, now_micros())
    redis_client.delete(*redis_client.keys("engine:trigger-check-pending:*"))  # the BTC check ran
    assert check_crossings(redis_client, sender, [sol, eth, quote(980_000_000)]) == 2  # levels read at once
    assert sender.sent[1:] == [("engine.check_triggers", "ETH", 7), ("engine.check_triggers", "BTC", 3)]


def levels_of(app, account_id) -> Levels:
    with app.app_context():
        return TriggerLevels(redis_client).read("BTC").get(shard_of(account_id, app.config["ENGINE_SHARDS"]), Levels())


def test_the_engine_keeps_a_positions_levels_and_a_check_loosens_what_a_close_left(app, client, make_user, set_price):
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    position = open_trade(client, headers, margin=10_000, leverage=10, takeProfit=1_100_000_000).json
    expected = Levels(bid_at_or_below=position["liquidationPrice"], bid_at_or_above=1_100_000_000)
    eventually(lambda: levels_of(app, account_id) == expected)  # written right after the answer's event
    assert client.post("/api/v1/trade/close", json={"orderId": position["orderId"]}, headers=headers).status_code == 200
    set_price("BTC", position["liquidationPrice"] - 1, position["liquidationPrice"] + 100_000)
    assert request_trigger_checks(app) == 1  # the closed position's level, left behind: one spurious check
    eventually(lambda: levels_of(app, account_id) == Levels(), timeout=15, interval=0.1)  # which loosened it


def test_a_new_position_its_quote_already_crosses_closes_without_another_move(app, client, make_user, set_price, beat):
    """Its stop-loss sits between the bid and the ask it opened at: the poller compared this quote
    with the levels before the position existed, so the engine checks it itself (beat stopped: no
    sweep does it instead)."""
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    beat.stop()
    try:
        position = open_trade(client, headers, margin=10_000, leverage=10, stopLoss=BTC_BID + 1).json
        assert position["status"] == "open"
        closed = wait_for_status(app, position["orderId"], "closed")
    finally:
        beat.start()
    assert closed.close_reason == "stop_loss" and closed.close_price == BTC_BID


def test_levels_lost_with_redis_come_back_with_the_sweep_and_check_what_they_cross(app, client, make_user, set_price):
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    position = open_trade(client, headers, margin=10_000, leverage=100).json
    eventually(lambda: levels_of(app, account_id) != Levels())
    with app.app_context():
        redis_client.delete(*redis_client.keys("trigger-levels*"))  # as if Redis had lost them
    set_price("BTC", position["liquidationPrice"] - 1, position["liquidationPrice"] + 100_000)
    assert request_trigger_checks(app) == 0  # the poller sees no level to cross
    liquidated = wait_for_status(app, position["orderId"], "closed", timeout=30)  # beat's sweep, every 5 s
    assert liquidated.close_reason == "liquidation"
