from flask.views import MethodView

from app.api_keys import service
from app.api_keys.schemas import ApiKeySchema, CreatedApiKeySchema, NewApiKeySchema
from app.blueprint import ACCOUNT_PARAMETER, Blueprint
from app.errors import ErrorCode, documents
from app.identity import current_account_id, current_user_id, signed_in

blp = Blueprint("api_keys", __name__, description="Backpack paper-mode API keys (ED25519) of netting accounts")


@blp.route("/api-keys")
class ApiKeys(MethodView):
    @signed_in
    @blp.arguments(NewApiKeySchema)
    @blp.response(201, CreatedApiKeySchema)
    @blp.doc(parameters=[ACCOUNT_PARAMETER])
    @documents(
        blp,
        ErrorCode.VALIDATION,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.NOT_FOUND,
        ErrorCode.WRONG_ACCOUNT_MODE,
        ErrorCode.ACCOUNT_ARCHIVED,
        ErrorCode.KEY_TAKEN,
    )
    def post(self, body):
        """A key for a netting account: send `publicKey` (yours), or none and get a generated pair whose
        `seed` is in this answer only. Never use a real Backpack key here."""
        account_id = current_account_id(body.get("accountId"))
        return service.create(account_id, body["label"], body.get("publicKey"))

    @signed_in
    @blp.response(200, ApiKeySchema(many=True))
    @documents(blp, ErrorCode.UNAUTHORIZED)
    def get(self):
        """Your live keys over all your accounts (never a seed), with when each was last used."""
        return service.list_keys(current_user_id())


@blp.route("/api-keys/<int:key_id>")
class ApiKey(MethodView):
    @signed_in
    @blp.response(204)
    @documents(blp, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def delete(self, key_id):
        """Revoke a key: the next request it signs is a 401."""
        service.revoke(current_user_id(), key_id)
