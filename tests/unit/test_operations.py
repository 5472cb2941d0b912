"""Probes and log lines, with every server unreachable."""

import io
import json
import logging

from core import logs


def test_liveness_needs_no_server_and_readiness_says_which_is_down(offline_app):
    client = offline_app.test_client()
    assert client.get("/livez").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json == {"status": "unavailable", "database": False, "redis": False}
    assert int(ready.headers["Retry-After"]) > 0


def test_json_log_lines_carry_the_request_id():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logs.use_format(handler, "json")
    logger = logging.getLogger("test.json-lines")
    logger.addHandler(handler)
    logger.propagate = False
    token = logs.REQUEST_ID.set("req-1")
    try:
        logger.warning("filled %s", "order-9")
    finally:
        logs.REQUEST_ID.reset(token)
    logger.warning("after the request")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "filled order-9" and first["request_id"] == "req-1" and first["level"] == "WARNING"
    assert second["request_id"] == "-"


def test_only_plain_tokens_are_taken_as_request_ids():
    assert logs.request_id_from("heroku-router.abc:1") == "heroku-router.abc:1"
    for junk in (None, "", "a b", "x" * 129, "id\nInjected: 1"):
        made = logs.request_id_from(junk)
        assert made != junk and len(made) == 32


def test_health_callers_share_one_broadcast_to_the_engines_per_interval(offline_app, monkeypatch):
    from app.health import service

    broadcasts = []
    monkeypatch.setattr(service, "_ping_engine", lambda: broadcasts.append(1) or "engine-0@host")
    monkeypatch.setattr(service, "_engine_answer", None)
    client = offline_app.test_client()
    for _ in range(5):
        assert client.get("/api/v1/health").json["engine"] == {"ok": True, "detail": "engine-0@host"}
    assert len(broadcasts) == 1
    monkeypatch.setattr(service, "_engine_answer", (0.0, {}))  # as if the interval had passed
    client.get("/api/v1/health")
    assert len(broadcasts) == 2
