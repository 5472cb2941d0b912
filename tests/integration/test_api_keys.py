"""Backpack paper-mode API keys: only public keys stored, bound to netting accounts, revocable."""

from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiKey
from core import signing

PUBLIC = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="  # Backpack's test vector's


def netting_account(client, headers, name="bot") -> int:
    opened = client.post("/api/v1/accounts", json={"name": name, "mode": "netting"}, headers=headers)
    assert opened.status_code == 201, opened.json
    return opened.json["id"]


def test_a_generated_key_shows_its_seed_once_and_stores_only_the_public_key(app, app_ctx, client, make_user):
    _, headers = make_user()
    account_id = netting_account(client, headers)
    created = client.post("/api/v1/api-keys", json={"accountId": account_id, "label": "grid bot"}, headers=headers)
    assert created.status_code == 201, created.json
    key = created.json
    assert (key["accountId"], key["label"], key["lastUsedAt"]) == (account_id, "grid bot", None)
    text = signing.signed_text("balanceQuery", {}, 1, 5000)
    signature = signing.sign(key["seed"], text)  # the seed is the pair's: it signs what the public key verifies
    signing.verify(
        signing.public_key_bytes(key["publicKey"]),
        signing.parse_headers(
            {"X-API-Key": key["publicKey"], "X-Signature": signature, "X-Timestamp": "1", "X-Window": "5000"}
        ),
        "balanceQuery",
        {},
    )
    listed = client.get("/api/v1/api-keys", headers=headers).json
    assert [k["id"] for k in listed] == [key["id"]] and "seed" not in listed[0]
    stored = db.session.get(ApiKey, key["id"])
    assert stored.public_key == key["publicKey"]
    assert key["seed"] not in str({c.name: getattr(stored, c.name) for c in ApiKey.__table__.columns})


def test_keys_are_refused_for_hedging_accounts_taken_public_keys_and_bad_input(app, app_ctx, client, make_user):
    main_id, headers = make_user()
    _, stranger = make_user()
    account_id = netting_account(client, headers)
    body = {"accountId": account_id, "label": "mine", "publicKey": PUBLIC}
    assert client.post("/api/v1/api-keys", json=body, headers=headers).status_code == 201
    cases = [
        ({**body, "accountId": main_id}, headers, 409, "wrong_account_mode"),  # main is a hedging account
        (body, headers, 409, "key_taken"),
        ({**body, "accountId": netting_account(client, stranger, "theirs")}, headers, 404, "not_found"),
        ({**body, "publicKey": "not-a-key"}, headers, 422, "validation"),
        ({**body, "publicKey": "c2hvcnQ="}, headers, 422, "validation"),  # base64, but 5 bytes
        ({"accountId": account_id}, headers, 422, "validation"),  # no label
    ]
    for request_body, who, status, code in cases:
        answer = client.post("/api/v1/api-keys", json=request_body, headers=who)
        assert (answer.status_code, answer.json["error"]) == (status, code), request_body
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_a_revoked_key_is_gone_from_the_list_and_its_public_key_never_returns(app, client, make_user):
    _, headers = make_user()
    _, stranger = make_user()
    account_id = netting_account(client, headers)
    key = client.post("/api/v1/api-keys", json={"accountId": account_id, "label": "old"}, headers=headers).json
    assert client.delete(f"/api/v1/api-keys/{key['id']}", headers=stranger).status_code == 404
    assert client.delete(f"/api/v1/api-keys/{key['id']}", headers=headers).status_code == 204
    assert client.get("/api/v1/api-keys", headers=headers).json == []
    again = {"accountId": account_id, "label": "again", "publicKey": key["publicKey"]}
    assert client.post("/api/v1/api-keys", json=again, headers=headers).json["error"] == "key_taken"
