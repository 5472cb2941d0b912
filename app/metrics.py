"""`GET /metrics`: the service's own gauges and counters, read at scrape time from PostgreSQL and
Redis (so any web process answers for all of them), and the request latency histogram of every
web worker (prometheus_client's multiprocess mode under gunicorn, see gunicorn.conf.py)."""

import os

from flask import Request, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from sqlalchemy import func, select

from app.extensions import db, redis_client
from app.models import CatalogMarket, Order
from core.assets import ASSETS
from core.enums import CloseReason, OrderStatus
from core.keys import STREAM_LISTENERS_PATTERN
from core.marks import MarkStore
from core.prices import FeedStatus, PriceStore
from core.shards import shard_queue

REQUEST_SECONDS = Histogram(
    "paper_http_request_duration_seconds",
    "Time from a request's arrival to its response (to the first byte of a stream)",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
    registry=None,
)
_UNROUTED = "<unrouted>"  # 404s: their paths are whatever a scanner tried


def observe_request(request: Request, status: int, seconds: float) -> None:
    route = request.url_rule.rule if request.url_rule is not None else _UNROUTED
    REQUEST_SECONDS.labels(request.method, route, str(status)).observe(seconds)


class ServiceCollector:
    """What the service is doing now, read where it lives."""

    def collect(self):
        depth = GaugeMetricFamily(
            "paper_engine_queue_depth", "Engine tasks waiting in a shard's queue", labels=["shard"]
        )
        with redis_client.pipeline(transaction=False) as pipe:
            shards = range(current_app.config["ENGINE_SHARDS"])
            for shard in shards:
                pipe.llen(shard_queue(shard))
            for shard, length in zip(shards, pipe.execute(), strict=True):
                depth.add_metric([str(shard)], length)
        yield depth

        orders = GaugeMetricFamily("paper_orders", "Orders waiting for the engine or resting", labels=["status"])
        waiting = (OrderStatus.PENDING, OrderStatus.WORKING)
        counts = dict(
            db.session.execute(
                select(Order.status, func.count()).where(Order.status.in_(waiting)).group_by(Order.status)
            ).all()
        )
        for status in waiting:
            orders.add_metric([status.value], counts.get(status, 0))
        yield orders

        liquidations = CounterMetricFamily("paper_liquidations", "Positions closed by liquidation")
        liquidated = select(func.count()).where(Order.close_reason == CloseReason.LIQUIDATION)
        liquidations.add_metric([], db.session.execute(liquidated).scalar_one())
        db.session.rollback()
        yield liquidations

        age = GaugeMetricFamily("paper_price_age_seconds", "Age of a market's last quote", labels=["market"])
        store = PriceStore(redis_client)
        for symbol, asset in ASSETS.items():
            quote = store.read(symbol)
            if quote is not None:
                age.add_metric([asset.market], quote.age_s())
        yield age

        mark_age = GaugeMetricFamily("paper_mark_age_seconds", "Age of a perpetual's last mark", labels=["market"])
        perps = db.session.scalars(select(CatalogMarket.symbol).where(CatalogMarket.funding_interval_ms.is_not(None)))
        for market, mark in MarkStore(redis_client).read_many(list(perps)).items():
            mark_age.add_metric([market], mark.age_s())
        db.session.rollback()
        yield mark_age

        feed = FeedStatus(redis_client).read()
        reconnects = CounterMetricFamily("paper_feed_reconnects", "Times the poller reconnected to Backpack")
        reconnects.add_metric([], feed["reconnects"])
        yield reconnects
        connected = GaugeMetricFamily("paper_feed_connected", "1 while the poller's socket is connected")
        connected.add_metric([], 1 if feed["state"] == "connected" else 0)
        yield connected

        listeners = GaugeMetricFamily("paper_stream_listeners", "Open event streams over every web process")
        keys = list(redis_client.scan_iter(STREAM_LISTENERS_PATTERN, count=1000))
        listeners.add_metric([], sum(int(value) for value in redis_client.mget(keys) if value) if keys else 0)
        yield listeners


def exposition() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REQUEST_SECONDS)
    registry.register(ServiceCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
