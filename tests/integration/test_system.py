"""The parts together: health, the OpenAPI document, price feed to liquidation, the ledger check."""

import re
import time

import pytest

from app.extensions import db
from app.models import Order
from tests.support.feed import LiveFeed

pytestmark = pytest.mark.usefixtures("engine_worker")


@pytest.fixture
def live_feed(app, simulator):
    """The simulator feeding a real poller that signals the engine, as `make run FEED=sim` does."""
    feed = LiveFeed(app, simulator).start()
    yield simulator
    feed.stop()


def test_health_is_green_with_every_part_running(client, live_feed):
    response = client.get("/api/v1/health")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["redis"]["ok"] and body["engine"]["ok"]
    assert body["feed"]["state"] == "connected"
    assert all(price["ok"] for price in body["prices"].values())


def test_a_feed_connected_but_delivering_nothing_is_reported_stale(app, client):
    """A frozen poller leaves its state `connected`: the age of what it delivered decides."""
    from app.extensions import redis_client
    from core.keys import FEED_STATUS_KEY
    from core.prices import now_micros

    def feed_after(age_s: float) -> dict:
        with app.app_context():
            redis_client.hset(
                FEED_STATUS_KEY, mapping={"state": "connected", "last:BTC": now_micros() - int(age_s * 10**6)}
            )
        return client.get("/api/v1/health").json["feed"]

    assert (feed_after(1)["ok"], feed_after(1)["state"]) == (True, "connected")
    stale = feed_after(app.config["PRICE_MAX_AGE_S"] + 5)
    assert (stale["ok"], stale["state"]) == (False, "stale")


def test_health_is_503_json_without_a_feed(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    assert response.json["status"] == "degraded" and response.json["engine"]["ok"] is True


def test_openapi_document_lists_every_route_with_schemas(client):
    spec = client.get("/openapi.json").json
    expected = {
        "/api/v1/signup",
        "/api/v1/signin",
        "/api/v1/signin/post",
        "/api/v1/trade/create",
        "/api/v1/trade/close",
        "/api/v1/trade/{order_id}",
        "/api/v1/trades",
        "/api/v1/balance/usd",
        "/api/v1/balance/",
        "/api/v1/supportedAssets",
        "/api/v1/prices",
        "/api/v1/health",
        "/api/v1/candles",
        "/api/v1/trade/preview",
        "/api/v1/stream/prices",
        "/api/v1/stream/orders",
        "/api/v1/signout",
    }
    assert expected <= set(spec["paths"])
    create = spec["paths"]["/api/v1/trade/create"]["post"]
    assert "requestBody" in create and {"200", "202", "400", "409", "503"} <= set(create["responses"])
    assert {"CreateTrade", "Order"} <= set(spec["components"]["schemas"])
    assert client.get("/docs").status_code == 200


def test_price_feed_liquidates_a_position_by_itself(app, client, make_user, live_feed):
    _, headers = make_user()
    order = client.post(
        "/api/v1/trade/create",
        headers=headers,
        json={"asset": "SOL", "type": "long", "margin": 10_000, "leverage": 100},
    ).json
    assert order["status"] == "open"
    live_feed.set_quote("SOL_USDC", "100.00", "100.02")  # from ~178: far past the liquidation price
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with app.app_context():
            closed = db.session.get(Order, order["orderId"])
            if closed.status == "closed":
                break
        time.sleep(0.1)
    assert closed.status == "closed" and closed.close_reason == "liquidation"
    assert closed.pnl >= -10_000


def test_ledger_check_command(app, make_user):
    make_user()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["ledger-check"])
    assert result.exit_code == 0 and "ledger ok" in result.output
    with app.app_context():
        db.session.execute(db.text("UPDATE balances SET usd = usd + 1"))
        db.session.commit()
    result = runner.invoke(args=["ledger-check"])
    assert result.exit_code == 1 and "MISMATCH" in result.output


def test_pages_load_only_this_origins_scripts(client):
    """The terminal and Swagger UI: vendored files, a CSP without CDNs or inline scripts."""
    for path in ("/", "/docs"):
        page = client.get(path)
        assert page.status_code == 200
        csp = page.headers["Content-Security-Policy"]
        assert (
            "script-src 'self'" in csp
            and "frame-ancestors 'none'" in csp
            and "unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
        )
        html = page.get_data(as_text=True)
        assert "https://" not in html.replace("https://www.tradingview.com/", "")
        for src in re.findall(r'<script src="([^"]+)"', html) + re.findall(r'<link href="([^"]+)"', html):
            assert src.startswith("/static/") and client.get(src).status_code == 200, src
        assert "<script>" not in html


def test_every_task_beat_sends_is_registered_with_the_workers(app):
    """A scheduled task no worker knows is lost every round (Celery logs it as unregistered)."""
    import celery_app

    scheduled = {entry["task"] for entry in app.config["CELERY"]["beat_schedule"].values()}
    assert scheduled == {"engine.sweep_stuck_orders", "mail.sweep_outbox", "analytics.snapshot_equity"}
    assert scheduled <= set(celery_app.celery.tasks)


@pytest.mark.parametrize("signal_name", ["worker_init", "worker_process_init"])
def test_worker_processes_freeze_what_the_app_loaded(signal_name):
    """Both the worker's main process (it hands every task to the pool) and each pool process move
    the loaded app out of the collector's reach: a full collection over it paused them 100 ms."""
    import gc

    from celery import signals

    import celery_app  # noqa: F401  (connects the handlers)

    gc.unfreeze()
    try:
        getattr(signals, signal_name).send(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
