"""Fixtures on real parts: migrated PostgreSQL, Redis, Celery worker processes, the simulator.

`make test` exports DATABASE_URL/REDIS_URL (embedded servers unless given); running pytest
directly starts the embedded ones too.
"""
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
    from devstack import stack_env

    os.environ.update(stack_env("trading_test", redis_db=1))

os.environ.update(
    APP_ENV="test",
    JWT_SECRET_KEY="test-secret-key-that-is-long-enough-for-hs256",
    TRADE_WAIT_S="15",
    PRICE_MAX_AGE_S="10",
    PENDING_SWEEP_AFTER_S="2",
    BROKER_VISIBILITY_TIMEOUT_S="5",
    AUTH_RATE_LIMIT_IP="1000/minute",
    AUTH_RATE_LIMIT_EMAIL="1000/minute",
)
os.environ.pop("SMTP_URL", None)

from tests.smtp import SmtpSink  # noqa: E402

SMTP = SmtpSink().start()
os.environ["SMTP_URL"] = SMTP.url

from app import create_app  # noqa: E402
from app.extensions import db as _db  # noqa: E402
from app.extensions import redis_client  # noqa: E402
from app.prices.store import PriceStore, Quote, now_micros  # noqa: E402

TABLES = "ledger_entries, idempotency_keys, login_tokens, orders, balances, users"
APP_KEY_PATTERNS = ("price:*", "feed:*", "engine:*", "LIMITS*")


class WorkerProcess:
    """A real `celery worker` process consuming one queue."""

    def __init__(self, name: str, queue: str, concurrency: int = 1, beat: bool = False):
        self.name, self.queue, self.concurrency, self.beat = name, queue, concurrency, beat
        self.process: subprocess.Popen | None = None
        self.log_path = ROOT / ".data" / f"test-worker-{name}.log"

    def start(self) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "-Q", self.queue,
             "--concurrency", str(self.concurrency), "--prefetch-multiplier", "1",
             "-n", f"{self.name}@test", "--without-gossip", "--without-mingle", "--loglevel", "INFO",
             *(["-B", "--schedule", str(ROOT / ".data" / "test-celerybeat-schedule")] if self.beat else [])],
            cwd=ROOT, env=os.environ.copy(), stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        from celery_app import celery

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited; see {self.log_path}")
            if celery.control.ping(destination=[f"{self.name}@test"], timeout=0.5):
                return
        raise RuntimeError(f"worker {self.name} not ready; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL the worker and its pool children, as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def app():
    from flask_migrate import upgrade

    application = create_app()
    with application.app_context():
        upgrade()
    return application


@pytest.fixture(autouse=True)
def clean_state(app):
    """Every test starts with empty tables and no prices, rate-limit counters or flags."""
    with app.app_context():
        _db.session.execute(_db.text(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE"))
        _db.session.commit()
        for pattern in APP_KEY_PATTERNS:
            keys = list(redis_client.scan_iter(pattern))
            if keys:
                redis_client.delete(*keys)
    SMTP.messages.clear()
    yield


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def engine_worker(app):
    worker = WorkerProcess("engine", "engine", beat=True).start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def mail_worker(app):
    worker = WorkerProcess("mailer", "email").start()
    yield worker
    worker.stop()


@pytest.fixture
def make_user(app):
    """Create a user with the starting balance; returns (user_id, auth headers)."""
    from flask_jwt_extended import create_access_token

    from app.auth.service import create_user

    def make(email: str | None = None):
        with app.app_context():
            user = create_user(email or f"user-{uuid.uuid4().hex[:12]}@example.com")
            _db.session.commit()
            token = create_access_token(identity=str(user.id))
            return user.id, {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def set_price(app):
    """Write a fresh quote as the poller would (bid/ask in the asset's decimals)."""
    counter = iter(range(1, 10**9))

    def set_(asset: str, bid: int, ask: int, age_s: float = 0):
        with app.app_context():
            quote = Quote(asset, bid, ask, now_micros() - int(age_s * 1_000_000), next(counter) + now_micros())
            assert PriceStore(redis_client).write(quote)

    return set_


@pytest.fixture
def simulator():
    from poller.simulator import Simulator

    sim = Simulator(interval_s=0.05).start()
    yield sim
    sim.stop()


def pytest_sessionfinish(session, exitstatus):
    SMTP.stop()
