"""`make bench`: trade throughput and latency through the real HTTP API, alone and again with 500
Server-Sent-Events clients connected, next to the Celery round-trip limit on the same broker and
worker settings, and the poller's Redis write rate next to plain redis-py. Prints a table and
writes bench/results/<time>.json.
"""

import asyncio
import gc
import http.client
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from urllib.parse import urlsplit

import redis
from sqlalchemy import select

from devstack import free_port, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "300"))  # open + close per round trip
NOOPS = int(os.environ.get("BENCH_NOOPS", "600"))
# The trades and the no-op reference alternate, each run this many times: this machine's speed
# drifts by a quarter over minutes, and one phase after the other compared two different machines.
EFFICIENCY_ROUNDS = int(os.environ.get("BENCH_EFFICIENCY_ROUNDS", "3"))
POLLER_FRAMES = int(os.environ.get("BENCH_POLLER_FRAMES", "20000"))
TRADE = {"asset": "BTC", "type": "long", "margin": 1_000, "leverage": 5}  # what every bench order opens
STREAM_CLIENTS = int(os.environ.get("BENCH_STREAM_CLIENTS", "500"))
SNAPSHOT_ACCOUNTS = int(os.environ.get("BENCH_SNAPSHOT_ACCOUNTS", "100000"))
DRAIN_ORDERS = int(os.environ.get("BENCH_DRAIN_ORDERS", "5000"))
OPEN_LOOP_S = float(os.environ.get("BENCH_OPEN_LOOP_S", "30"))
OPEN_LOOP_WARMUP_S = 3
SNAPSHOT_POSITIONS = int(
    os.environ.get("BENCH_SNAPSHOT_POSITIONS", "20000")
)  # half price streams, half account streams


