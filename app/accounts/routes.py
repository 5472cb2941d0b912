from flask.views import MethodView

from app.accounts import service
from app.accounts.schemas import AccountSchema, AccountUpdateSchema, NewAccountSchema
from app.blueprint import Blueprint
from app.errors import ErrorCode, documents
from app.identity import authenticated, current_user_id

blp = Blueprint("accounts", __name__, description="Your paper accounts: each its own balance, positions and history")


@blp.route("/accounts")
class Accounts(MethodView):
    @authenticated
    @blp.arguments(NewAccountSchema)
    @blp.response(201, AccountSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.TOO_MANY_ACCOUNTS, ErrorCode.NAME_TAKEN)
    def post(self, body):
        """Open a paper account with its own deposit; act on it with the `X-Account-Id` header (or `accountId`)."""
        return service.create(current_user_id(), body)

    @authenticated
    @blp.response(200, AccountSchema(many=True))
    @documents(blp, ErrorCode.UNAUTHORIZED)
    def get(self):
        """Your accounts, the main one first, archived ones included, each with its balance."""
        return service.list_accounts(current_user_id())


@blp.route("/accounts/<int:account_id>")
class Account(MethodView):
    @authenticated
    @blp.arguments(AccountUpdateSchema)
    @blp.response(200, AccountSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND, ErrorCode.NAME_TAKEN)
    def patch(self, body, account_id):
        """Rename an account or set its leverage limit."""
        return service.update(current_user_id(), account_id, body)

    @authenticated
    @blp.response(200, AccountSchema)
    @documents(blp, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND, ErrorCode.MAIN_ACCOUNT)
    def delete(self, account_id):
        """Archive an account: its history stays and its positions can be closed; it takes no new orders."""
        return service.archive(current_user_id(), account_id)
