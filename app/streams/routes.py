import threading

from flask import Response, current_app, stream_with_context
from flask.views import MethodView
from flask_jwt_extended import jwt_required

from app.blueprint import Blueprint
from app.errors import ErrorCode, documents
from app.identity import current_user_id
from app.streams.hub import Hub
from app.streams.service import order_events, price_events

blp = Blueprint("streams", __name__, description="Server-Sent Events: live prices, your orders and balance")
_hub_lock = threading.Lock()

EVENT_STREAM = {"text/event-stream": {"schema": {"type": "string"}}}


def hub() -> Hub:
    """This process's hub, made on first use (after gunicorn forked the worker)."""
    with _hub_lock:
        if "stream_hub" not in current_app.extensions:
            current_app.extensions["stream_hub"] = Hub(current_app.config["REDIS_URL"])
        return current_app.extensions["stream_hub"]


def event_stream(events) -> Response:
    response = Response(stream_with_context(events), mimetype="text/event-stream")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"  # proxies must pass events through at once
    return response


@blp.route("/stream/prices")
class PriceStream(MethodView):
    @blp.doc(responses={"200": {"description": "`snapshot` then `price` events", "content": EVENT_STREAM}})
    def get(self):
        """Every asset's bid/ask: one `snapshot` event, then a `price` event per change (at most 10/s per asset)."""
        return event_stream(price_events(hub()))


@blp.route("/stream/orders")
class OrderStream(MethodView):
    @jwt_required()
    @blp.doc(responses={"200": {"description": "`balance`, `pnl` and `order` events", "content": EVENT_STREAM}})
    @documents(blp, ErrorCode.UNAUTHORIZED)
    def get(self):
        """Your account: `order` on every state change, `balance` after every ledger change, `pnl` as prices move."""
        return event_stream(order_events(hub(), current_user_id()))
