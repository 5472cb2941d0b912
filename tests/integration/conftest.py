"""Fixtures on real parts: migrated PostgreSQL, Redis, Celery worker processes, SMTP, the simulator.

Nothing starts at import: the first test that needs a server starts it (session scope), using
DATABASE_URL/REDIS_URL when given (`make test` exports the embedded ones) or starting the
embedded servers under ./.data/ otherwise.
"""

import os
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.processes import BeatProcess, EngineFleet, WorkerProcess
from tests.support.state import reset_state

TEST_SETTINGS = dict(
    APP_ENV="test",
    JWT_SECRET_KEY="test-secret-key-that-is-long-enough-for-hs256",
    TRADE_WAIT_S="15",
    PRICE_MAX_AGE_S="10",
    PENDING_SWEEP_AFTER_S="2",
    MAIL_SWEEP_AFTER_S="2",
    BROKER_VISIBILITY_TIMEOUT_S="5",
    AUTH_RATE_LIMIT_IP="1000/minute",
    AUTH_RATE_LIMIT_EMAIL="1000/minute",
    TRADE_RATE_LIMIT="1000/second",
)


@pytest.fixture(scope="session")
def servers():
    """PostgreSQL and Redis URLs in the environment every process of the test inherits."""
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        from devstack import stack_env

        os.environ.update(stack_env("trading_test", redis_db=1))
    os.environ.update(TEST_SETTINGS)
    bin_dir = str(Path(sys.executable).parent)  # Procfile commands (celery, gunicorn) from this virtualenv
    if bin_dir not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return os.environ["DATABASE_URL"], os.environ["REDIS_URL"]


@pytest.fixture(scope="session")
def smtp(servers):
    from tests.integration.smtp import SmtpSink

    sink = SmtpSink().start()
    os.environ["SMTP_URL"] = sink.url
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def app(servers, smtp):
    from flask_migrate import upgrade
    from sqlalchemy import text

    from app import create_app
    from app.extensions import db

    application = create_app()
    with application.app_context():
        upgrade()
        # account ids far from user ids: a test that passes one for the other fails
        db.session.execute(text("SELECT setval('accounts_id_seq', GREATEST(nextval('accounts_id_seq'), 1000000))"))
        db.session.commit()
    return application


@pytest.fixture(autouse=True)
def clean_state(request):
    """Every integration test starts with empty tables and no prices, rate-limit counters or flags."""
    reset_state(request.getfixturevalue("app"))
    request.getfixturevalue("smtp").messages.clear()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def engine_worker(app, beat):
    """Two engine processes, each the one writer of half the shards, as `make run ENGINES=2` runs them."""
    worker = EngineFleet(2).start()
    yield worker
    worker.stop()


@pytest.fixture(autouse=True)
def engines_alive(request):
    """A test that stopped or killed an engine and failed before restarting it does not take the
    tests after it down too."""
    if "engine_worker" in request.fixturenames:
        request.getfixturevalue("engine_worker").revive()


@pytest.fixture(scope="session")
def beat(app):
    process = BeatProcess().start()
    yield process
    process.stop()


@pytest.fixture(scope="session")
def mail_worker(app):
    worker = WorkerProcess("mailer", "email,default", concurrency=2).start()
    yield worker
    worker.stop()


@pytest.fixture
def make_user(app):
    """Create a user with its main account and the starting balance; returns (the main account's
    id, auth headers)."""
    from flask_jwt_extended import create_access_token

    from app.auth.service import create_user
    from app.extensions import db
    from app.identity import main_account_id

    def make(email: str | None = None):
        with app.app_context():
            user = create_user(email or f"user-{uuid.uuid4().hex[:12]}@example.com")
            db.session.commit()
            token = create_access_token(identity=str(user.id))
            return main_account_id(user.id), {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def make_order(app):
    """Insert an order row as the API records it (pending unless told), without enqueueing it."""
    from app.extensions import db
    from app.models import Order

    def make(account_id: int, **fields):
        values = dict(asset="BTC", side="long", margin=10_000, leverage=1, slippage_bps=100) | fields
        with app.app_context():
            order = Order(account_id=account_id, **values)
            db.session.add(order)
            db.session.commit()
            return order.id

    return make


@pytest.fixture
def set_price(app):
    """Write a fresh quote as the poller would (bid/ask in the asset's decimals)."""
    from app.extensions import redis_client
    from core.prices import PriceStore, Quote, now_micros

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


@pytest.fixture
def perpetuals(app, app_ctx, simulator):
    """The simulator's catalog synced and its perpetuals tradable in this process; returns
    `quote(bid, ask)` and `mark(tenths, age_s=0)` writing BTC_USDC_PERP's as the poller would."""
    from decimal import Decimal

    from app.extensions import redis_client
    from app.markets.service import register_chosen_perpetuals
    from core.marks import Mark, MarkStore
    from core.prices import PriceStore, Quote, now_micros
    from tests.support.trading import PERP

    url = simulator.url.replace("ws://", "http://")
    assert app.test_cli_runner().invoke(args=["markets", "sync", "--rest-url", url]).exit_code == 0
    register_chosen_perpetuals()
    updates = iter(range(now_micros(), now_micros() + 10**9))

    def quote(bid: int, ask: int) -> None:
        assert PriceStore(redis_client).write(Quote(PERP, bid, ask, now_micros(), next(updates)))

    def mark(tenths: int, age_s: float = 0) -> None:
        redis_client.delete(f"mark:{PERP}")
        at = now_micros() - int(age_s * 1_000_000)
        assert MarkStore(redis_client).write(Mark(PERP, Decimal(tenths).scaleb(-1), None, None, None, at))

    return quote, mark


@pytest.fixture
def live_server(app):
    """The web process as the Procfile runs it (gunicorn with gunicorn.conf.py) on a free port."""
    from tests.support.processes import WebServer

    server = WebServer().start()
    yield server.url
    server.stop()
