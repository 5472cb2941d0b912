from flask import Response, stream_with_context
from flask.views import MethodView
from flask_jwt_extended import get_jwt

from app.blueprint import ACCOUNT_ERRORS, Blueprint
from app.errors import ErrorCode, documents
from app.fields import AccountInQuery
from app.hub import process_hub
from app.identity import current_account_id, signed_in
from app.streams.service import order_events, price_events

blp = Blueprint("streams", __name__, description="Server-Sent Events: live prices, your orders and balance")

EVENT_STREAM = {"text/event-stream": {"schema": {"type": "string"}}}


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
        return event_stream(price_events(process_hub()))


@blp.route("/stream/orders")
class OrderStream(MethodView):
    @signed_in
    @blp.doc(
        responses={"200": {"description": "`balance`, `pnl`, `order` and `funding` events", "content": EVENT_STREAM}}
    )
    @blp.arguments(AccountInQuery, location="query")
    @documents(blp, ErrorCode.UNAUTHORIZED, *ACCOUNT_ERRORS)
    def get(self, query):
        """Your account: `order` on every state change, `balance` after every ledger change, `pnl` as prices move,
        `funding` after each funding round that paid or credited it.

        The stream ends when the token that opened it expires; the client reconnects with a fresh one."""
        account_id = current_account_id(query.get("accountId"))
        return event_stream(order_events(process_hub(), account_id, expires_at=get_jwt()["exp"]))
