from flask import current_app, jsonify, redirect, request
from flask.views import MethodView
from flask_jwt_extended import set_access_cookies, unset_jwt_cookies

from app.auth import service
from app.auth.schemas import EmailSchema, MessageSchema, TokenQuerySchema, TokenSchema
from app.blueprint import Blueprint
from app.errors import ApiError, ErrorCode, documents
from app.extensions import limiter

blp = Blueprint("auth", __name__, description="Sign up and sign in with a magic link")

LINK_MESSAGE = "Check your email: a sign-in link is on its way"
SIGN_IN_MESSAGE = "If an account exists for this email, a sign-in link is on its way"


def _email_key() -> str:
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    return f"email:{email.strip().lower()[:300]}" if isinstance(email, str) else "email:<none>"


def _rate_limited(view):
    view = limiter.limit(lambda: current_app.config["AUTH_RATE_LIMIT_IP"])(view)
    return limiter.limit(lambda: current_app.config["AUTH_RATE_LIMIT_EMAIL"], key_func=_email_key)(view)


@blp.route("/signup")
class SignUp(MethodView):
    @_rate_limited
    @blp.arguments(EmailSchema)
    @blp.response(200, MessageSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.RATE_LIMITED)
    def post(self, body):
        """Create an account with the starting balance (if the address has none) and mail a sign-in link.

        The answer is the same for a registered address, which gets a sign-in link instead."""
        service.request_link(body["email"], create_account=True)
        return {"message": LINK_MESSAGE}


@blp.route("/signin")
class SignIn(MethodView):
    @_rate_limited
    @blp.arguments(EmailSchema)
    @blp.response(200, MessageSchema)
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.RATE_LIMITED)
    def post(self, body):
        """Email a sign-in link; answers the same whether or not the account exists."""
        service.request_link(body["email"], create_account=False)
        return {"message": SIGN_IN_MESSAGE}


@blp.route("/signin/post")
class RedeemLink(MethodView):
    @blp.arguments(TokenQuerySchema, location="query")
    @blp.response(200, TokenSchema)
    @blp.alt_response(303, description="to a browser: on to the terminal, signed in (or `/?signin=invalid`)")
    @documents(blp, ErrorCode.VALIDATION, ErrorCode.UNAUTHORIZED)
    def get(self, query):
        """Follow the emailed link: returns a JWT and sets it as an HttpOnly cookie (with CSRF cookie).

        A browser (one that prefers HTML) is sent on to the terminal, signed in by the cookie."""
        if not _wants_html():
            token = service.redeem_link(query["token"])
            response = jsonify({"token": token})
            set_access_cookies(response, token)
            return response
        try:
            token = service.redeem_link(query["token"])
        except ApiError:
            return redirect("/?signin=invalid", 303)
        response = redirect("/", 303)
        set_access_cookies(response, token)
        return response


@blp.route("/signout")
class SignOut(MethodView):
    @blp.response(204)
    def post(self):
        """Forget the session cookies (a bearer token simply stops being sent)."""
        response = current_app.response_class(status=204)
        unset_jwt_cookies(response)
        return response


def _wants_html() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"
