"""Signed order placement through Backpack paper mode's routes against the native netting route,
on one stack with the same clients and netting accounts: market orders of 0.001 BTC on the
perpetual, alternately bought and sold (positions stay small), each answered once executed."""

import threading
import time

from bench.common import ApiClient, Progress, percentiles, quiet_heap, run_clients

PERP = "BTC_USDC_PERP"


def prepare_catalog(app) -> None:
    """The simulator's catalog in the bench database (the perpetual's filters and margins)."""
    from app.markets.service import store_catalog
    from poller.simulated_markets import LISTINGS, assets_json, market_json

    with app.app_context():
        store_catalog([market_json(listing) for listing in LISTINGS], assets_json())


def keep_perpetual_fresh(app, stop_event: threading.Event) -> None:
    from decimal import Decimal

    from app.extensions import redis_client
    from core.marks import Mark, MarkStore
    from core.prices import PriceStore, Quote, now_micros

    with app.app_context():
        while not stop_event.is_set():
            now = now_micros()
            PriceStore(redis_client).write(Quote(PERP, 1_183_200, 1_183_210, now, now))
            redis_client.delete(f"mark:{PERP}")
            MarkStore(redis_client).write(Mark(PERP, Decimal("118320.5"), None, None, None, now))
            stop_event.wait(0.5)


def bots(base_url: str, users: list[dict]) -> list[dict]:
    """A netting account and a paper key for each user."""
    api, made = ApiClient(base_url), []
    for headers in users:
        _, account = api.post("/api/v1/accounts", headers, {"name": "bench bot", "mode": "netting"})
        _, key = api.post("/api/v1/api-keys", headers, {"accountId": account["id"], "label": "bench"})
        made.append({"headers": {**headers, "X-Account-Id": str(account["id"])}, "key": key})
    return made


def _signed(key: dict, body: dict) -> dict:
    from core import signing

    timestamp = int(time.time() * 1000)
    text = signing.signed_text("orderExecute", body, timestamp, 5000)
    return {
        "X-API-Key": key["publicKey"],
        "X-Signature": signing.sign(key["seed"], text),
        "X-Timestamp": str(timestamp),
        "X-Window": "5000",
    }


def bench_orders(base_url: str, accounts: list[dict], backpack: bool, orders: int) -> dict:
    """`orders` market orders over CLIENTS keep-alive clients, one account each."""
    quiet_heap()
    latencies: list[float] = []
    failures: list[str] = []
    progress = Progress("backpack orders (signed)" if backpack else "native netting orders", orders)

    def client(index: int, count: int) -> None:
        api, account = ApiClient(base_url), accounts[index % len(accounts)]
        for n in range(count):
            buying = n % 2 == 0
            if backpack:
                body = {"symbol": PERP, "side": "Bid" if buying else "Ask", "orderType": "Market", "quantity": "0.001"}
                path, headers = "/backpack/api/v1/order", _signed(account["key"], body)
            else:
                body = {"symbol": PERP, "side": "buy" if buying else "sell", "orderType": "market", "quantity": 100}
                path, headers = "/api/v1/orders", account["headers"]
            began = time.perf_counter()
            status, answer = api.post(path, headers, body)
            latencies.append(time.perf_counter() - began)
            if status != 200 or answer.get("status") not in ("filled", "Filled"):
                failures.append(f"{status} {str(answer)[:100]}")
            progress.tick()

    elapsed = run_clients(client, orders)
    return {
        "orders": len(latencies) - len(failures),
        "failures": len(failures),
        "failure_examples": failures[:3],
        "orders_per_s": round((len(latencies) - len(failures)) / elapsed, 1),
        **percentiles(latencies),
    }
