"""Sign-up and magic-link sign-in, with the mail delivered by a real worker to a real SMTP server."""

import time
from dataclasses import replace
from datetime import timedelta

import jwt as pyjwt
import pytest

from app import create_app
from app.extensions import db
from app.identity import main_account_id
from app.models import LedgerEntry, LoginToken, MailOutbox, User
from config import Config
from tests.support.mail import token_from
from tests.support.mail import wait_for_mail as wait_for_mail_in
from tests.support.state import user_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("mail_worker")


@pytest.fixture
def wait_for_mail(smtp):
    return lambda to, timeout=30: wait_for_mail_in(smtp, to, timeout)


def app_with_broker_down() -> "Flask":  # noqa: F821
    """The API with its Celery broker on a closed port (the database and Redis stay up)."""
    config = Config.from_env()
    celery = {
        **config.CELERY,
        "broker_url": "redis://127.0.0.1:9/0",
        "task_publish_retry": False,
        "broker_connection_timeout": 0.5,
    }
    return create_app(replace(config, CELERY=celery))


def test_signup_mail_link_jwt_and_starting_balance_through_ledger(app, client, wait_for_mail):
    assert client.post("/api/v1/signup", json={"email": "Alice@Example.com"}).status_code == 200
    token = token_from(wait_for_mail("alice@example.com"))
    signed_in = client.get(f"/api/v1/signin/post?token={token}")
    assert signed_in.status_code == 200
    jwt_token = signed_in.json["token"]
    assert signed_in.headers["Cache-Control"] == "no-store"
    cookies = signed_in.headers.getlist("Set-Cookie")
    assert any(c.startswith("access_token_cookie=") and "HttpOnly" in c for c in cookies)

    bearer = client.get("/api/v1/balance/usd", headers={"Authorization": f"Bearer {jwt_token}"})
    assert bearer.json == {"balance": 500000, "decimals": 2}
    with app.app_context():
        user = db.session.execute(db.select(User)).scalar_one()
        main = main_account_id(user.id)
        entries = db.session.execute(db.select(LedgerEntry).where(LedgerEntry.account_id == main)).scalars().all()
        assert [(e.kind, e.usd_delta) for e in entries] == [("deposit", 500000)]
        stored = db.session.execute(db.select(LoginToken)).scalar_one()
        assert stored.token_hash != token and token not in stored.token_hash
        # a sent row is deleted right after the mail went out (the test may read the mail first)
        eventually(lambda: db.session.execute(db.select(MailOutbox)).first() is None, timeout=5)


def test_cookie_session_reads_freely_but_needs_csrf_to_change_state(client, wait_for_mail):
    client.post("/api/v1/signup", json={"email": "carol@example.com"})
    signed_in = client.get(f"/api/v1/signin/post?token={token_from(wait_for_mail('carol@example.com'))}")
    assert signed_in.status_code == 200
    assert client.get("/api/v1/balance/usd").status_code == 200  # cookie only
    no_csrf = client.post("/api/v1/trade/close", json={"orderId": "00000000-0000-0000-0000-000000000000"})
    assert no_csrf.status_code == 401 and no_csrf.json["error"] == "unauthorized"
    csrf = client.get_cookie("csrf_access_token").value
    with_csrf = client.post(
        "/api/v1/trade/close",
        json={"orderId": "00000000-0000-0000-0000-000000000000"},
        headers={"X-CSRF-TOKEN": csrf},
    )
    assert with_csrf.status_code == 404  # authenticated; the order just does not exist


def test_link_is_single_use(client, wait_for_mail):
    client.post("/api/v1/signup", json={"email": "dave@example.com"})
    token = token_from(wait_for_mail("dave@example.com"))
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 200
    reused = client.get(f"/api/v1/signin/post?token={token}")
    assert reused.status_code == 401 and reused.json["error"] == "unauthorized"


def test_expired_and_tampered_links_are_401(app, client, wait_for_mail):
    client.post("/api/v1/signup", json={"email": "erin@example.com"})
    token = token_from(wait_for_mail("erin@example.com"))
    assert client.get(f"/api/v1/signin/post?token={token}x").status_code == 401
    with app.app_context():
        login = db.session.execute(db.select(LoginToken)).scalar_one()
        login.expires_at = login.expires_at - timedelta(minutes=16)
        db.session.commit()
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 401
    assert client.get("/api/v1/signin/post").status_code == 422


