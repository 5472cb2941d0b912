"""The poller against the local Backpack simulator over a real socket, writing to real Redis."""

import threading
import time

import pytest
import redis

from core.prices import FeedStatus, PriceStore, Quote, now_micros
from poller.feed import Poller
from tests.support.feed import RecordingSender, book_ticker
from tests.support.waiting import eventually

MARKETS = ["SOL_USDC", "BTC_USDC", "ETH_USDC"]


def test_only_a_newer_update_replaces_the_stored_quote(app_ctx):
    from app.extensions import redis_client

    store = PriceStore(redis_client)
    assert store.write(Quote("SOL", 100, 101, 1_000, 10))
    assert not store.write(Quote("SOL", 1, 2, 2_000, 9))
    assert not store.write(Quote("SOL", 1, 2, 2_000, 10))
    assert store.write(Quote("SOL", 102, 103, 500, 11))
    assert store.read("SOL") == Quote("SOL", 102, 103, 500, 11)
    assert store.read_fresh("SOL", max_age_s=10) is None  # time 500 µs after the epoch is stale


@pytest.fixture
def redis_conn(app):
    return redis.Redis.from_url(app.config["REDIS_URL"], decode_responses=True)


@pytest.fixture
def running_poller(simulator, redis_conn):
    moved = []
    poller = Poller(
        simulator.url,
        MARKETS,
        redis_conn,
        on_quotes=moved.extend,
        silence_s=1.0,
        backoff_base_s=0.05,
        backoff_cap_s=0.2,
    )
    poller.moved = moved
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    yield poller
    poller.stop()
    thread.join(5)
    assert not thread.is_alive()


def test_quotes_for_every_asset_reach_redis(running_poller, redis_conn):
    store = PriceStore(redis_conn)
    eventually(lambda: all(store.read_fresh(a, 5) for a in ("SOL", "BTC", "ETH")))
    status = FeedStatus(redis_conn).read()
    assert status["state"] == "connected"
    assert set(status["lastMessageAgeSeconds"]) == {"SOL", "BTC", "ETH"}
    assert all(age < 5 for age in status["lastMessageAgeSeconds"].values())
    btc = store.read("BTC")
    assert 0 < btc.bid <= btc.ask and btc.bid % 1000 == 0  # BTC tick 0.1 in 4 decimals
    assert running_poller.moved


def test_reconnects_and_resubscribes_after_the_server_drops_it(running_poller, simulator, redis_conn):
    eventually(lambda: running_poller.frames > 5)
    simulator.drop_connections()
    eventually(lambda: running_poller.connections >= 2)
    frames = running_poller.frames
    eventually(lambda: running_poller.frames > frames + 5)  # subscriptions came back
    assert int(redis_conn.hget("feed:status", "reconnects")) >= 1


def test_reconnects_after_a_server_close_frame(running_poller, simulator):
    eventually(lambda: running_poller.frames > 5)
    simulator.close_connections()
    eventually(lambda: running_poller.connections >= 2)
    frames = running_poller.frames
    eventually(lambda: running_poller.frames > frames + 5)


def test_simulator_drops_a_client_that_does_not_answer_pings():
    """The premise of the next test: a client that never answers is dropped within ~2.5 s."""
    import websocket

    from poller.simulator import Simulator

    simulator = Simulator(interval_s=0.05, ping_interval_s=0.5).start()
    mute = websocket.create_connection(simulator.url)  # never reads, so never answers a ping
    try:
        eventually(lambda: len(simulator.connections) == 1, timeout=2)
        eventually(lambda: len(simulator.connections) == 0, timeout=5)
    finally:
        mute.close()
        simulator.stop()


def test_answers_server_pings_so_the_server_keeps_the_connection(redis_conn):
    from poller.simulator import Simulator

    # the server pings every 0.5 s and drops a client that has not answered within 1 s
    simulator = Simulator(interval_s=0.05, ping_interval_s=0.5).start()
    poller = Poller(simulator.url, MARKETS, redis_conn, silence_s=5)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    try:
        time.sleep(3.5)
        assert poller.connections == 1 and poller.frames > 20
    finally:
        poller.stop()
        thread.join(5)
        simulator.stop()


def test_simulator_replays_a_recorded_file(redis_conn):
    from poller.simulator import Simulator

    replay = [{"s": "SOL_USDC", "b": "150.00", "a": "150.02"}, {"s": "BTC_USDC", "b": "90000.0", "a": "90000.2"}]
    simulator = Simulator(interval_s=0.05, replay=replay).start()
    poller = Poller(simulator.url, MARKETS, redis_conn, silence_s=5)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    store = PriceStore(redis_conn)
    try:
        eventually(lambda: store.read("SOL") is not None and store.read("BTC") is not None)
        sol, btc = store.read("SOL"), store.read("BTC")
        assert 149_950_000 <= sol.bid <= sol.ask <= 150_070_000  # around the replayed quote
        assert 899_990_000 <= btc.bid <= btc.ask <= 900_030_000
    finally:
        poller.stop()
        thread.join(5)
        simulator.stop()


