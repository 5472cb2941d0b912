"""Every input the adversarial review found a 500 with, now a clear 4xx JSON; security headers."""

import jwt as pyjwt
import pytest
import requests

from tests.support.state import statements_reading, user_of

SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def deep(levels: int) -> str:
    return '{"email":' * levels + '"a@example.com"' + "}" * levels


@pytest.mark.parametrize("path", ["/api/v1/signup", "/api/v1/signin", "/api/v1/trade/create"])
def test_json_nested_1000_deep_is_400_json(client, make_user, path):
    _, headers = make_user()
    response = client.post(path, data=deep(1000), headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400, response.data[:200]
    assert response.json["error"] == "validation" and response.json["code"] == 400


def test_a_5000_digit_margin_is_400_json(client, make_user):
    _, headers = make_user()
    body = '{"asset": "BTC", "type": "long", "leverage": 1, "margin": ' + "9" * 5000 + "}"
    response = client.post("/api/v1/trade/create", data=body, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["error"] == "validation"


def test_an_address_that_grows_when_lower_cased_is_422(client):
    response = client.post("/api/v1/signup", json={"email": "İ" * 200 + "x@example.com"})
    assert response.status_code == 422 and response.json["error"] == "validation"


@pytest.mark.parametrize("subject", ["²", "9" * 30, "-1", "0", " 1", "1.0", "١٢"])
def test_validly_signed_tokens_naming_no_account_are_401(app, client, subject):
    token = pyjwt.encode(
        {"sub": subject, "type": "access", "fresh": False, "jti": "j", "nbf": 0, "exp": 2**40},
        app.config["JWT_SECRET_KEY"],
        algorithm="HS256",
    )
    response = client.get("/api/v1/balance/usd", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json["error"] == "unauthorized"


def test_a_validly_signed_token_for_a_user_that_does_not_exist_is_401(app, client):
    token = pyjwt.encode(
        {"sub": "123456789012", "type": "access", "fresh": False, "jti": "j", "nbf": 0, "exp": 2**40},
        app.config["JWT_SECRET_KEY"],
        algorithm="HS256",
    )
    response = client.get("/api/v1/balance/usd", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json["message"] == "This user does not exist"


def test_a_process_reads_a_user_and_its_main_account_once_for_all_its_tokens(app, client, make_user):
    _, headers = make_user()
    with statements_reading(app, "users") as user_reads, statements_reading(app, "accounts") as account_reads:
        for _ in range(3):
            assert client.get("/api/v1/balance/usd", headers=headers).status_code == 200
    # users and accounts are never deleted and never change hands: once found, remembered
    assert len(user_reads) <= 1 and len(account_reads) <= 1


def test_a_validly_signed_token_without_exp_is_401(app, client, make_user):
    account_id, _ = make_user()
    token = pyjwt.encode(
        {"sub": str(user_of(app, account_id)), "type": "access", "fresh": False, "jti": "j", "nbf": 0},
        app.config["JWT_SECRET_KEY"],
        algorithm="HS256",
    )
    response = client.get("/api/v1/balance/usd", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and response.json["error"] == "unauthorized"


def test_bodies_over_64_kib_are_413_json(client):
    response = client.post("/api/v1/signup", data="x" * (64 * 1024 + 1), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json["error"] == "too_large"


def test_every_response_carries_the_security_headers_and_sessions_are_never_cached(client, make_user):
    _, headers = make_user()
    public = client.get("/api/v1/supportedAssets")
    private = client.get("/api/v1/balance/usd", headers=headers)
    missing = client.get("/api/v1/nowhere")
    for response in (public, private, missing):
        assert SECURITY_HEADERS.items() <= dict(response.headers).items()
    assert private.headers["Cache-Control"] == "no-store"
    assert "no-store" not in public.headers.get("Cache-Control", "")
    assert missing.status_code == 404 and missing.json["error"] == "not_found"


@pytest.mark.parametrize(
    "headers, path, status",
    [
        ({}, "/api/v1/prices?" + "x" * 10_000, 414),
        ({"X-Filler": "y" * 10_000}, "/api/v1/prices", 431),
    ],
)
def test_oversized_urls_and_headers_get_json_from_the_web_server(live_server, headers, path, status):
    response = requests.get(live_server + path, headers=headers, timeout=10)
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "too_large" and response.json()["code"] == status
    assert SECURITY_HEADERS.items() <= dict(response.headers).items()
