"""Personal access tokens: a script trades with one instead of re-signing in by e-mail."""

import pytest

from app.extensions import db
from app.models import AccessToken
from tests.support.state import user_of
from tests.support.trading import BTC_ASK, BTC_BID, open_trade

pytestmark = pytest.mark.usefixtures("engine_worker")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_a_token_is_shown_once_acts_for_its_account_and_dies_when_revoked(app, app_ctx, client, make_user, set_price):
    account_id, session = make_user()
    created = client.post("/api/v1/tokens", json={"label": "grid bot"}, headers=session)
    assert created.status_code == 201
    secret, token_id = created.json["token"], created.json["id"]
    assert secret.startswith("pat_") and created.json["prefix"] == secret[:12]
    stored = db.session.get(AccessToken, token_id)
    assert stored.user_id == user_of(app, account_id) and secret not in (stored.token_hash, stored.prefix)

    set_price("BTC", BTC_BID, BTC_ASK)
    assert client.get("/api/v1/balance/usd", headers=bearer(secret)).json["balance"] == 500_000
    traded = open_trade(client, bearer(secret))
    assert traded.status_code == 200 and traded.json["status"] == "open"
    listed = client.get("/api/v1/tokens", headers=session).json
    assert [(token["id"], token["label"]) for token in listed] == [(token_id, "grid bot")]
    assert listed[0]["lastUsedAt"] is not None and "token" not in listed[0]

    assert client.post("/api/v1/tokens", json={"label": "x"}, headers=bearer(secret)).status_code == 401
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=session).status_code == 204
    refused = client.get("/api/v1/balance/usd", headers=bearer(secret))
    assert refused.status_code == 401 and refused.json["error"] == "unauthorized"
    assert client.get("/api/v1/tokens", headers=session).json == []


def test_tokens_of_others_unknown_secrets_and_bad_labels_are_refused_and_write_nothing(client, make_user):
    _, alice = make_user()
    _, bob = make_user()
    token_id = client.post("/api/v1/tokens", json={"label": "alice"}, headers=alice).json["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=bob).status_code == 404
    assert client.get("/api/v1/tokens", headers=alice).json[0]["id"] == token_id  # still alive
    assert client.get("/api/v1/balance/usd", headers=bearer("pat_" + "x" * 43)).status_code == 401
    for label in ("", "x" * 101, None, "\x00", "bot\nInjected: 1"):
        refused = client.post("/api/v1/tokens", json={"label": label}, headers=alice)
        assert refused.status_code == 422 and refused.json["error"] == "validation"
    assert len(client.get("/api/v1/tokens", headers=alice).json) == 1
