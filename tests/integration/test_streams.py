"""Server-Sent Events through the real web process (gunicorn, gevent): prices for everyone,
orders, balance and PnL for the signed-in account."""

import json
import threading
import time

import pytest
import requests

from tests.support.state import user_of
from tests.support.trading import BTC_ASK, BTC_BID, open_trade
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("engine_worker")


class EventReader:
    """Reads an event stream in a thread, keeping (event, id, data) triples and comment lines."""

    def __init__(self, url: str, headers: dict | None = None):
        self.response = requests.get(url, headers=headers or {}, stream=True, timeout=(5, 60))
        self.events: list[tuple[str, str | None, dict]] = []
        self.comments: list[str] = []
        self.retry: int | None = None
        self.ended = threading.Event()  # the server closed the stream
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        event, event_id, data = "message", None, None
        try:
            for raw in self.response.iter_lines(decode_unicode=True):
                if raw == "":
                    if data is not None:
                        self.events.append((event, event_id, json.loads(data)))
                    event, event_id, data = "message", None, None
                elif raw.startswith(":"):
                    self.comments.append(raw)
                elif raw.startswith("retry:"):
                    self.retry = int(raw.split(":", 1)[1])
                else:
                    field, _, value = raw.partition(": ")
                    if field == "event":
                        event = value
                    elif field == "id":
                        event_id = value
                    elif field == "data":
                        data = value
        except (requests.RequestException, AttributeError):
            pass
        self.ended.set()

    def of(self, kind: str) -> list[dict]:
        return [data for event, _, data in self.events if event == kind]


@pytest.fixture
def reader():
    opened = []

    def open_(url, headers=None):
        opened.append(EventReader(url, headers))
        return opened[-1]

    return open_  # streams end with the server (closing one mid-read would block until its next event)


def test_price_stream_sends_a_snapshot_then_throttled_price_events(live_server, set_price, reader):
    set_price("BTC", BTC_BID, BTC_ASK)
    stream = reader(f"{live_server}/api/v1/stream/prices")
    assert stream.response.headers["Content-Type"].startswith("text/event-stream")
    assert stream.response.headers["Cache-Control"] == "no-store"
    eventually(lambda: stream.of("snapshot"))
    snapshot = stream.of("snapshot")[0]
    assert snapshot["BTC"] == {
        "bid": BTC_BID,
        "ask": BTC_ASK,
        "mid": (BTC_BID + BTC_ASK) // 2,
        "spread": BTC_ASK - BTC_BID,
        "decimals": 4,
        "time": snapshot["BTC"]["time"],
    }
    assert stream.retry is not None

    began = time.monotonic()
    for step in range(1, 201):  # 200 quotes in about a second: far more than 10 per second
        set_price("BTC", BTC_BID + step, BTC_ASK + step)
    eventually(lambda: any(p["bid"] == BTC_BID + 200 for p in stream.of("price")), timeout=5)
    elapsed = time.monotonic() - began
    prices = [p for p in stream.of("price") if p["asset"] == "BTC"]
    assert len(prices) <= 10 * (elapsed + 0.5) + 1  # latest wins, at most 10 a second
    assert prices[-1]["bid"] == BTC_BID + 200
    ids = [event_id for event, event_id, _ in stream.events if event == "price"]
    assert all(ids) and ids == sorted(ids, key=int)  # EventSource resumes from these


def test_order_stream_needs_a_session(live_server):
    response = requests.get(f"{live_server}/api/v1/stream/orders", timeout=5)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"


def test_order_stream_pushes_orders_balances_and_live_pnl(live_server, client, make_user, set_price, reader):
    _, headers = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    stream = reader(f"{live_server}/api/v1/stream/orders", headers)
    eventually(lambda: stream.of("balance") and stream.of("pnl"))
    assert stream.of("balance")[0]["USD"] == {"balance": 500_000, "decimals": 2}

    opened = open_trade(client, headers, margin=10_000).json
    eventually(lambda: [o for o in stream.of("order") if o["orderId"] == opened["orderId"]])
    assert stream.of("order")[-1]["status"] == "open" and stream.of("order")[-1]["openPrice"] == BTC_ASK
    eventually(lambda: stream.of("balance")[-1]["USD"]["balance"] == 490_000)

    set_price("BTC", BTC_BID + 10_000_000, BTC_ASK + 10_000_000)  # +1000 USD a BTC

    def pnl_at_new_price():
        latest = stream.of("pnl")[-1]
        return latest if (latest["positions"].get(opened["orderId"]) or 0) > 0 else None

    pnl = eventually(pnl_at_new_price, timeout=10)
    expected = (BTC_BID + 10_000_000 - BTC_ASK) * opened["quantity"] // 10**10
    assert pnl["positions"][opened["orderId"]] == expected
    assert pnl["unrealizedPnl"] == expected and pnl["equity"] == 490_000 + 10_000 + expected

    closed = client.post("/api/v1/trade/close", json={"orderId": opened["orderId"]}, headers=headers).json
    eventually(lambda: stream.of("order")[-1]["status"] == "closed")
    eventually(lambda: stream.of("balance")[-1]["USD"]["balance"] == 500_000 + closed["pnl"])
    eventually(lambda: stream.of("pnl")[-1]["positions"] == {})


def test_streams_of_other_accounts_hear_nothing(live_server, client, make_user, set_price, reader):
    _, alice = make_user()
    _, bob = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    bobs = reader(f"{live_server}/api/v1/stream/orders", bob)
    eventually(lambda: bobs.of("balance"))
    assert open_trade(client, alice, margin=10_000).status_code == 200
    time.sleep(1)
    assert bobs.of("order") == [] and len(bobs.of("balance")) == 1


def test_an_order_stream_follows_the_account_it_names_and_no_one_elses(
    live_server, client, make_user, set_price, reader
):
    _, headers = make_user()
    second = client.post("/api/v1/accounts", json={"name": "second", "startingBalance": 70_000}, headers=headers).json
    _, stranger = make_user()
    set_price("BTC", BTC_BID, BTC_ASK)
    mains = reader(f"{live_server}/api/v1/stream/orders", headers)
    seconds = reader(f"{live_server}/api/v1/stream/orders?accountId={second['id']}", headers)
    eventually(lambda: mains.of("balance") and seconds.of("balance"))
    assert seconds.of("balance")[0]["USD"]["balance"] == 70_000 and mains.of("balance")[0]["USD"]["balance"] == 500_000

    opened = open_trade(client, {**headers, "X-Account-Id": str(second["id"])}, margin=10_000).json
    eventually(lambda: [o for o in seconds.of("order") if o["orderId"] == opened["orderId"]])
    eventually(lambda: seconds.of("balance")[-1]["USD"]["balance"] == 60_000)
    time.sleep(0.5)
    assert mains.of("order") == [] and len(mains.of("balance")) == 1
    refused = requests.get(f"{live_server}/api/v1/stream/orders?accountId={second['id']}", headers=stranger, timeout=5)
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"


def test_an_order_stream_ends_when_its_token_expires(app, live_server, make_user, reader):
    from datetime import timedelta

    from flask_jwt_extended import create_access_token

    account_id, _ = make_user()
    with app.app_context():
        token = create_access_token(identity=str(user_of(app, account_id)), expires_delta=timedelta(seconds=3))
    stream = reader(f"{live_server}/api/v1/stream/orders", {"Authorization": f"Bearer {token}"})
    eventually(lambda: stream.of("balance"))
    assert not stream.ended.is_set()
    assert stream.ended.wait(10), "the stream outlived its token"
