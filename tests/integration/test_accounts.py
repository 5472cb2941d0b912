"""Several paper accounts per user: each its own money, positions, history and reset; the native
API acts on `main` unless a request names another of the caller's accounts."""

import threading

import pytest

from app.extensions import db
from app.models import Account, LedgerEntry, Order
from tests.support.state import assert_ledger_balances, count_orders
from tests.support.trading import BTC_ASK, BTC_BID, open_trade
from tests.support.waiting import wait_for_status

pytestmark = pytest.mark.usefixtures("engine_worker")


def open_account(client, headers, name="scalping", **fields):
    created = client.post("/api/v1/accounts", json={"name": name, **fields}, headers=headers)
    assert created.status_code == 201, created.json
    return created.json


def on(account_id: int, headers: dict) -> dict:
    return {**headers, "X-Account-Id": str(account_id)}


def test_sign_up_opens_main_and_each_new_account_has_its_own_deposit_and_ledger(app, client, make_user):
    main_id, headers = make_user()
    (main,) = client.get("/api/v1/accounts", headers=headers).json
    assert main["id"] == main_id and main["name"] == "main" and main["main"] is True
    assert (main["mode"], main["usd"], main["lockedMargin"], main["archivedAt"]) == ("hedging", 500_000, 0, None)

    second = open_account(client, headers, startingBalance=100_000)
    assert second["main"] is False and second["usd"] == 100_000 and second["startingBalance"] == 100_000
    assert [a["id"] for a in client.get("/api/v1/accounts", headers=headers).json] == [main_id, second["id"]]
    assert client.get("/api/v1/balance/usd", headers=on(second["id"], headers)).json["balance"] == 100_000
    balance = client.get("/api/v1/balance/usd", query_string={"accountId": second["id"]}, headers=headers)
    assert balance.json["balance"] == 100_000
    assert client.get("/api/v1/balance/usd", headers=headers).json["balance"] == 500_000
    with app.app_context():
        deposits = db.session.execute(db.select(LedgerEntry.account_id, LedgerEntry.usd_delta)).all()
    assert sorted(deposits) == sorted([(main_id, 500_000), (second["id"], 100_000)])


def test_a_position_lives_in_the_account_that_opened_it(app, client, make_user, set_price):
    _, headers = make_user()
    other = open_account(client, headers)["id"]
    set_price("BTC", BTC_BID, BTC_ASK)

    opened = open_trade(client, headers, accountId=other, margin=10_000)
    assert opened.status_code == 200 and opened.json["status"] == "open"
    order_id = opened.json["orderId"]
    assert client.get("/api/v1/balance/usd", headers=on(other, headers)).json["balance"] == 490_000
    assert client.get("/api/v1/balance/usd", headers=headers).json["balance"] == 500_000
    assert client.get("/api/v1/trades", headers=headers).json == []
    assert [o["orderId"] for o in client.get("/api/v1/trades", headers=on(other, headers)).json] == [order_id]
    assert client.get(f"/api/v1/trade/{order_id}", headers=headers).status_code == 404  # main has no such order
    assert client.get(f"/api/v1/trade/{order_id}", headers=on(other, headers)).status_code == 200
    activities = client.get("/api/v1/activities", query_string={"accountId": other}, headers=headers).json
    assert [a["type"] for a in activities["activities"]] == ["open", "deposit"]

    assert client.post("/api/v1/trade/close", json={"orderId": order_id}, headers=headers).status_code == 404
    closed = client.post("/api/v1/trade/close", json={"orderId": order_id, "accountId": other}, headers=headers)
    assert closed.status_code == 200 and closed.json["status"] == "closed"
    assert_ledger_balances(app)


def test_a_reset_restores_that_accounts_own_starting_balance_only(app, client, make_user, set_price):
    _, headers = make_user()
    other = open_account(client, headers, startingBalance=50_000)["id"]
    set_price("BTC", BTC_BID, BTC_ASK)
    assert open_trade(client, headers, margin=10_000).status_code == 200
    assert open_trade(client, on(other, headers), margin=10_000).status_code == 200

    reset = client.post("/api/v1/account/reset", headers=on(other, headers))
    assert reset.status_code == 200 and reset.json["closedPositions"] == 1
    assert reset.json["balance"]["USD"]["balance"] == 50_000
    assert client.get("/api/v1/balance/usd", headers=headers).json["balance"] == 490_000  # main untouched
    assert_ledger_balances(app)


