"""SIGKILL engine processes mid-batch: every accepted order still ends in one state, once."""

import threading
import time
from collections import Counter

import pytest

from app.balances.service import ledger_mismatches
from app.extensions import db
from app.models import LedgerEntry, Order
from tests.support.state import count_orders as count
from tests.support.trading import user_on_engine
from tests.support.waiting import eventually

pytestmark = pytest.mark.usefixtures("engine_worker")


def wait_until_executed(app, at_least: int) -> None:
    eventually(lambda: count(app, Order.status != "pending") >= at_least, timeout=30, interval=0.01)


@pytest.mark.parametrize("victims", ["every engine", "one of two engines"])
def test_engines_killed_mid_batch_lose_and_double_nothing(app, engine_worker, make_user, set_price, victims):
    users = [user_on_engine(make_user, app, index % 2) for index in range(4)]  # two on each engine
    killed = engine_worker.engines if victims == "every engine" else engine_worker.engines[:1]
    killed_accounts = [account_id for index, (account_id, _) in enumerate(users) if index % 2 == 0 or len(killed) == 2]
    set_price("BTC", 1_000_000_000, 1_000_100_000)
    accepted, unexpected = [], []
    done = threading.Event()

    def keep_price_fresh():
        while not done.wait(1):
            set_price("BTC", 1_000_000_000, 1_000_100_000)

    def trade(headers):
        for _ in range(10):
            response = app.test_client().post(
                "/api/v1/trade/create",
                json={"asset": "BTC", "type": "long", "margin": 60_000, "leverage": 2},
                headers=headers,
            )
            if response.status_code not in (200, 202, 400):
                unexpected.append(response.json)
            if response.status_code in (200, 202):
                accepted.append(response.json["orderId"])

    threading.Thread(target=keep_price_fresh, daemon=True).start()
    threads = [threading.Thread(target=trade, args=(headers,)) for _, headers in users for _ in range(2)]
    for thread in threads:
        thread.start()
    wait_until_executed(app, at_least=10)
    # kill at a moment when the victims have accepted orders waiting for them
    eventually(
        lambda: count(app, Order.status == "pending", Order.account_id.in_(killed_accounts)), timeout=30, interval=0.002
    )
    for engine in killed:
        engine.kill()
    time.sleep(0.5)
    for engine in killed:
        engine.start()
    for thread in threads:
        thread.join(120)
    assert unexpected == []

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pending = count(app, Order.status == "pending")
        if pending == 0:
            break
        time.sleep(0.5)
    done.set()
    assert pending == 0, "accepted orders left pending after the engine came back"

    with app.app_context():
        orders = db.session.execute(db.select(Order)).scalars().all()
        assert {str(o.id) for o in orders} >= set(accepted)
        entries = Counter(
            (entry.order_id, entry.kind) for entry in db.session.execute(db.select(LedgerEntry)).scalars()
        )
        for order in orders:
            assert order.status in ("open", "rejected")
            assert entries[(order.id, "open")] == (1 if order.status == "open" else 0)
        # 500000 each buys exactly 8 positions of 60000 (of its 20 orders)
        per_user = Counter(o.account_id for o in orders if o.status == "open")
        assert set(per_user.values()) == {8}
        assert ledger_mismatches() == []