def test_a_silent_half_open_socket_is_replaced(running_poller, simulator):
    eventually(lambda: running_poller.frames > 5)
    simulator.silent = True
    eventually(lambda: running_poller.connections >= 2, timeout=10)
    simulator.silent = False
    frames = running_poller.frames
    eventually(lambda: running_poller.frames > frames + 5)


def test_malformed_and_error_frames_are_skipped_and_the_feed_goes_on(running_poller, simulator):
    eventually(lambda: running_poller.frames > 5)
    for raw in (
        "garbage",
        '{"id":null,"error":{"code":4006,"message":"Invalid stream"}}',
        book_ticker("SOL_USDC", None, "1"),
    ):
        simulator.broadcast_raw(raw)
    eventually(lambda: running_poller.bad_frames >= 3)
    frames = running_poller.frames
    eventually(lambda: running_poller.frames > frames + 5)
    assert running_poller.connections == 1


def test_stale_prices_are_reported_by_health_and_refused_by_prices_store(app, client, redis_conn):
    store = PriceStore(redis_conn)
    store.write(Quote("ETH", 1, 2, now_micros() - 60_000_000, 1))
    assert store.read_fresh("ETH", app.config["PRICE_MAX_AGE_S"]) is None
    health = client.get("/api/v1/health").json
    assert health["prices"]["ETH"]["ok"] is False and health["prices"]["ETH"]["ageSeconds"] >= 59
    prices = client.get("/api/v1/prices").json
    assert prices["ETH"]["stale"] is True


def test_price_moves_coalesce_into_one_pending_check_per_asset_and_shard(app_ctx):
    from app.extensions import redis_client
    from core.tasks import clear_trigger_check, request_trigger_check

    sender = RecordingSender()
    for _ in range(50):
        assert request_trigger_check(redis_client, sender, "SOL", range(4)) in (0, 4)
    request_trigger_check(redis_client, sender, "BTC", range(4))
    assert sender.sent == [("engine.check_triggers", asset, shard) for asset in ("SOL", "BTC") for shard in range(4)]
    clear_trigger_check(redis_client, "SOL", 2)  # what shard 2's check does first
    assert request_trigger_check(redis_client, sender, "SOL", range(4)) == 1
    assert sender.sent[-1] == ("engine.check_triggers", "SOL", 2) and len(sender.sent) == 9


@pytest.fixture
def depth_poller(simulator, redis_conn):
    poller = Poller(simulator.url, MARKETS, redis_conn, silence_s=5, rest_url=f"http://127.0.0.1:{simulator.port}")
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    yield poller
    poller.stop()
    thread.join(5)


def test_the_poller_keeps_the_simulators_book_in_redis(depth_poller, simulator, redis_conn):
    from core.book import BookStore

    store = BookStore(redis_conn)
    book = eventually(lambda: store.read("BTC", max_age_s=5), timeout=15)
    market = simulator.markets["BTC_USDC"]
    assert len(book.bids) == len(book.asks) == 50
    assert book.bids[0].price < book.asks[0].price
    assert [level.price for level in book.bids] == sorted((level.price for level in book.bids), reverse=True)

    def matches_the_simulator():  # the simulator moves on; some read must catch the two in step
        current = store.read("BTC", max_age_s=5)
        expected_bids = sorted(market.bids.items(), reverse=True)[:50]
        return current is not None and [(lv.price, lv.quantity) for lv in current.bids] == [
            (int(p * 10_000), int(q * 10**8)) for p, q in expected_bids
        ]

    eventually(matches_the_simulator, timeout=10, interval=0.01)


def test_a_gap_resyncs_that_market_alone(depth_poller, simulator, redis_conn):
    from core.book import BookStore

    store = BookStore(redis_conn)
    eventually(lambda: all(store.read(a, 5) for a in ("SOL", "BTC", "ETH")), timeout=15)
    resyncs = depth_poller.resyncs
    simulator.skip_updates("ETH_USDC", 3)
    eventually(lambda: depth_poller.resyncs == resyncs + 1, timeout=10)
    eventually(lambda: store.read("ETH", 5) is not None, timeout=10)  # aligned again
    assert depth_poller.resyncs == resyncs + 1  # the other markets were left alone
    assert depth_poller.connections == 1


def test_books_are_dropped_when_the_socket_goes(depth_poller, simulator, redis_conn):
    from core.book import BookStore

    store = BookStore(redis_conn)
    eventually(lambda: store.read("SOL", 5), timeout=15)
    simulator.silent = True  # half-open: the poller gives the socket up after silence_s
    eventually(lambda: store.read("SOL", 5) is None, timeout=15)
    simulator.silent = False
    eventually(lambda: store.read("SOL", 5), timeout=15)


def test_a_stopped_poller_leaves_no_book_behind(simulator, redis_conn):
    from core.book import BookStore

    poller = Poller(simulator.url, MARKETS, redis_conn, silence_s=5, rest_url=f"http://127.0.0.1:{simulator.port}")
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    store = BookStore(redis_conn)
    eventually(lambda: store.read("BTC", 5), timeout=15)
    poller.stop()
    thread.join(5)
    assert redis_conn.get("book:BTC") is None  # nobody maintains it any more
