"""Minute candles: the poller's recorder (batched upserts that merge), SQL aggregation of larger
intervals, and the backfill from Backpack's REST klines (served by the simulator)."""

import re
import time
from datetime import UTC, datetime

import pytest

from app.extensions import db
from app.models import Candle
from core.prices import Quote
from poller.candles import CandleRecorder

T0 = 1_764_000_000  # 2025-11-24 16:00:00 UTC, a whole hour
US = 1_000_000


def quote(asset, bid, ask, second):
    return Quote(asset, bid, ask, second * US)


def stored(app, asset="BTC"):
    with app.app_context():
        rows = db.session.execute(db.select(Candle).where(Candle.asset == asset).order_by(Candle.bucket)).scalars()
        return [(int(r.bucket.timestamp()), r.open, r.high, r.low, r.close, r.ticks) for r in rows]


def test_recorder_aggregates_mids_and_merges_each_flush_into_the_minute(app):
    recorder = CandleRecorder(app.config["DATABASE_URL"])
    for second, (bid, ask) in enumerate([(100, 102), (110, 111), (90, 93)]):
        recorder.add(quote("BTC", bid, ask, T0 + second))  # mids 101, 110 (110.5 rounded down), 91
    recorder.add(quote("BTC", 200, 200, T0 + 60))  # the next minute
    assert recorder.flush() == 2
    assert stored(app) == [(T0, 101, 110, 91, 91, 3), (T0 + 60, 200, 200, 200, 200, 1)]
    recorder.add(quote("BTC", 120, 120, T0 + 30))
    recorder.add(quote("BTC", 80, 80, T0 + 31))
    assert recorder.flush() == 1
    assert stored(app)[0] == (T0, 101, 120, 80, 80, 5)  # open kept, range widened, close replaced
    assert recorder.flush() == 0  # nothing new: no statement at all


def test_a_failed_flush_is_merged_back_and_written_by_the_next(app):
    recorder = CandleRecorder("postgresql://nobody@127.0.0.1:9/none")
    recorder.add(quote("ETH", 100, 100, T0))
    assert recorder.flush() == 0
    recorder.database_url = app.config["DATABASE_URL"]
    recorder.add(quote("ETH", 150, 150, T0 + 1))
    assert recorder.flush() == 1
    assert stored(app, "ETH") == [(T0, 100, 150, 100, 150, 2)]


def test_the_live_poller_writes_about_once_a_second_never_once_per_frame(app):
    from poller.simulator import Simulator
    from tests.support.feed import LiveFeed
    from tests.support.waiting import eventually

    simulator = Simulator(interval_s=0.01).start()  # about 300 frames a second over 3 markets
    feed = LiveFeed(app, simulator)
    feed.candles.flush_every_s = 1.0
    feed.start()
    started = time.monotonic()
    try:
        eventually(lambda: feed.poller.frames >= 600, timeout=20)
        frames, flushes, elapsed = feed.poller.frames, feed.candles.flushes, time.monotonic() - started
    finally:
        feed.stop()
        simulator.stop()
    # about one statement batch a second, however many frames a busy machine lets through
    assert flushes <= elapsed / feed.candles.flush_every_s + 2 and flushes < frames
    assert {row[0] for row in stored(app, "SOL")}  # and the minutes are there


@pytest.fixture
def minutes(app):
    """Ten hand-made BTC minutes from T0, and a gap at T0 + 10 min."""
    rows = [
        Candle(
            asset="BTC",
            bucket=datetime.fromtimestamp(T0 + 60 * i, UTC),
            open=1000 + i,
            high=2000 + i,
            low=500 - i,
            close=1100 + i,
            ticks=i + 1,
        )
        for i in range(10)
    ]
    rows.append(
        Candle(asset="BTC", bucket=datetime.fromtimestamp(T0 + 60 * 11, UTC), open=7, high=9, low=6, close=8, ticks=1)
    )
    with app.app_context():
        db.session.add_all(rows)
        db.session.commit()


@pytest.mark.usefixtures("minutes")
def test_one_minute_candles_oldest_first_with_gaps_absent(client):
    body = client.get(f"/api/v1/candles?asset=BTC&interval=1m&start={T0}&end={T0 + 3600}").json
    assert body["asset"] == "BTC" and body["interval"] == "1m" and body["decimals"] == 4
    assert [c["time"] for c in body["candles"]] == [T0 + 60 * i for i in (*range(10), 11)]
    assert body["candles"][0] == {"time": T0, "open": 1000, "high": 2000, "low": 500, "close": 1100, "ticks": 1}
    newest = client.get(f"/api/v1/candles?asset=BTC&interval=1m&start={T0}&end={T0 + 3600}&limit=2").json
    assert [c["time"] for c in newest["candles"]] == [T0 + 540, T0 + 660]


@pytest.mark.usefixtures("minutes")
def test_larger_intervals_are_aggregated_in_sql(client):
    body = client.get(f"/api/v1/candles?asset=BTC&interval=5m&start={T0}&end={T0 + 3600}").json
    first, second, third = body["candles"]
    assert first == {"time": T0, "open": 1000, "high": 2004, "low": 496, "close": 1104, "ticks": 15}
    assert second == {"time": T0 + 300, "open": 1005, "high": 2009, "low": 491, "close": 1109, "ticks": 40}
    assert third == {"time": T0 + 600, "open": 7, "high": 9, "low": 6, "close": 8, "ticks": 1}
    hour = client.get(f"/api/v1/candles?asset=BTC&interval=1h&start={T0 + 120}&end={T0 + 3600}").json["candles"]
    assert hour == [{"time": T0, "open": 1000, "high": 2009, "low": 6, "close": 8, "ticks": 56}]  # whole bins


@pytest.mark.parametrize("query", ["asset=DOGE", "asset=BTC&interval=2m", "asset=BTC&limit=1001", "asset=BTC&start=-1"])
def test_bad_candle_queries_are_422(client, query):
    response = client.get(f"/api/v1/candles?{query}")
    assert response.status_code == 422 and response.json["error"] == "validation"


def test_backfill_loads_klines_only_where_the_service_has_no_candle(app, simulator):
    now_minute = int(datetime.now(UTC).timestamp()) // 60 * 60
    mine = now_minute - 600
    with app.app_context():
        db.session.add(
            Candle(asset="SOL", bucket=datetime.fromtimestamp(mine, UTC), open=1, high=1, low=1, close=1, ticks=1)
        )
        db.session.commit()
    app.config["BACKPACK_REST_URL"] = f"http://127.0.0.1:{simulator.port}"
    result = app.test_cli_runner().invoke(args=["candles", "backfill", "--days", "1", "--asset", "SOL", "--pause", "0"])
    assert result.exit_code == 0, result.output
    assert "SOL: 1439 minutes loaded" in result.output  # a day of minutes, less the one it had
    rows = {row[0]: row for row in stored(app, "SOL")}
    assert len(rows) == 1440 and rows[mine] == (mine, 1, 1, 1, 1, 1)  # its own minute untouched
    again = app.test_cli_runner().invoke(args=["candles", "backfill", "--days", "1", "--asset", "SOL", "--pause", "0"])
    assert re.search(r"SOL: [01] minutes loaded", again.output)  # none again (one if a new minute began meanwhile)
