"""flask-jwt-extended answers in the contract's error shape: 401 `unauthorized` for any bad token,
including a valid signature for an account that no longer exists."""
from flask import jsonify

from app.errors import error_body
from app.extensions import db, jwt
from app.models import User


def _unauthorized(message: str):
    return jsonify(error_body(401, message, "unauthorized")), 401


@jwt.unauthorized_loader
def _missing(reason: str):
    return _unauthorized(reason)


@jwt.invalid_token_loader
def _invalid(reason: str):
    return _unauthorized(f"Invalid token: {reason}")


@jwt.expired_token_loader
def _expired(_header, _payload):
    return _unauthorized("Token has expired")


@jwt.user_lookup_loader
def _load_user(_header, payload):
    return db.session.get(User, int(payload["sub"])) if str(payload.get("sub", "")).isdigit() else None


@jwt.user_lookup_error_loader
def _unknown_user(_header, _payload):
    return _unauthorized("This account does not exist")


@jwt.token_verification_failed_loader
def _failed(_header, _payload):
    return _unauthorized("Token verification failed")
