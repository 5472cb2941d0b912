from flask import Response
from flask.views import MethodView

from app.blueprint import Blueprint
from app.health.schemas import HealthSchema, ReadinessSchema
from app.health.service import check_health, check_ready, metrics_exposition

blp = Blueprint("health", __name__, description="Liveness of the database, Redis, engine and price feed")
probes = Blueprint("probes", __name__, description="Probes for the platform and metrics for Prometheus")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="Some part is down or stale")
    def get(self):
        """Report every part of the system; 503 when any part is not green."""
        report = check_health()
        return report, (200 if report["status"] == "ok" else 503)


@probes.route("/livez")
class Live(MethodView):
    @probes.response(200, ReadinessSchema)
    def get(self):
        """This process answers (no I/O): a platform restarts a web process only when this fails."""
        return {"status": "ok"}


@probes.route("/readyz")
class Ready(MethodView):
    @probes.response(200, ReadinessSchema)
    @probes.alt_response(503, schema=ReadinessSchema, description="The database or Redis is unreachable")
    def get(self):
        """This process can serve: its database and Redis answer (the price feed is not asked: a
        Backpack outage is no reason to take web processes out of rotation)."""
        report = check_ready()
        return report, (200 if report["status"] == "ok" else 503)


@probes.route("/metrics")
class Metrics(MethodView):
    @probes.doc(responses={"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}})
    def get(self):
        """The service's gauges and counters and the request latency histogram, for Prometheus."""
        body, content_type = metrics_exposition()
        return Response(body, content_type=content_type)
