"""Helpers shared by the test modules (test modules never import each other)."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".data" / "test-logs"
BTC_BID, BTC_ASK = 1_000_000_000, 1_000_100_000  # 100000.0000 / 100010.0000
LINK = re.compile(r"(http\S+/api/v1/signin/post\?token=(\S+))")


APP_KEY_PATTERNS = ("price:*", "book:*", "feed:*", "engine:*", "trigger-levels*", "LIMITS*")


def reset_state(app) -> None:
    """Empty tables; no prices, feed status, rate-limit counters or engine flags in Redis."""
    from app.extensions import db, redis_client
    from app.models import empty_every_table

    with app.app_context():
        empty_every_table()
        db.session.commit()
        for pattern in APP_KEY_PATTERNS:
            keys = list(redis_client.scan_iter(pattern))
            if keys:
                redis_client.delete(*keys)


def log_file(name: str):
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return open(LOG_DIR / f"{name}.log", "ab")


@contextlib.contextmanager
def statements_reading(app, table: str):
    """The SQL statements this process sends while the block runs that read `table` (FROM it)."""
    from sqlalchemy import event

    from app.extensions import db

    reads: list[str] = []

    def count(_conn, _cursor, statement, *_):
        if f"FROM {table}" in statement:
            reads.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", count)


def eventually(check, timeout: float = 10.0, interval: float = 0.02):
    """Wait until `check()` is truthy and return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


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
        return check_crossings(redis_client, app.extensions["celery"], PriceStore(redis_client).read(asset))


def user_on_engine(make_user, app, engine_index: int, processes: int = 2):
    """A new user whose shard belongs to engine process `engine_index` of `processes`."""
    from core.shards import shard_of

    while True:
        user_id, headers = make_user()
        if shard_of(user_id, app.config["ENGINE_SHARDS"]) % processes == engine_index:
            return user_id, headers


def open_trade(client, headers, **overrides):
    body = {"asset": "BTC", "type": "long", "margin": 100_000, "leverage": 10, **overrides}
    return client.post("/api/v1/trade/create", json=body, headers=headers)


def usd_balance(client, headers) -> int:
    response = client.get("/api/v1/balance/usd", headers=headers)
    assert response.status_code == 200
    return response.json["balance"]


def assert_ledger_balances(app):
    """Every balance equals its ledger, and locked margin equals the margin of open positions and
    working orders."""
    from app.balances.service import ledger_mismatches
    from app.extensions import db
    from app.models import Balance, Order

    with app.app_context():
        assert ledger_mismatches() == []
        for row in db.session.execute(db.select(Balance)).scalars():
            open_margin = db.session.execute(
                db.select(db.func.coalesce(db.func.sum(Order.margin), 0)).where(
                    Order.user_id == row.user_id, Order.status.in_(["open", "working"])
                )
            ).scalar_one()
            assert row.locked_margin == open_margin


def wait_for_status(app, order_id, status, timeout=20):
    from app.extensions import db
    from app.models import Order

    def reached():
        with app.app_context():
            order = db.session.get(Order, order_id)
            return order if order.status == status else None

    return eventually(reached, timeout, interval=0.05)


def count_orders(app, *where) -> int:
    from app.extensions import db
    from app.models import Order

    with app.app_context():
        return db.session.execute(db.select(db.func.count()).select_from(Order).where(*where)).scalar_one()


def wait_for_mail(sink, to: str, timeout: float = 30):
    def arrived():
        for message in list(sink.messages):
            if message["To"] == to:
                sink.messages.remove(message)
                return message
        return None

    return eventually(arrived, timeout, interval=0.05)


def token_from(message) -> str:
    return LINK.search(message.get_payload(decode=True).decode()).group(2)


def link_from(message) -> str:
    return LINK.search(message.get_payload(decode=True).decode()).group(1)


CELERY = [sys.executable, "-m", "celery", "-A", "celery_app"]