def test_signin_sends_a_link_only_to_existing_users_and_answers_the_same(client, smtp, wait_for_mail):
    client.post("/api/v1/signup", json={"email": "frank@example.com"})
    wait_for_mail("frank@example.com")
    known = client.post("/api/v1/signin", json={"email": "frank@example.com"})
    unknown = client.post("/api/v1/signin", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 200
    assert known.json == unknown.json
    token = token_from(wait_for_mail("frank@example.com"))
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 200
    time.sleep(0.5)
    assert not [m for m in smtp.messages if m["To"] == "nobody@example.com"]


def test_signup_of_a_registered_address_answers_the_same_and_mails_a_sign_in_link(app, client, wait_for_mail):
    first = client.post("/api/v1/signup", json={"email": "gina@example.com"})
    wait_for_mail("gina@example.com")
    again = client.post("/api/v1/signup", json={"email": "GINA@example.com"})
    assert first.status_code == again.status_code == 200 and first.json == again.json
    token = token_from(wait_for_mail("gina@example.com"))
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 200
    with app.app_context():
        assert db.session.execute(db.select(db.func.count()).select_from(User)).scalar_one() == 1
        deposits = db.session.execute(db.select(LedgerEntry.usd_delta)).scalars().all()
        assert deposits == [500_000]  # one account, credited once


def test_signup_and_signin_do_the_same_work_for_known_and_unknown_addresses(make_user):
    """Each request commits one outbox row and enqueues it, whether or not the address has an
    account: nothing in the answer or its timing depends on it (the mailer decides later)."""
    make_user("known@example.com")
    down = app_with_broker_down()
    client = down.test_client()
    before = outbox_ids_issued(down)
    answers = [
        client.post(path, json={"email": email})
        for path in ("/api/v1/signup", "/api/v1/signin")
        for email in ("known@example.com", "unknown@example.com")
    ]
    assert {(a.status_code, a.json["message"]) for a in answers[:2]} == {(200, answers[0].json["message"])}
    assert {(a.status_code, a.json["message"]) for a in answers[2:]} == {(200, answers[2].json["message"])}
    assert outbox_ids_issued(down) - before == 4  # one row per request (beat's sweep may have sent some already)


def outbox_ids_issued(app) -> int:
    with app.app_context():
        last, called = db.session.execute(db.text("SELECT last_value, is_called FROM mail_outbox_id_seq")).one()
    return last if called else last - 1


@pytest.mark.usefixtures("beat")
def test_signup_while_the_broker_is_down_still_ends_in_an_account_and_a_mail(app, wait_for_mail):
    """One outcome: the account and its link are created by the mailer once the outbox sweep
    (beat) re-enqueues the row that the API could not enqueue."""
    answer = app_with_broker_down().test_client().post("/api/v1/signup", json={"email": "outage@example.com"})
    assert answer.status_code == 200
    token = token_from(wait_for_mail("outage@example.com", timeout=60))
    assert app.test_client().get(f"/api/v1/signin/post?token={token}").status_code == 200
    with app.app_context():
        assert db.session.execute(db.select(User.email)).scalars().all() == ["outage@example.com"]


@pytest.mark.parametrize(
    "body", [{"email": "not-an-email"}, {}, {"email": 5}, {"email": None}, {"email": "a@b.c", "x": 1}, [], "x"]
)
def test_malformed_signup_bodies_are_422(client, body):
    response = client.post("/api/v1/signup", json=body)
    assert response.status_code == 422 and response.json["error"] == "validation"


def test_bad_jwts_are_401(app, client, make_user):
    account_id, headers = make_user()
    user_id = user_of(app, account_id)
    forged = pyjwt.encode(
        {"sub": str(user_id), "type": "access", "fresh": False, "jti": "x", "nbf": 0},
        "a-different-secret-of-thirty-two-plus-bytes",
        algorithm="HS256",
    )
    expired = pyjwt.encode(
        {"sub": str(user_id), "type": "access", "fresh": False, "jti": "x", "nbf": 0, "exp": 1},
        app.config["JWT_SECRET_KEY"],
        algorithm="HS256",
    )
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
    assert (
        client.post(
            "/api/v1/trade/create", headers=headers, json={"asset": "BTC", "type": "long", "margin": 100, "leverage": 1}
        ).status_code
        == 401
    )


def test_a_browser_following_the_link_lands_in_the_terminal_signed_in(client, wait_for_mail):
    client.post("/api/v1/signup", json={"email": "browser@example.com"})
    token = token_from(wait_for_mail("browser@example.com"))
    html = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    followed = client.get(f"/api/v1/signin/post?token={token}", headers=html)
    assert followed.status_code == 303 and followed.headers["Location"] == "/"
    assert any(c.startswith("access_token_cookie=") for c in followed.headers.getlist("Set-Cookie"))
    assert client.get("/api/v1/balance/usd").json == {"balance": 500_000, "decimals": 2}  # by the cookie
    again = client.get(f"/api/v1/signin/post?token={token}", headers=html)
    assert again.status_code == 303 and again.headers["Location"] == "/?signin=invalid"
    assert client.get(f"/api/v1/signin/post?token={token}").status_code == 401  # API clients still get JSON
    assert client.post("/api/v1/signout").status_code == 204
    assert client.get("/api/v1/balance/usd").status_code == 401
