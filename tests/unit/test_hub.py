"""The stream hub's fan-out, without Redis: per-account routing, price coalescing, slow clients."""

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from app.hub import CLOSED, LISTENER_BACKLOG, PRICE_EVENTS_PER_S, Hub, Listener
from core import events
from core.net_events import FillState, NetOrderState, PositionState, PublicTrades


def hub_with(*listeners: Listener) -> Hub:
    hub = Hub("redis://127.0.0.1:9/0")  # never started: events are dispatched by hand
    for listener in listeners:
        hub._register(listener)
    return hub


def dispatch(hub: Hub, channel: str, data: dict) -> None:
    hub._dispatch(channel, json.dumps(data))


def failed(hub: Hub, account_id: int, order_id: str) -> None:
    """An account event as the engine publishes one (`core.events.dumps`)."""
    hub._dispatch(
        f"account-events:{account_id}", events.dumps(events.RequestFailed(account_id, order_id, "not_working"))
    )


def drain(listener: Listener) -> list:
    events = []
    while (event := listener.get(timeout=0)) is not None and event is not CLOSED:
        events.append(event)
    return events


def test_account_events_reach_only_that_accounts_listeners():
    mine, theirs, anonymous = Listener(account=7), Listener(account=8), Listener()
    hub = hub_with(mine, theirs, anonymous)
    failed(hub, 7, "o1")
    assert [e.data for e in drain(mine)] == [events.RequestFailed(7, "o1", "not_working")]
    assert drain(theirs) == [] and drain(anonymous) == []


def test_an_account_event_nobody_here_waits_for_is_dropped_unparsed():
    hub = hub_with(Listener(account=7))
    hub._dispatch("account-events:8", "{not json: another web process serves account 8}")
    assert hub.by_account.keys() == {7}


def test_a_request_waiting_for_the_engine_gets_its_accounts_events_and_no_prices():
    waiter, stream = Listener(account=7, prices=False), Listener(account=7)
    hub = hub_with(waiter, stream)
    dispatch(hub, "prices:BTC", {"asset": "BTC", "bid": 1, "ask": 2, "time": 1})
    hub._flush_prices()
    failed(hub, 7, "o1")
    assert [e.kind for e in drain(waiter)] == ["account"]
    assert [e.kind for e in drain(stream)] == ["price", "account"]
    hub.leave(waiter)
    failed(hub, 7, "o2")
    assert drain(waiter) == [] and [e.data.order_id for e in drain(stream)] == ["o2"]


def test_prices_are_coalesced_per_asset_and_sent_at_most_ten_times_a_second():
    listener = Listener()
    hub = hub_with(listener)
    for bid in range(100):
        dispatch(hub, "prices:BTC", {"asset": "BTC", "bid": bid, "ask": bid + 1, "time": bid})
    dispatch(hub, "prices:ETH", {"asset": "ETH", "bid": 5, "ask": 6, "time": 1})
    hub._flush_prices()
    dispatch(hub, "prices:BTC", {"asset": "BTC", "bid": 500, "ask": 501, "time": 500})
    hub._flush_prices()  # within 1/10 s of the last BTC event: held back, latest kept
    sent = drain(listener)
    assert [(e.data["asset"], e.data["bid"]) for e in sent] == [("BTC", 99), ("ETH", 5)]
    time.sleep(1 / PRICE_EVENTS_PER_S)
    hub._flush_prices()
    assert [e.data["bid"] for e in drain(listener)] == [500]


def test_public_trades_reach_every_listener_following_them_and_no_other():
    follower, other = Listener(prices=False, trades=True), Listener()
    hub = hub_with(follower, other)
    created = datetime(2026, 12, 4, 11, 0, tzinfo=UTC)
    printed = PublicTrades("BTC_USDC_PERP", "buy", 41, ((101, 1_183_210, 3_000_000, False, created),))
    hub._dispatch("trades:BTC_USDC_PERP", printed.dumps())
    assert [e.data for e in drain(follower)] == [printed] and drain(other) == []


def test_a_listener_turns_its_price_events_off_and_on_while_it_listens():
    listener = Listener(account=7, prices=False)
    hub = hub_with(listener)
    dispatch(hub, "prices:BTC", {"asset": "BTC", "bid": 1, "ask": 2, "time": 1})
    hub._flush_prices()
    assert drain(listener) == []
    hub.follow_prices(listener, True)
    time.sleep(1 / PRICE_EVENTS_PER_S)
    dispatch(hub, "prices:BTC", {"asset": "BTC", "bid": 3, "ask": 4, "time": 2})
    hub._flush_prices()
    assert [e.data["bid"] for e in drain(listener)] == [3]
    hub.leave(listener)
    hub.follow_prices(listener, True)  # a listener that left stays gone
    assert listener not in hub.following_prices


def test_a_client_too_far_behind_is_dropped_and_its_stream_ends():
    slow = Listener(account=1)
    hub = hub_with(slow)
    for n in range(LISTENER_BACKLOG + 1):
        failed(hub, 1, str(n))
    assert slow not in hub.listeners and 1 not in hub.by_account
    assert slow.get(timeout=0) is CLOSED


def test_every_kind_of_account_event_is_parsed_back_to_itself():
    balance = events.BalanceState(499_875, 100_000)
    for event in (
        events.RequestFailed(7, "o1", "not_working"),
        events.ResetEnded(7, "r1", events.ResetStatus.DONE),
        events.FundingPaid(7, "BTC_USDC_PERP", 1_764_792_000_000, -125, balance),
        net_order_changed(),
    ):
        assert events.loads(events.dumps(event)) == event
    assert set(events.KINDS) == {"order", "failed", "reset", "funding", "net_order"}


def net_order_changed() -> events.NetOrderChanged:
    """A partly filled order with a fill and the position it opened, every field's type used."""
    created = datetime(2026, 12, 4, 11, 0, 0, 123456, tzinfo=UTC)
    order = NetOrderState(
        uuid.uuid4(), 41, 7, "BTC_USDC_PERP", "buy", "limit", "partially_filled", 5_000_000, None, 1_183_210,
        "GTC", False, False, 12, 3_000_000, 354_963, 177, False, None, 9, None, None, None, None, None, None,
        uuid.uuid4(), created, None,
    )  # fmt: skip
    fill = FillState(101, 1_183_210, 3_000_000, 177, 0, True, created)
    position = PositionState("BTC_USDC_PERP", 3_000_000, Decimal("3549630000000"), -177, created)
    return events.NetOrderChanged(7, order, -1_250, (fill,), position)