class WorkerProcess:
    """A real `celery worker` (or `celery beat`) process, started as the Procfile would."""

    def __init__(self, name: str, queues: str, concurrency: int = 1):
        self.name, self.queues, self.concurrency = name, queues, concurrency
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [
            *CELERY,
            "worker",
            "-Q",
            self.queues,
            "--concurrency",
            str(self.concurrency),
            "--prefetch-multiplier",
            "1",
            "-n",
            f"{self.name}@test",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ]

    def environment(self) -> dict[str, str]:
        return os.environ.copy()

    def start(self) -> "WorkerProcess":
        self.launch()
        try:
            self.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def launch(self) -> None:
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.environment(),
            stdout=log_file(f"worker-{self.name}"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        import redis
        from celery import Celery

        from config import Config

        pinger = Celery("test-ping")
        pinger.config_from_object(Config.from_env().CELERY)

        def answered():
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited; see {LOG_DIR}")
            try:
                return pinger.control.ping(destination=[f"{self.name}@test"], timeout=0.5)
            except (ConnectionError, OSError, redis.RedisError):  # a broker connection that died: retried
                return None

        eventually(answered, timeout)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children, as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


class EngineProcess(WorkerProcess):
    """One engine process as the Procfile starts it (`python -m workers.run_engine`): process
    `index` of `processes`, consuming its share of the shard queues."""

    def __init__(self, index: int = 0, processes: int = 1, env: dict[str, str] | None = None):
        super().__init__(f"engine{index}", "")
        self.index, self.processes, self.extra_env = index, processes, env or {}

    def environment(self) -> dict[str, str]:
        engine = {"ENGINE_INDEX": str(self.index), "ENGINE_PROCESSES": str(self.processes)}
        return {**os.environ, **engine, **self.extra_env}

    def command(self) -> list[str]:
        options = ["-n", f"{self.name}@test", "--without-gossip", "--without-mingle", "--loglevel", "INFO"]
        return [sys.executable, "-m", "workers.run_engine", *options]


class EngineFleet:
    """Engine processes splitting the shards between them, started, killed and stopped together."""

    def __init__(self, processes: int = 2, env: dict[str, str] | None = None):
        self.engines = [EngineProcess(index, processes, env) for index in range(processes)]

    def start(self) -> "EngineFleet":
        for engine in self.engines:
            engine.launch()
        try:
            for engine in self.engines:
                engine.wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        for engine in self.engines:
            if engine.process is not None and engine.process.poll() is None:
                engine.kill()

    def revive(self) -> None:
        """Start again any engine a test stopped or killed and did not bring back."""
        for engine in self.engines:
            if engine.process is None or engine.process.poll() is not None:
                engine.start()

    def stop(self) -> None:
        for engine in self.engines:
            engine.stop()


class BeatProcess(WorkerProcess):
    def __init__(self):
        super().__init__("beat", "")

    def command(self) -> list[str]:
        return [
            *CELERY,
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(ROOT / ".data" / "test-celerybeat-schedule"),
        ]

    def wait_ready(self, timeout: float = 60) -> None:
        time.sleep(0.5)
        if self.process.poll() is not None:
            raise RuntimeError(f"beat exited; see {LOG_DIR}")


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


class WebServer:
    """The `web` process as the Procfile runs it (gunicorn, gunicorn.conf.py), restartable on its port."""

    def __init__(self, port: int | None = None, workers: int = 1):
        from devstack import free_port

        self.port = port or free_port()
        self.workers = workers
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "WebServer":
        from devstack import wait_for_http

        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "gunicorn.conf.py",
                "wsgi:app",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--graceful-timeout",
                "1",
            ],
            cwd=ROOT,
            env=os.environ.copy(),
            stdout=log_file("web"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_http(f"{self.url}/api/v1/supportedAssets")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


class LiveFeed:
    """What `python -m poller` runs (`poller.wiring`), in a thread: the simulator's quotes into
    Redis, candles into PostgreSQL, and trigger checks sent to the engine by name."""

    def __init__(self, app, simulator, markets=("SOL_USDC", "BTC_USDC", "ETH_USDC")):
        import threading

        import redis

        from poller.candles import CandleRecorder
        from poller.wiring import wired_poller

        conn = redis.Redis.from_url(app.config["REDIS_URL"], decode_responses=True)
        self.candles = CandleRecorder(app.config["DATABASE_URL"], flush_every_s=0.5)
        rest_url = f"http://127.0.0.1:{simulator.port}"
        self.poller = wired_poller(
            simulator.url, list(markets), conn, app.extensions["celery"], self.candles, rest_url=rest_url, silence_s=2
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
