"""Health of each part; a failing part is reported, never raised."""

import time

from flask import current_app
from sqlalchemy import text

from app import metrics
from app.extensions import db, redis_client
from core.assets import SEED_ASSETS
from core.prices import FeedStatus, PriceStore
from core.shards import format_shard_set, shard_queue
from core.tasks import ENGINE_WORKER_PREFIX

ENGINE_PING_TIMEOUT_S = 1.0
ENGINE_PING_REUSE_S = 2.0  # a public route: callers share one broadcast to the workers per process and interval

_engine_answer: tuple[float, dict] | None = None


def _part(check) -> dict:
    try:
        detail = check()
    except Exception as exc:  # any failure of a dependency is the health report's content
        return {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "detail": detail if isinstance(detail, str) else "ok"}


def _ping_database():
    db.session.execute(text("SELECT 1"))
    db.session.rollback()


def _ping_engine():
    """Every shard queue has an engine consuming it; a shard without one would leave its accounts'
    trades waiting."""
    celery = current_app.extensions["celery"]
    # A connection of its own: a pooled one may be dead after a Redis restart, and a broadcast
    # (unlike publishing a task) is not retried, so the engine would look down when it is not.
    with celery.connection_for_write() as connection:
        replies = celery.control.inspect(timeout=ENGINE_PING_TIMEOUT_S, connection=connection).active_queues()
    engines = {
        name: {queue["name"] for queue in queues}
        for name, queues in (replies or {}).items()
        if name.startswith(ENGINE_WORKER_PREFIX)
    }
    if not engines:
        raise RuntimeError("no engine worker answered the ping")
    consumed = set().union(*engines.values())
    orphans = [shard for shard in range(current_app.config["ENGINE_SHARDS"]) if shard_queue(shard) not in consumed]
    if orphans:
        raise RuntimeError(f"no engine consumes shards {format_shard_set(orphans)}")
    return ", ".join(sorted(engines))


def _prices() -> dict:
    max_age = current_app.config["PRICE_MAX_AGE_S"]
    store = PriceStore(redis_client)
    report = {}
    for symbol in SEED_ASSETS:
        try:
            quote = store.read(symbol)
        except Exception:
            quote = None
        report[symbol] = {
            "ok": quote is not None and quote.is_fresh(max_age),
            "ageSeconds": quote.age_s() if quote else None,
        }
    return report


def _feed() -> dict:
    """The poller's own word on its socket, unless what it delivers says otherwise: a poller that
    froze while connected leaves its state `connected`, and its markets' last frames age. Older
    than PRICE_MAX_AGE_S, all of them, it is `stale`."""
    try:
        status = FeedStatus(redis_client).read()
    except Exception:
        return {"ok": False, "state": None, "reconnects": None, "lastMessageAgeSeconds": {}}
    ages = status["lastMessageAgeSeconds"].values()
    if status["state"] == "connected" and min(ages, default=float("inf")) > current_app.config["PRICE_MAX_AGE_S"]:
        status["state"] = "stale"
    return {"ok": status["state"] == "connected", **status}


def _engine() -> dict:
    global _engine_answer
    now = time.monotonic()
    if _engine_answer is None or now - _engine_answer[0] >= ENGINE_PING_REUSE_S:
        _engine_answer = (now, _part(_ping_engine))
    return _engine_answer[1]


def check_health() -> dict:
    report = {
        "database": _part(_ping_database),
        "redis": _part(redis_client.ping),
        "engine": _engine(),
        "feed": _feed(),
        "prices": _prices(),
    }
    parts_ok = [report[name]["ok"] for name in ("database", "redis", "engine", "feed")]
    parts_ok += [price["ok"] for price in report["prices"].values()]
    report["status"] = "ok" if all(parts_ok) else "degraded"
    return report


def check_ready() -> dict:
    database, redis = _part(_ping_database)["ok"], _part(redis_client.ping)["ok"]
    return {"status": "ok" if database and redis else "unavailable", "database": database, "redis": redis}


def metrics_exposition() -> tuple[bytes, str]:
    return metrics.exposition()
