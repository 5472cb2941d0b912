from flask.views import MethodView

from app.balances.schemas import AmountSchema, BalancesSchema
from app.balances.service import balances_view
from app.blueprint import ACCOUNT_ERRORS, ACCOUNT_PARAMETER, Blueprint
from app.errors import ErrorCode, documents
from app.fields import AccountInQuery
from app.identity import authenticated, current_account_id

blp = Blueprint("balances", __name__, description="USD balance and locked margin")


@blp.route("/balance/usd")
class UsdBalance(MethodView):
    @authenticated
    @blp.response(200, AmountSchema)
    @blp.arguments(AccountInQuery, location="query")
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.UNAUTHORIZED, *ACCOUNT_ERRORS)
    def get(self, query):
        """Free USD balance (margin of open positions excluded)."""
        return balances_view(current_account_id(query.get("accountId")))["USD"]


@blp.route("/balance/", strict_slashes=False)
class Balances(MethodView):
    @authenticated
    @blp.response(200, BalancesSchema)
    @blp.arguments(AccountInQuery, location="query")
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(blp, ErrorCode.UNAUTHORIZED, *ACCOUNT_ERRORS)
    def get(self, query):
        """Every balance: free USD, locked margin, and the (always zero) CFD asset balances."""
        return balances_view(current_account_id(query.get("accountId")))
