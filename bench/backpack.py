"""Signed order placement through Backpack paper mode's routes against the native netting route,
on one stack with the same clients and netting accounts: market orders of 0.001 BTC on the
perpetual, alternately bought and sold (positions stay small), each answered once executed."""

import json
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


def bench_orders(base_url: str, accounts: list[dict], backpack: bool, orders: int, label: str = "") -> dict:
    """`orders` market orders over CLIENTS keep-alive clients, one account each."""
    quiet_heap()
    latencies: list[float] = []
    failures: list[str] = []
    progress = Progress(label or ("backpack orders (signed)" if backpack else "native netting orders"), orders)

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


def _socket(base_url: str):
    import websocket  # websocket-client

    return websocket.create_connection(base_url.replace("http://", "ws://") + "/backpack/ws", timeout=30)


def _subscribe_private(socket, key: dict) -> None:
    from core import signing

    timestamp = int(time.time() * 1000)
    signature = signing.sign(key["seed"], signing.signed_text("subscribe", {}, timestamp, 5000))
    socket.send(
        json.dumps(
            {
                "method": "SUBSCRIBE",
                "params": ["account.orderUpdate"],
                "signature": [key["publicKey"], signature, str(timestamp), "5000"],
                "id": 1,
            }
        )
    )
    assert json.loads(socket.recv()).get("result", "refused") is None


def bench_private_streams(base_url: str, accounts: list[dict], orders: int) -> dict:
    """One signed `account.orderUpdate` socket per account; `orders` market orders spread over the
    accounts: for each fill frame, its arrival at the subscriber less the engine's time of the
    fill (the frame's `T`, the same clock), i.e. the commit to the subscriber."""
    quiet_heap()
    sockets = []
    for account in accounts:
        socket = _socket(base_url)
        _subscribe_private(socket, account["key"])
        sockets.append(socket)
    latencies_ms: list[float] = []
    lock = threading.Lock()
    expected = threading.Semaphore(0)

    def listen(socket) -> None:
        while True:
            try:
                frame = json.loads(socket.recv())
            except Exception:  # closed at the end
                return
            data = frame.get("data", {})
            if data.get("e") == "orderFill":
                arrived_us = time.time() * 1_000_000
                with lock:
                    latencies_ms.append((arrived_us - data["T"]) / 1000)
                expected.release()

    readers = [threading.Thread(target=listen, args=(s,), daemon=True) for s in sockets]
    for reader in readers:
        reader.start()
    placed = bench_orders(base_url, accounts, backpack=True, orders=orders, label="orders with 200 private sockets")
    deadline = time.monotonic() + 30
    received = 0
    while received < placed["orders"] and expected.acquire(timeout=max(0.0, deadline - time.monotonic())):
        received += 1
    for socket in sockets:
        socket.close()
    return {
        "subscribers": len(sockets),
        "orders": placed["orders"],
        "fill_frames": len(latencies_ms),
        "orders_per_s": placed["orders_per_s"],
        **{
            f"frame_{k}": v
            for k, v in (percentiles([ms / 1000 for ms in latencies_ms]) if latencies_ms else {}).items()
        },
    }


def web_rss_mb(port: int) -> float:
    """Resident MB of the gunicorn processes serving `port` (the master and its workers)."""
    from pathlib import Path

    total_kb = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            command = (status.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "gunicorn" not in command or (f":{port}" not in command and "wsgi:app" not in command):
                continue
            text = status.read_text()
        except OSError:
            continue
        total_kb += int(next(line for line in text.splitlines() if line.startswith("VmRSS:")).split()[1])
    return round(total_kb / 1024, 1)


def bench_many_sockets(base_url: str, port: int, accounts: list[dict], sockets: int, orders: int) -> dict:
    """`sockets` public sockets (each on the perpetual's bookTicker and markPrice), read by one
    thread, while the native netting orders run again: their rate, and the web's resident memory."""
    import selectors

    quiet_heap()
    opened = []
    for _ in range(sockets):
        socket = _socket(base_url)
        socket.send(json.dumps({"method": "SUBSCRIBE", "params": [f"bookTicker.{PERP}", f"markPrice.{PERP}"], "id": 1}))
        opened.append(socket)
    selector = selectors.DefaultSelector()
    for socket in opened:
        selector.register(socket.sock, selectors.EVENT_READ, socket)
    frames = [0]
    stop_event = threading.Event()

    def read() -> None:
        """Drain the sockets raw, counting frames by their envelope: parsing 5,000 frames a second
        with websocket-client would make the load generator the thing that slows the stack."""
        while not stop_event.is_set():
            for selected, _ in selector.select(timeout=0.2):
                try:
                    frames[0] += selected.fileobj.recv(1 << 16).count(b'{"stream":')
                except OSError:
                    selector.unregister(selected.fileobj)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    began = time.perf_counter()
    placed = bench_orders(base_url, accounts, backpack=False, orders=orders, label=f"orders with {sockets} sockets")
    elapsed = time.perf_counter() - began
    rss = web_rss_mb(port)
    stop_event.set()
    reader.join()
    for socket in opened:
        socket.close()
    return {
        "sockets": sockets,
        "orders_per_s": placed["orders_per_s"],
        "failures": placed["failures"],
        "frames_per_s": round(frames[0] / elapsed, 1),
        "web_rss_mb": rss,
    }
