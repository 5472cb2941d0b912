"""What a platform and an operator see: probes, Prometheus metrics, request ids end to end."""

import json
import re
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.models import Order
from core.enums import CloseReason, OrderStatus
from tests.support.processes import LOG_DIR
from tests.support.trading import BTC_ASK, BTC_BID, open_trade
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("engine_worker")


def metric(text: str, name: str, **labels) -> float:
    """The value of the one sample named `name` with these labels in a Prometheus exposition."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    ]
    assert len(values) == 1, (name, labels, values)
    return values[0]


def test_probes_answer_for_a_platform(client):
    live = client.get("/livez")
    assert live.status_code == 200 and live.json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json == {"status": "ok", "database": True, "redis": True}


def test_metrics_count_what_the_service_is_doing(app, client, make_user, make_order, set_price):
    account_id, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK, age_s=3)
    resting = open_trade(client, headers, orderType="limit", limitPrice=BTC_BID // 2)
    assert resting.status_code == 200 and resting.json["status"] == "working"
    make_order(account_id, status=OrderStatus.CLOSED, close_reason=CloseReason.LIQUIDATION)

    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "paper_orders", status="working") == 1
    assert metric(text, "paper_orders", status="pending") == 0
    assert metric(text, "paper_liquidations_total") == 1
    assert 3 <= metric(text, "paper_price_age_seconds", market="BTC_USDC") < 60
    assert metric(text, "paper_engine_queue_depth", shard="0") >= 0
    assert metric(text, "paper_feed_reconnects_total") >= 0
    assert metric(text, "paper_stream_listeners") >= 0
    route = dict(method="POST", route="/api/v1/trade/create", status="200", le="+Inf")
    assert metric(text, "paper_http_request_duration_seconds_bucket", **route) >= 1


def test_a_request_id_is_echoed_and_reaches_the_engines_log(app, app_ctx, client, make_user, set_price):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    request_id = f"bot-7.{time.time_ns()}"
    opened = client.post(
        "/api/v1/trade/create",
        json={"asset": "BTC", "type": "long", "margin": 10_000, "leverage": 2},
        headers={**headers, "X-Request-ID": request_id},
    )
    assert opened.status_code == 200 and opened.headers["X-Request-ID"] == request_id
    order_id = opened.json["orderId"]

    def engine_logged() -> bool:
        lines = [line for log in LOG_DIR.glob("worker-engine*.log") for line in log.read_text().splitlines()]
        return any(order_id in line and f"[{request_id}]" in line for line in lines)

    eventually(engine_logged, timeout=10)
    made = client.get("/livez").headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/livez", headers={"X-Request-ID": "two words"}).headers["X-Request-ID"] != "two words"
    assert db.session.query(Order).count() == 1  # a request id is metadata: the trade happened once


def test_metrics_add_up_every_gunicorn_worker(app):
    from tests.support.processes import WebServer

    server = WebServer(workers=2).start()
    try:
        for _ in range(20):
            assert requests.get(f"{server.url}/livez", timeout=5).status_code == 200
        scrapes = [requests.get(f"{server.url}/metrics", timeout=5).text for _ in range(4)]
    finally:
        server.stop()
    livez = dict(method="GET", route="/livez", status="200")
    for text in scrapes:  # whichever worker answered, it counts both workers' requests
        assert metric(text, "paper_http_request_duration_seconds_count", **livez) == 20


def test_json_logs_put_each_line_of_the_web_process_in_one_object_with_its_request_id(app):
    from tests.support.processes import WebServer

    server = WebServer(env={"LOG_FORMAT": "json"}).start()
    request_id = f"json-{time.time_ns()}"
    try:
        tagged = {"X-Request-ID": request_id}
        assert requests.get(f"{server.url}/livez", headers=tagged, timeout=5).ok
        assert requests.get(f"{server.url}/api/v1/nowhere", headers=tagged, timeout=5).status_code == 404
    finally:
        server.stop()
    lines = [line for line in (LOG_DIR / "web.log").read_text().splitlines() if request_id in line]
    assert len(lines) == 2
    access = [json.loads(line) for line in lines]
    assert [entry["request_id"] for entry in access] == [request_id, request_id]
    assert access[0]["message"].startswith("GET /livez 200")
    assert access[1]["message"].startswith("GET /api/v1/nowhere 404")
