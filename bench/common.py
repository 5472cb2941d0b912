"""What every bench suite shares: settings, progress bars, CPU and disk-stall profiles, starting
the engine and other processes, the HTTP client, users and fixtures, and the table's formatting."""

import gc
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
ROUND_TRIPS = int(os.environ.get("BENCH_ROUND_TRIPS", "300"))  # open + close per round trip
NOOPS = int(os.environ.get("BENCH_NOOPS", "600"))
# The trades and the no-op reference alternate, each run this many times: this machine's speed
# drifts by a quarter over minutes, and one phase after the other compared two different machines.
EFFICIENCY_ROUNDS = int(os.environ.get("BENCH_EFFICIENCY_ROUNDS", "3"))
POLLER_FRAMES = int(os.environ.get("BENCH_POLLER_FRAMES", "20000"))
BENCH_STARTING_BALANCE = 100_000_000  # USD cents: $1 million per bench user
TRADE = {"asset": "BTC", "type": "long", "margin": 1_000, "leverage": 5}  # what every bench order opens
PRIVATE_SUBSCRIBERS = int(os.environ.get("BENCH_PRIVATE_SUBSCRIBERS", "200"))  # Backpack paper mode's signed sockets
BACKPACK_SOCKETS = int(os.environ.get("BENCH_BACKPACK_SOCKETS", "1000"))  # its public sockets while trading
STREAM_CLIENTS = int(os.environ.get("BENCH_STREAM_CLIENTS", "500"))  # half price streams, half account streams
SNAPSHOT_ACCOUNTS = int(os.environ.get("BENCH_SNAPSHOT_ACCOUNTS", "100000"))
SNAPSHOT_POSITIONS = int(os.environ.get("BENCH_SNAPSHOT_POSITIONS", "20000"))
FUNDING_ACCOUNTS = int(os.environ.get("BENCH_FUNDING_ACCOUNTS", "1000"))
FUNDING_POSITIONS = int(os.environ.get("BENCH_FUNDING_POSITIONS", "100000"))
DRAIN_ORDERS = int(os.environ.get("BENCH_DRAIN_ORDERS", "5000"))
OPEN_LOOP_S = float(os.environ.get("BENCH_OPEN_LOOP_S", "30"))
OPEN_LOOP_WARMUP_S = 3
IDLE_S = float(os.environ.get("BENCH_IDLE_S", "30"))


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


def against_mean(measured: dict, before: dict, after: dict) -> float | None:
    """`measured`'s orders/s over the mean of the same measure just before and just after it, so a
    drift of the machine over the phases lands on neither side."""
    baseline = (before["orders_per_s"] + after["orders_per_s"]) / 2
    return round(measured["orders_per_s"] / baseline, 2) if baseline else None


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {
        "p50_ms": round(pick(0.50), 2),
        "p95_ms": round(pick(0.95), 2),
        "p99_ms": round(pick(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
    }


# The first marker found in a process's command line names its role (the simulator before the poller).
ROLES = (("gunicorn", "web"), ("workers.run_engine", "engine"), ("-Q engine.", "engine"))
ROLES += (("poller.simulator", "simulator"), ("-m poller", "poller"), ("flower", "flower"), (" beat ", "beat"))
ROLES += (("-Q email", "mailer"),)


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
        # the open loop keeps every position it opens ($10 of margin each): at half of a 540/s peak
        # that is 9,000 positions over 16 users, beyond the default $5,000 each
        app.config["STARTING_BALANCE"] = BENCH_STARTING_BALANCE
        for _ in range(count):
            user = create_user(f"bench-{uuid.uuid4().hex[:12]}@example.com")
            db.session.commit()
            headers.append({"Authorization": f"Bearer {create_access_token(identity=str(user.id))}"})
    return headers


def users_with_main_accounts(prefix: str) -> str:
    """A fixture's first statements: `:accounts` users, each with its main account of the same id."""
    return f"""
INSERT INTO users (id, email, created_at)
  SELECT g, '{prefix}-' || g || '@bench', now() FROM generate_series(1, :accounts) g;
SELECT setval('users_id_seq', :accounts);
INSERT INTO accounts (id, user_id, name, mode, starting_balance, leverage_limit, created_at)
  SELECT g, g, 'main', 'hedging', 500000, 10, now() FROM generate_series(1, :accounts) g;
SELECT setval('accounts_id_seq', :accounts);"""


def run_fixture(script: str, params: dict) -> None:
    """Empty the bench's tables, then run `script` (statements ending in `;` + newline), committed."""
    from sqlalchemy import text

    from app.extensions import db
    from app.models import empty_every_table

    empty_every_table()
    for statement in filter(None, script.strip().split(";\n")):
        db.session.execute(text(statement), params)
    db.session.commit()


def wait_for_orders(status: str, total: int, progress: Progress, began: float, poll_s: float, stall_s: float) -> float:
    """Seconds from `began` until `total` orders have `status` (the engine's work, counted by
    polling the table), ticking `progress`; a RuntimeError after `stall_s`."""
    from sqlalchemy import text

    from app.extensions import db

    count = text("SELECT count(*) FROM orders WHERE status = :status")
    reached = 0
    while reached < total:
        if time.perf_counter() - began > stall_s:
            raise RuntimeError(f"stalled: {reached} of {total} orders {status} after {stall_s} s")
        time.sleep(poll_s)
        done = db.session.execute(count, {"status": status}).scalar_one()
        db.session.rollback()
        progress.tick(done - reached)
        reached = done
    return time.perf_counter() - began


def stalls_line(stalls: list[dict] | None) -> str:
    if stalls is None:
        return "not reported"
    return ", ".join(f"{stall['at_s']:.1f}: {stall['ms']}" for stall in stalls) or "none"


def stages_line(stages: dict) -> str:
    return ", ".join(f"{stage} {times['p50_ms']:.0f}/{times['p99_ms']:.0f}" for stage, times in stages.items())


def cores_line(cores: dict) -> str:
    return ", ".join(f"{role} {value}" for role, value in cores.items() if value >= 0.01)
