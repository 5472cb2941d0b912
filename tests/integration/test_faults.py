"""Outages under load: Redis restart, PostgreSQL restart, feed loss. After each, every accepted
order is executed exactly once, the ledger balances, and the API answered JSON all along.

These restart the embedded servers, so they run only when the tests use them (`make test`
without DATABASE_URL/REDIS_URL); `make test-faults` runs just this file.
"""

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from app.balances.service import ledger_mismatches
from app.extensions import db
from app.models import LedgerEntry, Order
from config import data_dir

DATA_DIR = data_dir()
pytestmark = [
    pytest.mark.usefixtures("engine_worker"),
    pytest.mark.skipif(
        str(DATA_DIR / "pg") not in os.environ.get("DATABASE_URL", str(DATA_DIR / "pg"))
        or "127.0.0.1" not in os.environ.get("REDIS_URL", "127.0.0.1"),
        reason="fault tests restart the embedded servers; they cannot restart servers given by URL",
    ),
]
BTC = dict(bid=1_000_000_000, ask=1_000_100_000)


class Load:
    """Clients opening positions in a loop while something breaks; records every answer."""

    def __init__(self, app, users, set_price):
        self.app, self.users, self.set_price = app, users, set_price
        self.accepted, self.answers, self.non_json = [], Counter(), []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(h,)) for _, h in users]
        self.threads.append(threading.Thread(target=self._prices))

    def _prices(self):
        while not self.stop.wait(0.5):
            with contextlib.suppress(Exception):  # Redis is down: so is the feed
                self.set_price("BTC", **BTC)

    def _client(self, headers):
        client = self.app.test_client()
        while not self.stop.is_set():
            response = client.post(
                "/api/v1/trade/create",
                headers=headers,
                json={"asset": "BTC", "type": "long", "margin": 1_000, "leverage": 2},
            )
            self.answers[response.status_code] += 1
            if not response.is_json:
                self.non_json.append(response.status_code)
            elif response.status_code in (200, 202):
                self.accepted.append(response.json["orderId"])
            time.sleep(0.02)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(60)


