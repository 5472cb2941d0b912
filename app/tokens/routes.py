from flask.views import MethodView

from app.blueprint import Blueprint
from app.errors import ErrorCode, documents
from app.identity import current_user_id, signed_in
from app.tokens import service
from app.tokens.schemas import AccessTokenSchema, CreatedAccessTokenSchema, NewAccessTokenSchema

blp = Blueprint("tokens", __name__, description="Personal access tokens for scripts and bots")


@blp.route("/tokens")
class Tokens(MethodView):
    @signed_in
    @blp.arguments(NewAccessTokenSchema)
    @blp.response(201, CreatedAccessTokenSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED)
    def post(self, body):
        """Create a token acting for you (every account, as a sign-in): send it as `Authorization: Bearer pat_...`.
        The secret is in this answer only; store it now."""
        return service.create(current_user_id(), body["label"])

    @signed_in
    @blp.response(200, AccessTokenSchema(many=True))
    @documents(blp, ErrorCode.UNAUTHORIZED)
    def get(self):
        """Your live tokens (never their secrets), with when each was last used."""
        return service.list_tokens(current_user_id())


@blp.route("/tokens/<int:token_id>")
class Token(MethodView):
    @signed_in
    @blp.response(204)
    @documents(blp, ErrorCode.UNAUTHORIZED, ErrorCode.NOT_FOUND)
    def delete(self, token_id):
        """Revoke a token: the next request that carries it is a 401."""
        service.revoke(current_user_id(), token_id)
