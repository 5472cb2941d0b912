from flask.views import MethodView

from app.blueprint import Blueprint
from app.health.schemas import HealthSchema
from app.health.service import check_health

blp = Blueprint("health", __name__, description="Liveness of the database, Redis, engine and price feed")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, schema=HealthSchema, description="Some part is down or stale")
    def get(self):
        """Report every part of the system; 503 when any part is not green."""
        report = check_health()
        return report, (200 if report["status"] == "ok" else 503)
