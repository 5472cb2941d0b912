from flask.views import MethodView

from app.balances.schemas import AmountSchema, BalancesSchema
from app.balances.service import balances_view
from app.blueprint import Blueprint
from app.errors import ErrorCode, documents
from app.identity import authenticated, current_user_id

blp = Blueprint("balances", __name__, description="USD balance and locked margin")


@blp.route("/balance/usd")
class UsdBalance(MethodView):
    @authenticated
    @blp.response(200, AmountSchema)
    @documents(blp, ErrorCode.UNAUTHORIZED)
    def get(self):
        """Free USD balance (margin of open positions excluded)."""
        return balances_view(current_user_id())["USD"]


@blp.route("/balance/", strict_slashes=False)
class Balances(MethodView):
    @authenticated
    @blp.response(200, BalancesSchema)
    @documents(blp, ErrorCode.UNAUTHORIZED)
    def get(self):
        """Every balance: free USD, locked margin, and the (always zero) CFD asset balances."""
        return balances_view(current_user_id())
