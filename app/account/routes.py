from flask import jsonify, url_for
from flask.views import MethodView

from app.account import service
from app.account.schemas import (
    ActivitiesSchema,
    ActivityQuerySchema,
    PortfolioHistorySchema,
    PortfolioQuerySchema,
    ResetSchema,
)
from app.balances.service import balances_view
from app.blueprint import ACCOUNT_ERRORS, ACCOUNT_PARAMETER, IDEMPOTENCY_PARAMETER, Blueprint, idempotency_key
from app.csv import csv_response, json_or_csv, wants_csv
from app.errors import ErrorCode, documents
from app.fields import AccountInQuery
from app.identity import authenticated, current_account_id
from core.enums import ResetStatus

blp = Blueprint("account", __name__, description="Your activity, equity history and account reset")


@blp.route("/activities")
class Activities(MethodView):
    @authenticated
    @blp.arguments(ActivityQuerySchema, location="query")
    @blp.response(200, ActivitiesSchema)
    @blp.doc(**json_or_csv("A page of activities, or all as CSV", {"$ref": "#/components/schemas/Activities"}))
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.UNAUTHORIZED, *ACCOUNT_ERRORS)
    def get(self, query):
        """Every ledger entry of your account, newest first; `format=csv` (or Accept: text/csv) streams them all."""
        account_id = current_account_id(query.get("accountId"))
        if wants_csv(query["format"]):
            rows = service.activity_csv_rows(account_id, query.get("type"))
            return csv_response("activities.csv", service.ACTIVITY_CSV_HEADER, rows)
        return service.activities(account_id, query.get("type"), query.get("cursor"), query["limit"])


@blp.route("/portfolio/history")
class PortfolioHistory(MethodView):
    @authenticated
    @blp.arguments(PortfolioQuerySchema, location="query")
    @blp.response(200, PortfolioHistorySchema)
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.UNAUTHORIZED, *ACCOUNT_ERRORS)
    def get(self, query):
        """Equity over time from the minute snapshots (last point in each bin), the last point live."""
        account_id = current_account_id(query.get("accountId"))
        return service.portfolio_history(account_id, query["period"], query["timeframe"])


@blp.route("/account/reset")
class Reset(MethodView):
    @authenticated
    @blp.response(200, ResetSchema, description="Done: every position closed at the book, free USD reset")
    @blp.alt_response(202, schema=ResetSchema, description="Accepted; the engine has not answered yet")
    @blp.arguments(AccountInQuery, location="query")
    @blp.doc(parameters=[IDEMPOTENCY_PARAMETER, ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.UNAUTHORIZED, *ACCOUNT_ERRORS, ErrorCode.PRICE_UNAVAILABLE)
    def post(self, query):
        """Close every open position at the book through the engine, then set free USD back to the starting
        balance (one `reset` ledger entry). An `Idempotency-Key` header makes retries safe."""
        account_id = current_account_id(query.get("accountId"))
        reset = service.reset(account_id, idempotency_key())
        if reset.status == ResetStatus.PENDING:
            response = jsonify(ResetSchema().dump(reset))
            response.status_code = 202
            response.headers["Location"] = url_for("balances.Balances")
            return response
        return {
            "id": reset.id,
            "status": reset.status,
            "closed_positions": reset.closed_positions,
            "balance": balances_view(account_id),
        }
