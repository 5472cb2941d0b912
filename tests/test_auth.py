"""Sign-up and magic-link sign-in, with the mail delivered by a real worker to a real SMTP server."""
import re
import time
from datetime import timedelta

import jwt as pyjwt
import pytest

from app.extensions import db
from app.models import LedgerEntry, LoginToken, User
from tests.conftest import SMTP

pytestmark = pytest.mark.usefixtures("mail_worker")
LINK = re.compile(r"(http\S+/api/v1/signin/post\?token=(\S+))")


def wait_for_mail(to: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in SMTP.messages:
            if message["To"] == to:
                SMTP.messages.remove(message)
                return message
        time.sleep(0.05)
    raise AssertionError(f"no mail to {to}")


def token_from(message) -> str:
    return LINK.search(message.get_payload(decode=True).decode()).group(2)


def test_signup_mail_link_jwt_and_starting_balance_through_ledger(app, client):
    assert client.post("/api/v1/signup", json={"email": "Alice@Example.com"}).status_code == 200
    token = token_from(wait_for_mail("alice@example.com"))
    signed_in = client.get(f"/api/v1/signin/post?token={token}")
    assert signed_in.status_code == 200
    jwt_token = signed_in.json["token"]
    cookies = signed_in.headers.getlist("Set-Cookie")
    assert any(c.startswith("access_token_cookie=") and "HttpOnly" in c for c in cookies)

    bearer = client.get("/api/v1/balance/usd", headers={"Authorization": f"Bearer {jwt_token}"})
    assert bearer.json == {"balance": 500000, "decimals": 2}
    with app.app_context():
        user = db.session.execute(db.select(User)).scalar_one()
        entries = db.session.execute(db.select(LedgerEntry).where(LedgerEntry.user_id == user.id)).scalars().all()
        assert [(e.kind, e.usd_delta) for e in entries] == [("deposit", 500000)]
        stored = db.session.execute(db.select(LoginToken)).scalar_one()
        assert stored.token_hash != token and token not in stored.token_hash


def test_cookie_session_reads_freely_but_needs_csrf_to_change_state(client):
    client.post("/api/v1/signup", json={"email": "carol@example.com"})
    signed_in = client.get(f"/api/v1/signin/post?token={token_from(wait_for_mail('carol@example.com'))}")
    assert signed_in.status_code == 200
    assert client.get("/api/v1/balance/usd").status_code == 200  # cookie only
    no_csrf = client.post("/api/v1/trade/close", json={"orderId": "00000000-0000-0000-0000-000000000000"})
    assert no_csrf.status_code == 401 and no_csrf.json["error"] == "unauthorized"
    csrf = client.get_cookie("csrf_access_token").value
    with_csrf = client.post(
        "/api/v1/trade/close", json={"orderId": "00000000-0000-0000-0000-000000000000"},
        headers={"X-CSRF-TOKEN": csrf},
    )
    assert with_csrf.status_code == 404  # authenticated; the order just does not exist


def test_link_is_single_use(client):
    client.post("/api/v1/signup", json={"email": "dave@example.com"})
    token = token_from(wait_for_mail("dave@example.com"))
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 200
    reused = client.get(f"/api/v1/signin/post?token={token}")
    assert reused.status_code == 401 and reused.json["error"] == "unauthorized"


def test_expired_and_tampered_links_are_401(app, client):
    client.post("/api/v1/signup", json={"email": "erin@example.com"})
    token = token_from(wait_for_mail("erin@example.com"))
    assert client.get(f"/api/v1/signin/post?token={token}x").status_code == 401
    with app.app_context():
        login = db.session.execute(db.select(LoginToken)).scalar_one()
        login.expires_at = login.expires_at - timedelta(minutes=16)
        db.session.commit()
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 401
    assert client.get("/api/v1/signin/post").status_code == 422


def test_signin_sends_a_link_only_to_existing_users_and_answers_the_same(client):
    client.post("/api/v1/signup", json={"email": "frank@example.com"})
    wait_for_mail("frank@example.com")
    known = client.post("/api/v1/signin", json={"email": "frank@example.com"})
    unknown = client.post("/api/v1/signin", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.json == unknown.json
    token = token_from(wait_for_mail("frank@example.com"))
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 200
    time.sleep(0.5)
    assert not [m for m in SMTP.messages if m["To"] == "nobody@example.com"]


def test_duplicate_signup_is_409(client):
    assert client.post("/api/v1/signup", json={"email": "gina@example.com"}).status_code == 200
    again = client.post("/api/v1/signup", json={"email": "GINA@example.com"})
    assert again.status_code == 409 and again.json["error"] == "user_exists"


@pytest.mark.parametrize(
    "body", [{"email": "not-an-email"}, {}, {"email": 5}, {"email": None}, {"email": "a@b.c", "x": 1}, [], "x"]
)
def test_malformed_signup_bodies_are_422(client, body):
    response = client.post("/api/v1/signup", json=body)
    assert response.status_code == 422 and response.json["error"] == "validation"


def test_bad_jwts_are_401(app, client, make_user):
    user_id, headers = make_user()
    forged = pyjwt.encode({"sub": str(user_id), "type": "access", "fresh": False, "jti": "x", "nbf": 0},
                          "a-different-secret-of-thirty-two-plus-bytes", algorithm="HS256")
    expired = pyjwt.encode({"sub": str(user_id), "type": "access", "fresh": False, "jti": "x", "nbf": 0, "exp": 1},
                           app.config["JWT_SECRET_KEY"], algorithm="HS256")
    for value in (f"Bearer {forged}", f"Bearer {expired}", "Bearer garbage", "Basic abc"):
        response = client.get("/api/v1/balance/usd", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert response.json["error"] == "unauthorized"
    assert client.get("/api/v1/balance/usd", headers=headers).status_code == 200


def test_rate_limit_per_email_answers_429_json(app, client):
    app.config["AUTH_RATE_LIMIT_EMAIL"] = "2/minute"
    try:
        codes = [client.post("/api/v1/signin", json={"email": "hank@example.com"}).status_code for _ in range(3)]
        other = client.post("/api/v1/signin", json={"email": "ivy@example.com"})
    finally:
        app.config["AUTH_RATE_LIMIT_EMAIL"] = "1000/minute"
    assert codes == [200, 200, 429]
    assert other.status_code == 200
    limited = client.post("/api/v1/signin", json={"email": "hank@example.com"})
    assert limited.status_code == 200  # the limit is read per request: restored above


def test_rate_limit_per_ip_answers_429_json(app, client):
    app.config["AUTH_RATE_LIMIT_IP"] = "2/minute"
    try:
        responses = [client.post("/api/v1/signin", json={"email": f"u{i}@example.com"}) for i in range(3)]
    finally:
        app.config["AUTH_RATE_LIMIT_IP"] = "1000/minute"
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[2].json["error"] == "rate_limited" and responses[2].json["code"] == 429


def test_rate_limit_keys_on_the_forwarded_client_address_behind_a_trusted_proxy():
    from config import Config
    from tests.conftest import create_app

    proxied = create_app(Config.from_env(TRUSTED_PROXIES=1, AUTH_RATE_LIMIT_IP="1/minute"))
    client = proxied.test_client()
    first = client.post("/api/v1/signin", json={"email": "p1@example.com"}, headers={"X-Forwarded-For": "203.0.113.1"})
    other = client.post("/api/v1/signin", json={"email": "p2@example.com"}, headers={"X-Forwarded-For": "203.0.113.2"})
    again = client.post("/api/v1/signin", json={"email": "p3@example.com"}, headers={"X-Forwarded-For": "203.0.113.1"})
    assert (first.status_code, other.status_code, again.status_code) == (200, 200, 429)


def test_validly_signed_token_for_an_unknown_account_is_401(app, client):
    from flask_jwt_extended import create_access_token

    with app.app_context():
        headers = {"Authorization": f"Bearer {create_access_token(identity='987654')}"}
    response = client.get("/api/v1/balance/usd", headers=headers)
    assert response.status_code == 401 and response.json["error"] == "unauthorized"
    assert client.post("/api/v1/trade/create", headers=headers,
                       json={"asset": "BTC", "type": "long", "margin": 100, "leverage": 1}).status_code == 401