def test_another_users_account_and_malformed_ids_are_refused_and_nothing_is_written(app, client, make_user, set_price):
    alice_main, alice = make_user()
    alices_other = open_account(client, alice)["id"]
    _, bob = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)

    for account in (alice_main, alices_other, 10**15):
        assert open_trade(client, on(account, bob)).status_code == 404
        assert open_trade(client, bob, accountId=account).json["message"] == "No such account"
        assert client.get("/api/v1/balance/", headers=on(account, bob)).status_code == 404
        assert client.get("/api/v1/trades", query_string={"accountId": account}, headers=bob).status_code == 404
        assert client.post("/api/v1/account/reset", headers=on(account, bob)).status_code == 404
        assert client.patch(f"/api/v1/accounts/{account}", json={"name": "mine"}, headers=bob).status_code == 404
        assert client.delete(f"/api/v1/accounts/{account}", headers=bob).status_code == 404
    for header in ("abc", "0", "-1", "1.5", "9" * 30, ""):
        answer = open_trade(client, {**bob, "X-Account-Id": header})
        assert answer.status_code == 422 and answer.json["error"] == "validation"
    for value in ("1", True, 0, -5, 1.5, 2**63):
        assert open_trade(client, bob, accountId=value).status_code == 422
    mismatch = open_trade(client, on(alices_other, alice), accountId=alice_main)
    assert mismatch.status_code == 422 and "different accounts" in mismatch.json["message"]
    assert count_orders(app) == 0
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Account)) == 3
        assert db.session.get(Account, alices_other).name == "scalping"


def test_account_limits_names_and_bad_bodies(app, client, make_user):
    _, headers = make_user()
    for index in range(app.config["MAX_ACCOUNTS"] - 1):
        open_account(client, headers, name=f"bot {index}")
    too_many = client.post("/api/v1/accounts", json={"name": "one more"}, headers=headers)
    assert too_many.status_code == 409 and too_many.json["error"] == "too_many_accounts"

    _, carol = make_user()
    taken = client.post("/api/v1/accounts", json={"name": "main"}, headers=carol)
    assert taken.status_code == 409 and taken.json["error"] == "name_taken"
    for body in (
        {},
        {"name": ""},
        {"name": "x" * 65},
        {"name": "tab\there"},
        {"name": "n", "mode": "isolated"},
        {"name": "n", "startingBalance": 0},
        {"name": "n", "startingBalance": 10_000_000_001},
        {"name": "n", "startingBalance": "5000"},
        {"name": "n", "extra": 1},
    ):
        answer = client.post("/api/v1/accounts", json=body, headers=carol)
        assert answer.status_code == 422 and answer.json["error"] == "validation", body
    assert len(client.get("/api/v1/accounts", headers=carol).json) == 1

    other = open_account(client, carol, name="swing")["id"]
    renamed = client.patch(f"/api/v1/accounts/{other}", json={"name": "swing 2", "leverageLimit": 20}, headers=carol)
    assert renamed.status_code == 200 and (renamed.json["name"], renamed.json["leverageLimit"]) == ("swing 2", 20)
    for body in ({}, {"leverageLimit": 0}, {"leverageLimit": 101}, {"leverageLimit": "5"}, {"name": ""}):
        assert client.patch(f"/api/v1/accounts/{other}", json=body, headers=carol).status_code == 422, body
    clash = client.patch(f"/api/v1/accounts/{other}", json={"name": "main"}, headers=carol)
    assert clash.status_code == 409 and clash.json["error"] == "name_taken"
    assert client.get("/api/v1/accounts", headers=carol).json[1]["name"] == "swing 2"


def test_concurrent_creations_never_pass_max_accounts(app, client, make_user):
    _, headers = make_user()
    answers: list[int] = []

    def create(index: int) -> None:
        with app.test_client() as own:
            answers.append(own.post("/api/v1/accounts", json={"name": f"bot {index}"}, headers=headers).status_code)

    threads = [threading.Thread(target=create, args=(index,)) for index in range(app.config["MAX_ACCOUNTS"] + 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201] * (app.config["MAX_ACCOUNTS"] - 1) + [409] * 5
    assert len(client.get("/api/v1/accounts", headers=headers).json) == app.config["MAX_ACCOUNTS"]


def test_an_archived_account_keeps_its_history_closes_positions_and_takes_no_orders(app, client, make_user, set_price):
    main_id, headers = make_user()
    other = open_account(client, headers)["id"]
    set_price("BTC", BTC_BID, BTC_ASK)
    order_id = open_trade(client, on(other, headers), margin=10_000).json["orderId"]

    main = client.delete(f"/api/v1/accounts/{main_id}", headers=headers)
    assert main.status_code == 409 and main.json["error"] == "main_account"
    archived = client.delete(f"/api/v1/accounts/{other}", headers=headers)
    assert archived.status_code == 200 and archived.json["archivedAt"] is not None

    for idempotency in ({}, {"Idempotency-Key": "k-1"}):
        refused = open_trade(client, {**on(other, headers), **idempotency})
        assert refused.status_code == 409 and refused.json["error"] == "account_archived"
    assert count_orders(app) == 1
    closed = client.post("/api/v1/trade/close", json={"orderId": order_id, "accountId": other}, headers=headers)
    assert closed.status_code == 200
    wait_for_status(app, order_id, "closed")
    assert [a["id"] for a in client.get("/api/v1/accounts", headers=headers).json] == [main_id, other]
    assert open_trade(client, headers, margin=10_000).status_code == 200  # main trades on
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(Order).where(Order.account_id == other)) == 1
    assert_ledger_balances(app)