class Progress:
    def __init__(self, label: str, total: int):
        self.label, self.total, self.done = label, total, 0
        self.lock = threading.Lock()

    def tick(self, n: int = 1) -> None:
        with self.lock:
            was_done, before = self.done, int(30 * self.done / self.total)
            self.done += n
            filled = int(30 * self.done / self.total)
            finishing = was_done < self.total <= self.done
            if was_done >= self.total or (filled == before and not finishing):
                return
            sys.stderr.write(f"\r{self.label:<22} [{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}")
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def quiet_heap() -> None:
    """Collect, then freeze, everything the bench holds so far (the app, fixtures, earlier
    phases' results): a full collection over it paused every client thread for tens of
    milliseconds, which a timed phase would count as the system's latency."""
    gc.collect()
    gc.freeze()


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {
        "p50_ms": round(pick(0.50), 2),
        "p95_ms": round(pick(0.95), 2),
        "p99_ms": round(pick(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


ROLES = (("gunicorn", "web"), ("workers.run_engine", "engine"), ("-Q engine.", "engine"))
ROLES += (("postgres", "postgres"), ("redis-server", "redis"))


def cpu_seconds_by_process() -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by each of this machine's processes that has a role: web, engine,
    postgres, redis, and the bench itself (its clients)."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(stat.parent.name)
        role = "bench clients" if pid == os.getpid() else next((n for marker, n in ROLES if marker in command), None)
        if role:
            used[pid] = (role, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    return used


class CpuProfile:
    """Cores each role kept busy during a phase (CPU seconds / wall seconds): what bounds it.
    Processes are compared with themselves: one that ended during the phase (a database
    connection closed) drops out rather than taking its whole past off its role."""

    def __enter__(self) -> "CpuProfile":
        self.before, self.began = cpu_seconds_by_process(), time.perf_counter()
        return self

    def __exit__(self, *_) -> None:
        after, wall = cpu_seconds_by_process(), time.perf_counter() - self.began
        used: Counter = Counter()
        for pid, (role, seconds) in after.items():
            used[role] += seconds - self.before.get(pid, (role, 0.0))[1]
        self.cores = {role: round(used[role] / wall, 2) for role in sorted(used)}
        self.cores["total"] = round(sum(self.cores.values()), 2)


class DiskStalls:
    """Stretches of a phase during which tasks waited on the disk for most of the time (Linux
    pressure stall information, /proc/pressure/io "some", read every 10 ms): on this VM a single
    WAL flush is sometimes held by the virtual disk for hundreds of milliseconds, and every
    commit queues behind it. `stalls` lists those over REPORTED_OVER_S as (start, seconds) by
    perf_counter; None where the kernel reports no pressure."""

    SAMPLE_S, BUSY, REPORTED_OVER_S = 0.01, 0.5, 0.05
    PRESSURE = Path("/proc/pressure/io")

    def __enter__(self) -> "DiskStalls":
        self.stalls: list[tuple[float, float]] | None = [] if self.PRESSURE.exists() else None
        self.done = threading.Event()
        self.watcher = threading.Thread(target=self._watch, daemon=True)
        self.watcher.start()
        return self

    def _waited_s(self) -> float:
        some = self.PRESSURE.read_text().splitlines()[0]
        return int(some.rsplit("total=", 1)[1]) / 1e6

    def _watch(self) -> None:
        if self.stalls is None:
            return
        seen, waited, since = time.perf_counter(), self._waited_s(), None
        while not self.done.wait(self.SAMPLE_S):
            now, now_waited = time.perf_counter(), self._waited_s()
            busy = now_waited - waited >= self.BUSY * (now - seen)
            if busy and since is None:
                since = seen
            elif not busy and since is not None:
                if seen - since > self.REPORTED_OVER_S:
                    self.stalls.append((since, seen - since))
                since = None
            seen, waited = now, now_waited

    def __exit__(self, *_) -> None:
        self.done.set()
        self.watcher.join()


def start(command: list[str], env: dict, log_name: str) -> subprocess.Popen:
    log = open(ROOT / ".data" / f"bench-{log_name}.log", "ab")
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def start_engines(env: dict, log_name: str, processes: int = 1) -> list[subprocess.Popen]:
    """The Procfile's engine (`workers.run_engine`: concurrency 1, prefetch 1) as `processes`
    processes sharing the shards, with the bench's no-op task loaded; returns once all answer."""
    from celery import Celery

    from config import Config

    names = [f"{log_name}-{index}@bench" for index in range(processes)]
    engines = []
    for index, name in enumerate(names):
        command = [sys.executable, "-m", "workers.run_engine", "-n", name, "-I", "bench.tasks"]
        command += ["--without-gossip", "--without-mingle", "--loglevel", "WARNING"]
        engine_env = {**env, "ENGINE_INDEX": str(index), "ENGINE_PROCESSES": str(processes)}
        engines.append(start(command, engine_env, f"{log_name}-{index}"))
    pinger = Celery("bench-ping")
    pinger.config_from_object(Config.from_env(env).CELERY)
    while len(pinger.control.ping(destination=names, timeout=0.5)) < processes:
        time.sleep(0.2)
    return engines


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def run_clients(client, total: int) -> float:
    """Split `total` operations over CLIENTS threads running `client(index, count)`; wall seconds."""
    counts = [total // CLIENTS + (1 if i < total % CLIENTS else 0) for i in range(CLIENTS)]
    threads = [threading.Thread(target=client, args=(i, counts[i])) for i in range(CLIENTS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def keep_prices_fresh(app, stop_event: threading.Event) -> None:
    from app.extensions import redis_client
    from core.prices import PriceStore, Quote, now_micros

    with app.app_context():
        store = PriceStore(redis_client)
        while not stop_event.is_set():
            now = now_micros()
            store.write(Quote("BTC", 1_000_000_000, 1_000_100_000, now, now))
            stop_event.wait(0.5)


class ApiClient:
    """One keep-alive HTTP/1.1 connection of a bench client: what a trade costs the bench's own
    process is a share of the two cores the system under test runs on (`requests` cost about three
    times as much CPU per call)."""

    def __init__(self, base_url: str):
        url = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)

    def post(self, path: str, headers: dict, body: dict) -> tuple[int, dict]:
        """Status and JSON answer; an idle connection the server closed meanwhile is reopened once
        (the request never reached it), as `requests` would."""
        try:
            return self._post(path, headers, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.connection.close()
            return self._post(path, headers, body)

    def _post(self, path: str, headers: dict, body: dict) -> tuple[int, dict]:
        self.connection.request("POST", path, json.dumps(body), {**headers, "Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


def make_users(app, count: int) -> list[dict]:
    from flask_jwt_extended import create_access_token

    from app.auth.service import create_user
    from app.extensions import db

    headers = []
    with app.app_context():
        for _ in range(count):
            user = create_user(f"bench-{uuid.uuid4().hex[:12]}@example.com")
            db.session.commit()
            headers.append({"Authorization": f"Bearer {create_access_token(identity=str(user.id))}"})
    return headers


def bench_trades(
    base_url: str, users: list[dict], label: str = "trades (open+close)", round_trips: int = ROUND_TRIPS
) -> dict:
    quiet_heap()
    latencies: list[float] = []
    failures: list[str] = []
    progress = Progress(label, round_trips)

    def client(index: int, count: int) -> None:
        api, headers = ApiClient(base_url), users[index % len(users)]
        for _ in range(count):
            began = time.perf_counter()
            status, opened = api.post("/api/v1/trade/create", headers, TRADE)
            latencies.append(time.perf_counter() - began)
            if status != 200:
                failures.append(f"open {status} {str(opened)[:100]}")
                progress.tick()
                continue
            began = time.perf_counter()
            status, closed = api.post("/api/v1/trade/close", headers, {"orderId": opened["orderId"]})
            latencies.append(time.perf_counter() - began)
            if status != 200:
                failures.append(f"close {status} {str(closed)[:100]}")
            progress.tick()

    elapsed = run_clients(client, round_trips)
    return {
        "executed_orders": len(latencies) - len(failures),
        "failures": len(failures),
        "failure_examples": failures[:3],
        "seconds": round(elapsed, 3),
        "orders_per_s": round((len(latencies) - len(failures)) / elapsed, 1),
        **percentiles(latencies),
        "latencies": latencies,
    }


class StreamCrowd:
    """Hundreds of SSE clients on one asyncio loop (in a thread): raw HTTP/1.1 connections that
    read events until closed, counting the clients that got their first event and all events."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.connected = 0
        self.events = 0
        self.failed: list[str] = []
        self.loop = asyncio.new_event_loop()
        self.tasks: list[asyncio.Task] = []
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    async def _client(self, path: str, headers: dict, progress: Progress) -> None:
        try:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}", "Accept: text/event-stream"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
            status = await reader.readline()
            if b" 200 " not in status:
                self.failed.append(status.decode(errors="replace").strip())
                progress.tick()
                return
            first = True
            while line := await reader.readline():
                if line.startswith(b"event:"):
                    self.events += 1
                    if first:
                        first = False
                        self.connected += 1
                        progress.tick()
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.failed.append(repr(exc))

    def connect(self, streams: list[tuple[str, dict]]) -> None:
        progress = Progress("SSE clients connecting", len(streams))

        async def start_all():
            for path, headers in streams:
                self.tasks.append(asyncio.ensure_future(self._client(path, headers, progress)))
                await asyncio.sleep(0.005)

        asyncio.run_coroutine_threadsafe(start_all(), self.loop).result()
        deadline = time.monotonic() + 60
        while self.connected + len(self.failed) < len(streams) and time.monotonic() < deadline:
            time.sleep(0.1)

    def close(self) -> None:
        for task in self.tasks:
            self.loop.call_soon_threadsafe(task.cancel)
        self.loop.call_soon_threadsafe(self.loop.stop)


def bench_streams(port: int, base_url: str, traders: list[dict], watchers: list[dict]) -> tuple[dict, dict]:
    """Connect STREAM_CLIENTS streams, then measure the trades again while they stay connected."""
    crowd = StreamCrowd("127.0.0.1", port)
    half = STREAM_CLIENTS // 2
    streams = [("/api/v1/stream/prices", {})] * (STREAM_CLIENTS - half)
    streams += [("/api/v1/stream/orders", watchers[i % len(watchers)]) for i in range(half)]
    crowd.connect(streams)
    before = crowd.events
    began = time.perf_counter()
    trades = bench_trades(base_url, traders, label="trades with streams", round_trips=2 * ROUND_TRIPS)
    del trades["latencies"]
    events_per_s = (crowd.events - before) / (time.perf_counter() - began)
    result = {
        "clients": STREAM_CLIENTS,
        "connected": crowd.connected,
        "failed": len(crowd.failed),
        "failure_examples": crowd.failed[:3],
        "events_per_s": round(events_per_s, 1),
    }
    crowd.close()
    return result, trades


def run_fixture(script: str, params: dict) -> None:
    """Empty the bench's tables, then run `script` (statements ending in `;` + newline), committed."""
    from sqlalchemy import text

    from app.extensions import db
    from app.models import empty_every_table

    empty_every_table()
    for statement in filter(None, script.strip().split(";\n")):
        db.session.execute(text(statement), params)
    db.session.commit()


SNAPSHOT_FIXTURE = """
INSERT INTO users (id, email, created_at)
  SELECT g, 'snap-' || g || '@bench', now() FROM generate_series(1, :accounts) g;
SELECT setval('users_id_seq', :accounts);
INSERT INTO balances (user_id, usd, locked_margin) SELECT g, 490000, CASE WHEN g <= :positions THEN 10000 ELSE 0 END
  FROM generate_series(1, :accounts) g;
INSERT INTO ledger_entries (user_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() - interval '1 day' FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, user_id, asset, side, order_type, status, margin, leverage, slippage_bps, quantity, open_price,
                    liquidation_price, created_at, opened_at, open_fee, close_fee)
  SELECT gen_random_uuid(), g, (ARRAY['BTC', 'ETH', 'SOL'])[g % 3 + 1], (ARRAY['long', 'short'])[g % 2 + 1], 'market',
         'open', 10000, 10, 100,
         (ARRAY[999900, 33333333, 56179775])[g % 3 + 1], (ARRAY[1000100000, 3000000000, 178000000])[g % 3 + 1],
         CASE WHEN g % 2 = 0 THEN 1 ELSE 2000000000000 END, now(), now(), 0, 0
  FROM generate_series(1, :positions) g;
"""


def bench_snapshots(app, accounts: int, positions: int) -> dict:
    """One equity snapshot round over `accounts` accounts with `positions` open positions, a tenth of
    the accounts active since the previous round (the round before is not timed)."""
    from sqlalchemy import text

    from app.account.service import snapshot_round
    from app.extensions import db, redis_client
    from core.prices import PriceStore, Quote, now_micros

    progress = Progress(f"snapshots {accounts // 1000}k", 3)
    with app.app_context():
        run_fixture(SNAPSHOT_FIXTURE, {"accounts": accounts, "positions": positions})
        db.session.execute(text("ANALYZE"))
        progress.tick()
        store = PriceStore(redis_client)
        for asset, bid, ask in (
            ("BTC", 1_000_000_000, 1_000_100_000),
            ("ETH", 3_000_000_000, 3_000_500_000),
            ("SOL", 178_000_000, 178_010_000),
        ):
            store.write(Quote(asset, bid, ask, now_micros(), now_micros()))
        snapshot_round()
        progress.tick()
        db.session.execute(
            text(
                "INSERT INTO ledger_entries (user_id, kind, usd_delta, locked_delta, created_at) "
                "SELECT g, 'deposit', 0, 0, now() FROM generate_series(1, :accounts, 10) g"
            ),
            {"accounts": accounts},
        )
        db.session.commit()
        began = time.perf_counter()
        taken = snapshot_round()
        seconds = time.perf_counter() - began
        progress.tick()
    return {"accounts": accounts, "open_positions": positions, "snapshots": taken, "seconds": round(seconds, 3)}


CASCADE_FIXTURE = """
INSERT INTO users (id, email, created_at)
  SELECT g, 'cascade-' || g || '@bench', now() FROM generate_series(1, :accounts) g;
SELECT setval('users_id_seq', :accounts);
INSERT INTO balances (user_id, usd, locked_margin) SELECT g, 500000 - 1000 * :per, 1000 * :per
  FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, user_id, asset, side, order_type, status, margin, leverage, slippage_bps, quantity, open_price,
                    liquidation_price, stop_loss, take_profit, created_at, opened_at, open_fee, close_fee)
  SELECT gen_random_uuid(), (g - 1) / :per + 1, 'BTC', 'long', 'market', 'open', 1000, 100, 100, 100000, 1000100000,
         CASE WHEN g % 3 = 0 THEN 991000000 ELSE 1 END, CASE WHEN g % 3 = 1 THEN 995000000 END,
         CASE WHEN g % 3 = 2 THEN 980000000 END, now(), now(), 0, 0
  FROM generate_series(1, :accounts * :per) g;
INSERT INTO ledger_entries (user_id, order_id, kind, usd_delta, locked_delta, created_at)
  SELECT user_id, id, 'open', -1000, 1000, now() FROM orders;
INSERT INTO ledger_entries (user_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() FROM generate_series(1, :accounts) g
"""


def bench_cascade(app, env: dict, batch: int, accounts: int = 1000, per_account: int = 10) -> dict:
    """One tick crosses `accounts` x `per_account` positions (a mix of liquidation, stop-loss and
    take-profit); seconds from the tick until the engine (cascade batches of `batch`) closed all."""
    from sqlalchemy import text

    from app.balances.service import ledger_mismatches
    from app.extensions import db, redis_client
    from core.prices import PriceStore, Quote, now_micros
    from core.tasks import request_trigger_check

    total = accounts * per_account
    with app.app_context():
        run_fixture(CASCADE_FIXTURE, {"accounts": accounts, "per": per_account})
        db.session.execute(text("ANALYZE orders"))
    (engine,) = start_engines({**env, "ENGINE_CASCADE_BATCH": str(batch)}, f"engine-cascade-{batch}")
    progress = Progress(f"cascade, batches of {batch}", total)
    try:
        with app.app_context():
            now = now_micros()
            # a take-profit at 98000.0000 is crossed by a bid above it; the others by one below theirs
            PriceStore(redis_client).write(Quote("BTC", 985_000_000, 985_100_000, now, now))
            began = time.perf_counter()
            shards = range(app.config["ENGINE_SHARDS"])  # the fixture's rows have no trigger levels: every shard
            request_trigger_check(redis_client, app.extensions["celery"], "BTC", shards)
            closed = 0
            while closed < total:
                if time.perf_counter() - began > 300:
                    raise RuntimeError(f"cascade stalled: {closed} of {total} closed after 300 s")
                time.sleep(0.1)
                done = db.session.execute(text("SELECT count(*) FROM orders WHERE status = 'closed'")).scalar_one()
                db.session.rollback()
                progress.tick(done - closed)
                closed = done
            seconds = time.perf_counter() - began
            balanced = ledger_mismatches() == []
    finally:
        stop(engine)
    return {
        "positions": total,
        "accounts": accounts,
        "batch": batch,
        "seconds": round(seconds, 2),
        "closes_per_s": round(total / seconds, 1),
        "ledger_balanced": balanced,
    }


DRAIN_FIXTURE = """
INSERT INTO users (id, email, created_at)
  SELECT g, 'drain-' || g || '@bench', now() FROM generate_series(1, :accounts) g;
SELECT setval('users_id_seq', :accounts);
INSERT INTO balances (user_id, usd, locked_margin) SELECT g, 500000, 0 FROM generate_series(1, :accounts) g;
INSERT INTO ledger_entries (user_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, user_id, asset, side, order_type, status, margin, leverage, slippage_bps, created_at,
                    open_fee, close_fee)
  SELECT gen_random_uuid(), (g - 1) % :accounts + 1, 'BTC', 'long', 'market', 'pending', 1000, 5, 100, now(), 0, 0
  FROM generate_series(1, :orders) g
"""


def bench_drain(app, env: dict, processes: int, orders: int = DRAIN_ORDERS, accounts: int = 1000) -> dict:
    """`orders` accepted orders landing at once (as after an engine outage) in front of `processes`
    engine processes that share the shards and are all up: one wake-up per shard, as the API sends
    them, then orders/s from the first order executed until every order is executed and every
    task consumed. The engines start first: a backlog queued before them would be half drained by
    the first process up before the second one answered."""
    from sqlalchemy import text

    from app.balances.service import ledger_mismatches
    from app.extensions import db, redis_client
    from core.shards import shard_of, shard_queues
    from core.tasks import WAKE_UP
    from core.wakeups import claim_wake_up, clear_wake_up

    queues = shard_queues(range(app.config["ENGINE_SHARDS"]))

    def tasks_left() -> int:  # queued, or delivered and not yet acknowledged (kombu's `unacked` hash)
        with redis_client.pipeline() as pipe:
            for queue in queues:
                pipe.llen(queue)
            pipe.hlen("unacked")
            return sum(pipe.execute())

    progress = Progress(f"drain, {processes} engine{'s' if processes > 1 else ''}", orders)
    engines = start_engines({**env, "ORDER_MAX_DELAY_S": "600"}, f"engine-drain-{processes}", processes)
    try:
        with app.app_context():
            run_fixture(DRAIN_FIXTURE, {"accounts": accounts, "orders": orders})
            celery, shards = app.extensions["celery"], app.config["ENGINE_SHARDS"]
            for shard in range(shards):  # none left over from an earlier phase
                clear_wake_up(redis_client, shard)
            first_of_shard = {}
            for (account_id,) in db.session.execute(text("SELECT user_id FROM orders ORDER BY created_at")):
                first_of_shard.setdefault(shard_of(account_id, shards), account_id)
            db.session.rollback()
            with CpuProfile() as profile:
                for shard, account_id in first_of_shard.items():
                    if claim_wake_up(redis_client, shard):
                        celery.send_task(WAKE_UP, kwargs={"account_id": account_id})
                done = 0
                while done < orders or tasks_left():
                    time.sleep(0.01)
                    executed = db.session.execute(
                        text("SELECT count(*) FROM orders WHERE status <> 'pending'")
                    ).scalar()
                    db.session.rollback()
                    progress.tick(executed - done)
                    done = executed
            drained_at = time.time()
            first, opened = db.session.execute(
                text("SELECT extract(epoch FROM min(opened_at)), count(*) FROM orders WHERE status = 'open'")
            ).one()
            balanced = ledger_mismatches() == []
    finally:
        for engine in engines:
            stop(engine)
    seconds = drained_at - float(first)
    return {
        "engines": processes,
        "orders": orders,
        "opened": opened,
        "seconds": round(seconds, 3),
        "orders_per_s": round(orders / seconds, 1),
        "ledger_balanced": balanced,
        "cores": profile.cores,
    }


def bench_noop_drain(app, env: dict, tasks: int = DRAIN_ORDERS) -> dict:
    """The drain's framework limit: `tasks` no-op tasks queued over the shard queues, then one
    engine process consumes them; tasks/s from the first answer to the last."""
    from app.extensions import redis_client
    from bench.tasks import NOOP_CHANNEL, noop
    from core.shards import shard_queue

    progress = Progress("drain of no-op tasks", tasks)
    listener = redis_client.pubsub(ignore_subscribe_messages=True)
    listener.psubscribe(NOOP_CHANNEL.format(token="*"))
    shards = app.config["ENGINE_SHARDS"]
    with app.app_context():
        for index in range(tasks):
            noop.apply_async((str(index),), queue=shard_queue(index % shards))
    engines = start_engines(env, "engine-noop-drain")
    try:
        first = last = None
        for _ in range(tasks):
            while listener.get_message(timeout=30) is None:
                pass
            last = time.perf_counter()
            first = first or last
            progress.tick()
    finally:
        listener.close()
        for engine in engines:
            stop(engine)
    return {"tasks": tasks, "seconds": round(last - first, 3), "tasks_per_s": round((tasks - 1) / (last - first), 1)}


def bench_open_loop(app, base_url: str, users: list[dict], rate: float, seconds: float = OPEN_LOOP_S) -> dict:
    """Orders arriving at a fixed rate, whatever the answers do (an open loop: a slow answer does not
    hold the next arrival back), each timed from its scheduled arrival to its executed answer. The
    first OPEN_LOOP_WARMUP_S at that rate are not counted (new connections, cold caches). Each
    order's time is also split at its two timestamps (`order_stages`)."""
    quiet_heap()
    warmup = int(rate * OPEN_LOOP_WARMUP_S)
    total = int(rate * seconds)
    latencies: list[float] = []
    failures: list[str] = []
    moments: dict[str, tuple[float, float, float]] = {}  # order id -> scheduled, sent, answered
    progress = Progress(f"open loop at {rate:.0f}/s", total)
    local = threading.local()

    def arrive(index: int, scheduled: float) -> None:
        if not hasattr(local, "api"):
            local.api = ApiClient(base_url)
        sent = time.perf_counter()
        try:
            status, answer = local.api.post("/api/v1/trade/create", users[index % len(users)], TRADE)
        except (OSError, http.client.HTTPException, ValueError) as error:  # counted, never lost in the pool
            status, answer = 0, {"error": repr(error)}
        if index < warmup:
            return
        answered = time.perf_counter()
        latencies.append(answered - scheduled)
        if status != 200:
            failures.append(f"{status} {str(answer)[:100]}")
        else:
            moments[answer["orderId"]] = (scheduled, sent, answered)
        progress.tick()

    with ThreadPoolExecutor(max_workers=64) as pool, CpuProfile() as profile, DiskStalls() as disk:
        began = time.perf_counter()
        began_at = time.time()
        for index in range(warmup + total):
            scheduled = began + index / rate
            time.sleep(max(0.0, scheduled - time.perf_counter()))
            pool.submit(arrive, index, scheduled)
    counted_from = began + warmup / rate  # the first counted arrival, by perf_counter
    return {
        "rate_per_s": round(rate, 1),
        "seconds": seconds,
        "began_at": datetime.fromtimestamp(began_at + warmup / rate, UTC).isoformat(timespec="milliseconds"),
        "orders": len(latencies),
        "failures": len(failures),
        "failure_examples": failures[:3],
        **percentiles(latencies),
        "max_ms": round(max(latencies) * 1000, 2),
        "cores": profile.cores,
        **order_stages(app, moments, counted_from),
        "disk_stalls": None
        if disk.stalls is None
        else [{"at_s": round(since - counted_from, 3), "ms": round(seconds * 1000)} for since, seconds in disk.stalls],
        "latencies_ms": [round(latency * 1000, 3) for latency in latencies],
    }


OPEN_LOOP_STAGES = ("client", "web", "engine", "answer")


def order_stages(app, moments: dict[str, tuple[float, float, float]], counted_from: float) -> dict:
    """Where each open-loop order spent its time, cut at the order's two timestamps (this machine's
    one clock): `client` from its scheduled arrival until a bench thread sent it; `web` until
    the web process built its INSERT (created_at: HTTP, token, validation, quote); `engine` until
    the engine filled it (opened_at: the INSERT's commit, the wake-up, the batch); `answer` until
    its answer arrived (the batch's commit, the event, the reply). The slowest orders are listed
    with their second in the phase, to set beside the servers' logs."""
    from app.extensions import db
    from app.models import Order

    with app.app_context():
        rows = db.session.execute(
            select(Order.id, Order.created_at, Order.opened_at).where(Order.id.in_(list(moments)))
        ).all()
    offset = time.time() - time.perf_counter()
    split = {}
    for order_id, created_at, opened_at in rows:
        if opened_at is None:
            continue
        scheduled, sent, answered = moments[str(order_id)]
        cuts = (scheduled + offset, sent + offset, created_at.timestamp(), opened_at.timestamp(), answered + offset)
        split[str(order_id)] = [b - a for a, b in pairwise(cuts)]
    stages = {stage: percentiles([times[i] for times in split.values()]) for i, stage in enumerate(OPEN_LOOP_STAGES)}
    slowest = sorted(split, key=lambda order_id: sum(split[order_id]), reverse=True)[: max(1, len(split) // 100)]
    return {
        "stages": stages,
        "slowest": [
            {
                "at_s": round(moments[order_id][0] - counted_from, 3),
                "total_ms": round(sum(split[order_id]) * 1000, 1),
                **{stage: round(split[order_id][i] * 1000, 1) for i, stage in enumerate(OPEN_LOOP_STAGES)},
            }
            for order_id in sorted(slowest, key=lambda order_id: moments[order_id][0])
        ],
    }


def latency_histogram(open_loop: dict, path: Path) -> None:
    """A histogram of the open loop's latencies with its percentiles marked, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latencies = open_loop["latencies_ms"]
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=100)
    axes.hist(latencies, bins=80, color="#4a7bd0")
    for key, color in (("p50_ms", "#2a9d5b"), ("p95_ms", "#d08a2a"), ("p99_ms", "#c0392b")):
        axes.axvline(open_loop[key], color=color, linestyle="--", label=f"{key[:3]} {open_loop[key]:.1f} ms")
    axes.set_xlabel("request -> executed (ms)")
    axes.set_ylabel("orders")
    rate, seconds = open_loop["rate_per_s"], open_loop["seconds"]
    axes.set_title(f"Open loop: {rate} orders/s for {seconds:.0f} s ({len(latencies)} orders)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def bench_noop(redis_url: str, label: str = "celery no-op", round_trips: int = NOOPS) -> dict:
    quiet_heap()
    from bench.tasks import NOOP_CHANNEL, noop
    from core.shards import shard_queue

    latencies: list[float] = []
    progress = Progress(label, round_trips)

    def client(index: int, count: int) -> None:
        conn = redis.Redis.from_url(redis_url, decode_responses=True)
        for _ in range(count):
            token = uuid.uuid4().hex
            pubsub = conn.pubsub(ignore_subscribe_messages=True)
            began = time.perf_counter()
            pubsub.subscribe(NOOP_CHANNEL.format(token=token))
            noop.apply_async((token,), queue=shard_queue(0))
            while pubsub.get_message(timeout=30) is None:
                pass
            latencies.append(time.perf_counter() - began)
            pubsub.close()
            progress.tick()

    elapsed = run_clients(client, round_trips)
    return {
        "round_trips": len(latencies),
        "seconds": round(elapsed, 3),
        "round_trips_per_s": round(len(latencies) / elapsed, 1),
        **percentiles(latencies),
        "latencies": latencies,
    }


def bench_efficiency(base_url: str, users: list[dict], redis_url: str) -> tuple[dict, dict, list[dict]]:
    """The trades and the no-op reference in EFFICIENCY_ROUNDS alternating rounds, each with its
    CPU profile; each phase's figures over all its rounds, and every round's own."""
    trade_runs, noop_runs = [], []
    for index in range(1, EFFICIENCY_ROUNDS + 1):
        with CpuProfile() as profile:
            trade_runs.append(bench_trades(base_url, users, f"trades {index}/{EFFICIENCY_ROUNDS}"))
        trade_runs[-1]["cores"] = profile.cores
        with CpuProfile() as profile:
            noop_runs.append(bench_noop(redis_url, f"celery no-op {index}/{EFFICIENCY_ROUNDS}"))
        noop_runs[-1]["cores"] = profile.cores
    rounds = [
        {
            "orders_per_s": trades["orders_per_s"],
            "noop_round_trips_per_s": noop["round_trips_per_s"],
            "efficiency": round(trades["orders_per_s"] / noop["round_trips_per_s"], 3),
        }
        for trades, noop in zip(trade_runs, noop_runs, strict=True)
    ]
    trades = combined(trade_runs, "executed_orders", "orders_per_s")
    trades["failures"] = sum(run["failures"] for run in trade_runs)
    trades["failure_examples"] = [example for run in trade_runs for example in run["failure_examples"]][:3]
    return trades, combined(noop_runs, "round_trips", "round_trips_per_s"), rounds


def combined(runs: list[dict], count: str, rate: str) -> dict:
    """Runs of one phase as one: their counts over their summed seconds, percentiles over every
    sample, and the cores each role kept busy weighted by each run's length."""
    seconds = sum(run["seconds"] for run in runs)
    roles = runs[0]["cores"].keys()
    return {
        count: sum(run[count] for run in runs),
        "seconds": round(seconds, 3),
        rate: round(sum(run[count] for run in runs) / seconds, 1),
        **percentiles([sample for run in runs for sample in run["latencies"]]),
        "cores": {role: round(sum(run["cores"][role] * run["seconds"] for run in runs) / seconds, 2) for role in roles},
    }


def bench_poller(redis_url: str) -> dict:
    """Frames/s a poller sustains from a socket into Redis vs. plain redis-py HSETs on the same server."""
    from poller.feed import Poller
    from poller.simulator import Simulator, frame

    simulator = Simulator(interval_s=3600).start()
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    poller = Poller(simulator.url, ["SOL_USDC", "BTC_USDC", "ETH_USDC"], conn, silence_s=60)
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    while poller.connections == 0 or not simulator.connections:
        time.sleep(0.01)
    markets = list(simulator.markets.values())
    frames = []
    for i in range(POLLER_FRAMES):
        market = markets[i % len(markets)]
        frames.append(frame(f"bookTicker.{market.symbol}", simulator.book_ticker(market)))
    progress = Progress("poller frames", POLLER_FRAMES)
    began = time.perf_counter()
    simulator.broadcast_raw(*frames)
    seen = 0
    while poller.frames < POLLER_FRAMES:
        time.sleep(0.05)
        progress.tick(poller.frames - seen)
        seen = poller.frames
    poller_elapsed = time.perf_counter() - began
    progress.tick(POLLER_FRAMES - seen)
    poller.stop()
    thread.join(5)
    simulator.stop()

    began = time.perf_counter()
    for i in range(POLLER_FRAMES):
        conn.hset(f"bench:price:{i % 3}", mapping={"bid": i, "ask": i + 1, "time": i, "u": i})
    raw_elapsed = time.perf_counter() - began
    conn.delete("bench:price:0", "bench:price:1", "bench:price:2")
    poller_rate = POLLER_FRAMES / poller_elapsed
    raw_rate = POLLER_FRAMES / raw_elapsed
    return {
        "frames": POLLER_FRAMES,
        "poller_frames_per_s": round(poller_rate, 1),
        "redis_py_hset_per_s": round(raw_rate, 1),
        "ratio": round(poller_rate / raw_rate, 3),
    }


def bench_depth(redis_url: str) -> dict:
    """Depth frames/s a poller applies to its books and writes to Redis (one round trip a frame)
    vs. plain redis-py SETs of the same book JSON on the same server."""
    from poller.feed import Poller
    from poller.simulator import Simulator, frame

    simulator = Simulator(interval_s=3600).start()  # no ticks of its own: only the frames below
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    markets = ["SOL_USDC", "BTC_USDC", "ETH_USDC"]
    poller = Poller(simulator.url, markets, conn, silence_s=60, rest_url=f"http://127.0.0.1:{simulator.port}")
    thread = threading.Thread(target=poller.run, daemon=True)
    thread.start()
    while poller.resyncs < len(markets) or not simulator.connections:
        time.sleep(0.01)
    time.sleep(1)  # the snapshots are fetched; every delta below follows on from them
    frames = []
    for i in range(POLLER_FRAMES):
        market = simulator.markets[markets[i % len(markets)]]
        frames.append(frame(f"depth.{market.symbol}", simulator.book_frames(market)[0]))
    progress = Progress("poller depth frames", POLLER_FRAMES)
    began = time.perf_counter()
    simulator.broadcast_raw(*frames)
    seen = 0
    while poller.depth_frames < POLLER_FRAMES or not poller.book_writer.idle():  # applied, and in Redis
        time.sleep(0.01)
        progress.tick(poller.depth_frames - seen)
        seen = poller.depth_frames
    elapsed = time.perf_counter() - began
    progress.tick(POLLER_FRAMES - seen)
    live = all(book.live for book in poller.books.values())
    writes = poller.book_writer.writes
    payload = next(iter(poller.books.values())).serialized()
    poller.stop()
    thread.join(5)
    simulator.stop()
    began = time.perf_counter()
    for i in range(POLLER_FRAMES):
        conn.set(f"bench:book:{i % 3}", payload)
    raw_elapsed = time.perf_counter() - began
    conn.delete("bench:book:0", "bench:book:1", "bench:book:2")
    rate, raw_rate = POLLER_FRAMES / elapsed, POLLER_FRAMES / raw_elapsed
    return {
        "frames": POLLER_FRAMES,
        "books_live": live,
        "redis_writes": writes,  # one round trip each, every waiting market's latest book at once
        "depth_frames_per_s": round(rate, 1),
        "redis_py_set_per_s": round(raw_rate, 1),
        "ratio": round(rate / raw_rate, 3),
    }


def main() -> int:
    env = os.environ.copy()
    env.update(APP_ENV=env.get("APP_ENV", "development"), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    os.environ.update(env)
    from flask_migrate import upgrade

    from app import create_app

    app = create_app()
    with app.app_context():
        upgrade()

        from app.extensions import redis_client

        run_fixture("", {})  # the bench's own database: every run starts empty
        for pattern in ("price:*", "book:*", "feed:*", "engine:*"):  # and its own Redis database
            for key in redis_client.scan_iter(pattern):
                redis_client.delete(key)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    web = start(  # the Procfile's web process: 2 gevent workers
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app", "--bind", f"127.0.0.1:{port}"],
        env,
        "web",
    )
    engines = start_engines(env, "engine")
    stop_prices, stop_drain_prices = threading.Event(), threading.Event()
    threading.Thread(target=keep_prices_fresh, args=(app, stop_prices), daemon=True).start()
    try:
        wait_for_http(f"{base_url}/api/v1/supportedAssets")
        users = make_users(app, max(CLIENTS, STREAM_CLIENTS // 2))
        bench_trades(base_url, users[:CLIENTS], "trades, warm-up", round_trips=4 * CLIENTS)  # not counted
        bench_noop(app.config["REDIS_URL"], "celery no-op, warm-up", round_trips=4 * CLIENTS)  # nor this
        trades, noop, efficiency_rounds = bench_efficiency(base_url, users[:CLIENTS], app.config["REDIS_URL"])
        open_loop = bench_open_loop(app, base_url, users[:CLIENTS], rate=trades["orders_per_s"] / 2)
        streams, trades_with_streams = bench_streams(port, base_url, users[:CLIENTS], users)
        poller = bench_poller(app.config["REDIS_URL"])
        depth = bench_depth(app.config["REDIS_URL"])
        stop_prices.set()  # the snapshot phase writes every asset's quote itself
        snapshots = [
            bench_snapshots(app, SNAPSHOT_ACCOUNTS // 10, SNAPSHOT_POSITIONS // 10),
            bench_snapshots(app, SNAPSHOT_ACCOUNTS, SNAPSHOT_POSITIONS),
        ]
        for engine in engines:  # the drains and cascades start engines of their own
            stop(engine)
        stop(web)
        threading.Thread(target=keep_prices_fresh, args=(app, stop_drain_prices), daemon=True).start()
        drains = [bench_drain(app, env, processes=1), bench_drain(app, env, processes=2)]
        noop_drain = bench_noop_drain(app, env)
        stop_drain_prices.set()
        cascades = [bench_cascade(app, env, batch=1), bench_cascade(app, env, batch=500)]
    finally:
        stop_prices.set()
        stop_drain_prices.set()
        stop(web)
        for engine in engines:
            stop(engine)
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clients": CLIENTS,
        "trades": trades,
        "streams": streams,
        "trades_with_streams": trades_with_streams,
        "celery_noop": noop,
        "engine_efficiency": round(trades["orders_per_s"] / noop["round_trips_per_s"], 3),
        "efficiency_rounds": efficiency_rounds,
        "open_loop": {key: value for key, value in open_loop.items() if key != "latencies_ms"},
        "drain": drains,
        "drain_speedup": round(drains[1]["orders_per_s"] / drains[0]["orders_per_s"], 2),
        "noop_drain": noop_drain,
        "engine_efficiency_drain": round(drains[0]["orders_per_s"] / noop_drain["tasks_per_s"], 3),
        "poller": poller,
        "depth": depth,
        "equity_snapshots": snapshots,
        "cascade": cascades,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{results['when'].replace(':', '')}.json"
    out.write_text(json.dumps(results, indent=2))
    histogram = out.with_name(f"{out.stem}-latency.png")
    latency_histogram(open_loop, histogram)
    print(f"\n{'measure':<54}{'value':>14}")
    rows = [
        ("trade orders/s (HTTP -> engine -> HTTP)", trades["orders_per_s"]),
        ("  latency p50 / p95 / p99 ms", f"{trades['p50_ms']} / {trades['p95_ms']} / {trades['p99_ms']}"),
        ("  failed requests", trades["failures"]),
        (f"SSE clients connected (of {streams['clients']})", streams["connected"]),
        ("  events delivered/s while trading", streams["events_per_s"]),
        ("trade orders/s with the streams open", trades_with_streams["orders_per_s"]),
        (
            "  latency p50 / p95 / p99 ms",
            f"{trades_with_streams['p50_ms']} / {trades_with_streams['p95_ms']} / {trades_with_streams['p99_ms']}",
        ),
        ("  failed requests", trades_with_streams["failures"]),
        ("celery no-op round trips/s", noop["round_trips_per_s"]),
        ("  latency p50 / p95 / p99 ms", f"{noop['p50_ms']} / {noop['p95_ms']} / {noop['p99_ms']}"),
        ("engine efficiency (trades / no-op)", results["engine_efficiency"]),
        ("  round by round", " / ".join(str(r["efficiency"]) for r in results["efficiency_rounds"])),
        ("  cores busy in trades: " + cores_line(trades["cores"]), ""),
        (f"open loop {open_loop['rate_per_s']}/s for {open_loop['seconds']:.0f} s: orders", open_loop["orders"]),
        (
            "  latency p50 / p95 / p99 / max ms",
            f"{open_loop['p50_ms']} / {open_loop['p95_ms']} / {open_loop['p99_ms']} / {open_loop['max_ms']}",
        ),
        ("  failed requests", open_loop["failures"]),
        ("  p50 / p99 ms by stage: " + stages_line(open_loop["stages"]), ""),
        ("  disk stalls over 50 ms (second in the phase: ms)", stalls_line(open_loop["disk_stalls"])),
        *[
            (f"drain of {d['orders']} queued orders, {d['engines']} engine(s) (orders/s)", d["orders_per_s"])
            for d in drains
        ],
        ("  2 engines / 1 engine", results["drain_speedup"]),
        (f"drain of {noop_drain['tasks']} queued no-op tasks, 1 engine (tasks/s)", noop_drain["tasks_per_s"]),
        ("engine efficiency in the drain (orders / no-op tasks)", results["engine_efficiency_drain"]),
        *[(f"  cores busy, {d['engines']} engine(s): " + cores_line(d["cores"]), "") for d in drains],
        ("poller frames/s into Redis", poller["poller_frames_per_s"]),
        ("redis-py HSET/s alone", poller["redis_py_hset_per_s"]),
        ("poller / redis-py", poller["ratio"]),
        ("poller depth frames/s into Redis (books live)", f"{depth['depth_frames_per_s']} ({depth['books_live']})"),
        ("redis-py SET of the book JSON/s alone", depth["redis_py_set_per_s"]),
        ("poller depth / redis-py", depth["ratio"]),
        *[
            (f"snapshot round, {r['accounts']} accounts / {r['open_positions']} open (s)", r["seconds"])
            for r in snapshots
        ],
        *[
            (
                f"cascade of {c['positions']} closes, batches of {c['batch']} (s, balanced)",
                f"{c['seconds']} ({c['ledger_balanced']})",
            )
            for c in cascades
        ],
    ]
    for name, value in rows:
        print(f"{name:<54}{value!s:>14}")
    print(f"\nresults: {out.relative_to(ROOT)}, latency histogram: {histogram.relative_to(ROOT)}")
    failed = trades["failures"] or trades_with_streams["failures"] or streams["failed"] or open_loop["failures"]
    return 1 if failed else 0


def stalls_line(stalls: list[dict] | None) -> str:
    if stalls is None:
        return "not reported"
    return ", ".join(f"{stall['at_s']:.1f}: {stall['ms']}" for stall in stalls) or "none"


def stages_line(stages: dict) -> str:
    return ", ".join(f"{stage} {times['p50_ms']:.0f}/{times['p99_ms']:.0f}" for stage, times in stages.items())


def cores_line(cores: dict) -> str:
    return ", ".join(f"{role} {value}" for role, value in cores.items() if value >= 0.01)


if __name__ == "__main__":
    sys.exit(main())
