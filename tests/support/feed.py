"""Prices as the poller delivers them: frames, the live feed in a thread, the trigger checks it sends."""

from tests.support.waiting import eventually


class RecordingSender:
    """Stands in for the poller's Celery client: records the task names and arguments sent."""

    def __init__(self):
        self.sent = []

    def send_task(self, name, args=(), **options):
        self.sent.append((name, *args, options["kwargs"]["shard"]))


def request_trigger_checks(app, asset: str = "BTC") -> int:
    """What the poller does when `asset` moves: a trigger check for each shard whose trigger levels
    the stored quote crosses (`core.triggers`), unless one is pending. Returns how many it sent."""
    from app.extensions import redis_client
    from core.prices import PriceStore
    from poller.wiring import check_crossings

    with app.app_context():
        return check_crossings(redis_client, app.extensions["celery"], PriceStore(redis_client).read_many([asset]))


def book_ticker(symbol, bid, ask, u=1, E=1754517402450016, **extra) -> str:
    """A Backpack bookTicker frame as seen on the wire."""
    import json

    data = {
        "A": "1.0",
        "B": "1.0",
        "E": E,
        "T": 1754517402449064,
        "a": ask,
        "b": bid,
        "e": "bookTicker",
        "s": symbol,
        "u": u,
        **extra,
    }
    return json.dumps({"data": data, "stream": f"bookTicker.{symbol}"})


class LiveFeed:
    """What `python -m poller` runs (`poller.wiring`), in a thread: the simulator's quotes into
    Redis, candles into PostgreSQL, and trigger checks sent to the engine by name."""

    def __init__(
        self, app, simulator, markets=("SOL_USDC", "BTC_USDC", "ETH_USDC"), marked=(), funding_intervals_ms=None
    ):
        import threading

        import redis

        from poller.candles import CandleRecorder
        from poller.wiring import wired_poller

        conn = redis.Redis.from_url(app.config["REDIS_URL"], decode_responses=True)
        self.candles = CandleRecorder(app.config["DATABASE_URL"], flush_every_s=0.5)
        rest_url = f"http://127.0.0.1:{simulator.port}"
        self.poller = wired_poller(
            simulator.url,
            list(markets),
            conn,
            app.extensions["celery"],
            self.candles,
            rest_url=rest_url,
            silence_s=2,
            marked=marked,
            funding_intervals_ms=funding_intervals_ms,
        )
        self.threads = [
            threading.Thread(target=self.poller.run, daemon=True),
            threading.Thread(target=self.candles.run, args=(self.poller.stop_event,), daemon=True),
        ]

    def start(self) -> "LiveFeed":
        for thread in self.threads:
            thread.start()
        eventually(lambda: self.poller.frames >= 6, timeout=10, interval=0.05)
        return self

    def stop(self) -> None:
        self.poller.stop()
        for thread in self.threads:
            thread.join(5)