def wait_until(check, timeout=90, interval=0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(interval)
    raise AssertionError("did not recover in time")


def assert_nothing_lost_or_doubled(app, load):
    assert load.non_json == []
    assert 500 not in load.answers
    assert load.accepted, "no order was accepted at all"

    def settled():
        with app.app_context():
            return not db.session.execute(db.select(Order.id).where(Order.status == "pending")).first()

    wait_until(settled)
    with app.app_context():
        orders = {str(o.id): o for o in db.session.execute(db.select(Order)).scalars()}
        assert set(load.accepted) <= set(orders)
        opened = Counter(
            e.order_id for e in db.session.execute(db.select(LedgerEntry).where(LedgerEntry.kind == "open")).scalars()
        )
        for order in orders.values():
            assert opened[order.id] == (1 if order.status == "open" else 0), order.status
        assert ledger_mismatches() == []


def healthy(client, part):
    return client.get("/api/v1/health").json[part]["ok"]


def test_redis_restart_under_load(app, client, make_user, set_price):
    users = [make_user() for _ in range(3)]
    with Load(app, users, set_price) as load:
        wait_until(lambda: len(load.accepted) >= 10)
        conn = redis.Redis.from_url(app.config["REDIS_URL"])
        conn.shutdown(nosave=True)  # the append-only file keeps what was acknowledged
        time.sleep(1)
        during = client.get("/api/v1/health")
        assert during.status_code == 503 and during.json["redis"]["ok"] is False
        trade = client.post(
            "/api/v1/trade/create",
            headers=users[0][1],
            json={"asset": "BTC", "type": "long", "margin": 1_000, "leverage": 2},
        )
        assert trade.status_code == 503 and trade.is_json
        from devstack import ensure_redis

        ensure_redis(1)
        wait_until(lambda: healthy(client, "redis") and healthy(client, "engine"))
        accepted = len(load.accepted)
        wait_until(lambda: len(load.accepted) >= accepted + 10)  # trading resumed by itself
    assert_nothing_lost_or_doubled(app, load)


def test_postgres_restart_under_load(app, client, make_user, set_price):
    from devstack import start_postgres

    users = [make_user() for _ in range(3)]
    with Load(app, users, set_price) as load:
        wait_until(lambda: len(load.accepted) >= 10)
        postmaster = int(Path(DATA_DIR / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGINT)  # fast shutdown: clients are disconnected
        wait_until(lambda: not Path(f"/proc/{postmaster}").exists(), timeout=30, interval=0.1)
        during = client.get("/api/v1/health")
        assert during.status_code == 503 and during.json["database"]["ok"] is False
        balance = client.get("/api/v1/balance/usd", headers=users[0][1])
        assert balance.status_code == 503 and balance.json["error"] == "unavailable"
        time.sleep(1)
        start_postgres()
        wait_until(lambda: healthy(client, "database"))
        accepted = len(load.accepted)
        wait_until(lambda: len(load.accepted) >= accepted + 10)
    assert_nothing_lost_or_doubled(app, load)


def test_feed_loss_makes_prices_stale_then_recovers(app, client, make_user):
    import threading as _threading

    from poller.feed import Poller
    from poller.simulator import Simulator

    simulator = Simulator(interval_s=0.05).start()
    conn = redis.Redis.from_url(app.config["REDIS_URL"], decode_responses=True)
    poller = Poller(simulator.url, ["BTC_USDC"], conn, silence_s=1, backoff_base_s=0.1, backoff_cap_s=0.5)
    thread = _threading.Thread(target=poller.run, daemon=True)
    thread.start()
    _, headers = make_user()
    body = {"asset": "BTC", "type": "long", "margin": 1_000, "leverage": 2}
    try:
        wait_until(lambda: client.post("/api/v1/trade/create", headers=headers, json=body).status_code == 200)
        port = simulator.port
        simulator.stop()
        wait_until(lambda: client.get("/api/v1/health").json["feed"]["state"] != "connected")
        app.config["PRICE_MAX_AGE_S"] = 1
        time.sleep(1.5)
        stale = client.post("/api/v1/trade/create", headers=headers, json=body)
        assert stale.status_code == 503 and stale.json["error"] == "price_unavailable"
        simulator = Simulator(port=port, interval_s=0.05).start()
        wait_until(lambda: client.get("/api/v1/health").json["feed"]["state"] == "connected")
        wait_until(lambda: client.post("/api/v1/trade/create", headers=headers, json=body).status_code == 200)
        assert int(conn.hget("feed:status", "reconnects")) >= 1
    finally:
        app.config["PRICE_MAX_AGE_S"] = 10
        poller.stop()
        thread.join(5)
        simulator.stop()


def test_health_sees_the_engine_right_after_a_redis_restart(app, client, engine_worker):
    from devstack import ensure_redis

    celery = app.extensions["celery"]
    assert healthy(client, "engine")  # the process's pooled broker connections are now in use
    redis.Redis.from_url(app.config["REDIS_URL"]).shutdown(nosave=True)
    ensure_redis(1)

    def engines_answer_on_a_new_connection():
        # An engine holding an unacknowledged message when the broker went away can exit: kombu
        # restores it through the closed connection ("'NoneType' object has no attribute
        # 'hostname'"). The platform, and `make run`'s supervisor, start it again; so does this.
        engine_worker.revive()
        with celery.connection_for_write() as connection:
            engines = ["engine0@test", "engine1@test"]
            return len(celery.control.ping(destination=engines, timeout=1, connection=connection)) == len(engines)

    wait_until(engines_answer_on_a_new_connection, timeout=60)
    # the engines are back: the very next health check must say so, not trip on a dead pooled socket
    engine = client.get("/api/v1/health").json["engine"]
    assert engine["ok"], engine
