"""`python -m bench [SUITE ...]` (`make bench`: every suite): the service's speed on this machine,
each suite in its own module, run in the order of `SUITES` (a suite's prerequisite runs with it).
Prints a table and writes bench/results/<time>.json (and the open loop's latency histogram)."""

import json
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import (
    all_markets,
    backpack,
    cascade,
    drain,
    feed,
    funding,
    idle,
    open_loop,
    resting,
    snapshots,
    streams,
    trades,
)
from bench.common import (
    BACKPACK_SOCKETS,
    CLIENTS,
    FUNDING_ACCOUNTS,
    FUNDING_POSITIONS,
    PRIVATE_SUBSCRIBERS,
    RESULTS,
    ROOT,
    ROUND_TRIPS,
    SNAPSHOT_ACCOUNTS,
    SNAPSHOT_POSITIONS,
    STREAM_CLIENTS,
    against_mean,
    cores_line,
    keep_prices_fresh,
    make_users,
    run_fixture,
    stages_line,
    stalls_line,
    start,
    start_engines,
    stop,
)
from devstack import free_port, wait_for_http

Rows = list[tuple[str, object]]


class Run:
    """One bench run: the app, the environment every process gets, what the suites measured, and
    the live stack (web, one engine, fresh prices) the HTTP suites share, started on first use."""

    def __init__(self, app, env: dict):
        self.app, self.env = app, env
        self.results: dict = {}
        self.rows: Rows = []
        self.failed = False
        self._processes: list = []
        self._prices = threading.Event()
        self.base_url = self.port = None
        self.users: list[dict] = []

    def stack(self) -> "Run":
        if self._processes:
            return self
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        bind = ["--bind", f"127.0.0.1:{self.port}"]
        web = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app", *bind]
        self._processes = [start(web, self.env, "web"), *start_engines(self.env, "engine")]
        threading.Thread(target=keep_prices_fresh, args=(self.app, self._prices), daemon=True).start()
        wait_for_http(f"{self.base_url}/api/v1/supportedAssets")
        self.users = make_users(self.app, max(CLIENTS, STREAM_CLIENTS // 2, PRIVATE_SUBSCRIBERS))
        return self

    def stop_stack(self) -> None:
        self._prices.set()
        for process in self._processes:
            stop(process)
        self._processes = []


def run_idle(run: Run) -> None:
    result = run.results["idle"] = idle.bench_idle(run.env)
    run.rows.append((f"idle stack, feed ticking every {result['tick_s']} s: cores", result["cores"]["total"]))
    run.rows.append(("  " + cores_line(result["cores"]), ""))


def run_trades(run: Run) -> None:
    run.stack()
    users = run.users[:CLIENTS]
    trades.bench_trades(run.base_url, users, "trades, warm-up", round_trips=4 * CLIENTS)  # not counted
    trades.bench_noop(run.app.config["REDIS_URL"], "celery no-op, warm-up", round_trips=4 * CLIENTS)  # nor this
    result, noop, rounds = trades.bench_efficiency(run.base_url, users, run.app.config["REDIS_URL"])
    efficiency = round(result["orders_per_s"] / noop["round_trips_per_s"], 3)
    run.results.update(trades=result, celery_noop=noop, engine_efficiency=efficiency, efficiency_rounds=rounds)
    run.failed |= bool(result["failures"])
    run.rows += [
        ("trade orders/s (HTTP -> engine -> HTTP)", result["orders_per_s"]),
        ("  latency p50 / p95 / p99 ms", f"{result['p50_ms']} / {result['p95_ms']} / {result['p99_ms']}"),
        ("  failed requests", result["failures"]),
        ("celery no-op round trips/s", noop["round_trips_per_s"]),
        ("  latency p50 / p95 / p99 ms", f"{noop['p50_ms']} / {noop['p95_ms']} / {noop['p99_ms']}"),
        ("engine efficiency (trades / no-op)", efficiency),
        ("  round by round", " / ".join(str(r["efficiency"]) for r in rounds)),
        ("  cores busy in trades: " + cores_line(result["cores"]), ""),
    ]


def run_open_loop(run: Run) -> None:
    rate = run.results["trades"]["orders_per_s"] / 2
    result = open_loop.bench_open_loop(run.app, run.stack().base_url, run.users[:CLIENTS], rate=rate)
    result["reset_s"] = open_loop.reset_accounts(run.app, run.base_url, run.users[:CLIENTS])
    run.results["open_loop"] = {key: value for key, value in result.items() if key != "latencies_ms"}
    run.results["_histogram"] = result
    run.failed |= bool(result["failures"])
    p = result
    run.rows += [
        (f"open loop {p['rate_per_s']}/s for {p['seconds']:.0f} s: orders", p["orders"]),
        ("  latency p50 / p95 / p99 / max ms", f"{p['p50_ms']} / {p['p95_ms']} / {p['p99_ms']} / {p['max_ms']}"),
        ("  failed requests", p["failures"]),
        ("  p50 / p99 ms by stage: " + stages_line(p["stages"]), ""),
        ("  disk stalls over 50 ms (second in the phase: ms)", stalls_line(p["disk_stalls"])),
        ("  p99 ms by 5 s window", " ".join(str(round(w["p99_ms"])) for w in p["windows"])),
    ]


def run_streams(run: Run) -> None:
    run.stack()
    crowd, t, without = streams.bench_streams(run.port, run.base_url, run.users[:CLIENTS], run.users)
    before, after = without["before"]["orders_per_s"], without["after"]["orders_per_s"]
    ratio = against_mean(t, without["before"], without["after"])
    run.results.update(streams=crowd, trades_with_streams=t, trades_without_streams=without, streams_ratio=ratio)
    run.failed |= bool(
        t["failures"] or crowd["failed"] or without["before"]["failures"] or without["after"]["failures"]
    )
    run.rows += [
        (f"SSE clients connected (of {crowd['clients']})", crowd["connected"]),
        ("  events delivered/s while trading", crowd["events_per_s"]),
        ("trade orders/s without streams (before; after)", f"{before}; {after}"),
        ("trade orders/s with the streams open", t["orders_per_s"]),
        ("  latency p50 / p95 / p99 ms", f"{t['p50_ms']} / {t['p95_ms']} / {t['p99_ms']}"),
        ("  failed requests", t["failures"]),
        ("  with streams / without", ratio),
    ]


def run_backpack(run: Run) -> None:
    backpack.prepare_catalog(run.app)
    run.stack()
    stop_event = threading.Event()
    threading.Thread(target=backpack.keep_perpetual_fresh, args=(run.app, stop_event), daemon=True).start()
    time.sleep(6)  # the web's and engine's catalogs reload at most every 5 s: the perpetual is then known
    try:
        accounts = backpack.bots(run.base_url, run.users[:PRIVATE_SUBSCRIBERS])
        clients = accounts[:CLIENTS]
        backpack.bench_orders(run.base_url, clients, backpack=False, orders=4 * CLIENTS)  # warm-up, not counted
        # the native rate before the signed and socket phases and again after them: each ratio is
        # taken against their mean, so a drift of the machine over the run does not land on one side
        orders = 2 * ROUND_TRIPS
        native = backpack.bench_orders(run.base_url, clients, backpack=False, orders=orders)
        signed = backpack.bench_orders(run.base_url, clients, backpack=True, orders=orders)
        private = backpack.bench_private_streams(run.base_url, accounts, orders=ROUND_TRIPS)
        crowd = backpack.bench_many_sockets(run.base_url, run.port, clients, BACKPACK_SOCKETS, orders=orders)
        again = backpack.bench_orders(run.base_url, clients, backpack=False, orders=orders, label="native orders again")
    finally:
        stop_event.set()
    ratio, crowd_ratio = against_mean(signed, native, again), against_mean(crowd, native, again)
    run.results["backpack"] = {
        "native": native,
        "native_again": again,
        "signed": signed,
        "ratio": ratio,
        "private": private,
        "crowd": crowd,
        "crowd_ratio": crowd_ratio,
    }
    run.failed |= bool(native["failures"] or signed["failures"] or crowd["failures"] or again["failures"])
    run.rows += [
        ("netting market orders/s, native route (before; after)", f"{native['orders_per_s']}; {again['orders_per_s']}"),
        ("  latency p50 / p95 / p99 ms", f"{native['p50_ms']} / {native['p95_ms']} / {native['p99_ms']}"),
        ("signed Backpack orders/s (POST /backpack/api/v1/order)", signed["orders_per_s"]),
        ("  latency p50 / p95 / p99 ms", f"{signed['p50_ms']} / {signed['p95_ms']} / {signed['p99_ms']}"),
        ("  signed / native", ratio),
        ("  failed requests", native["failures"] + signed["failures"] + again["failures"]),
        (
            f"fill frames to {private['subscribers']} private sockets: frames / orders",
            f"{private['fill_frames']} / {private['orders']}",
        ),
        (
            "  engine fill -> subscriber p50 / p95 / p99 ms",
            f"{private['frame_p50_ms']} / {private['frame_p95_ms']} / {private['frame_p99_ms']}",
        ),
        (f"native orders/s with {crowd['sockets']} sockets open", crowd["orders_per_s"]),
        ("  with sockets / without", crowd_ratio),
        ("  frames/s to the sockets; web resident MB", f"{crowd['frames_per_s']}; {crowd['web_rss_mb']}"),
    ]


def run_feed(run: Run) -> None:
    poller = feed.bench_poller(run.app.config["REDIS_URL"])
    depth = feed.bench_depth(run.app.config["REDIS_URL"])
    run.results.update(poller=poller, depth=depth)
    run.rows += [
        ("poller frames/s into Redis", poller["poller_frames_per_s"]),
        ("redis-py HSET/s alone", poller["redis_py_hset_per_s"]),
        ("poller / redis-py", poller["ratio"]),
        ("poller depth frames/s into Redis (books live)", f"{depth['depth_frames_per_s']} ({depth['books_live']})"),
        ("redis-py SET of the book JSON/s alone", depth["redis_py_set_per_s"]),
        ("poller depth / redis-py", depth["ratio"]),
    ]


def run_all_markets(run: Run) -> None:
    run.stop_stack()
    result = all_markets.bench_all_markets(run.app, run.env)
    run.results["all_markets"] = result
    run.failed |= any(r["markets_behind"] for r in result["rounds"])
    run.rows.append((f"poller over {result['markets']} markets, {result['streams']} streams", ""))
    run.rows += [
        (
            f"  {r['rate']}x Backpack: frames/s; poller cores, MB; caught up after (s)",
            f"{r['frames_per_s_sent']}; {r['poller_cores']}, {r['poller_rss_mb']}; {r['caught_up_after_s']}"
            + (f" ({r['markets_behind']} markets behind: {'; '.join(r['behind'])})" if r["markets_behind"] else ""),
        )
        for r in result["rounds"]
    ]
    first, fifth = result["rounds"]
    run.rows.append(("  poller cores at 5x / 1x", round(fifth["poller_cores"] / max(first["poller_cores"], 0.01), 2)))


def run_snapshots(run: Run) -> None:
    run.stop_stack()  # the snapshot rounds write every asset's quote themselves
    rounds = [
        snapshots.bench_snapshots(run.app, SNAPSHOT_ACCOUNTS // 10, SNAPSHOT_POSITIONS // 10),
        snapshots.bench_snapshots(run.app, SNAPSHOT_ACCOUNTS, SNAPSHOT_POSITIONS),
    ]
    run.results["equity_snapshots"] = rounds
    run.rows += [
        (f"snapshot round, {r['accounts']} accounts / {r['open_positions']} open (s)", r["seconds"]) for r in rounds
    ]


def run_drain(run: Run) -> None:
    run.stop_stack()  # the drains start engines of their own
    prices = threading.Event()
    threading.Thread(target=keep_prices_fresh, args=(run.app, prices), daemon=True).start()
    try:
        drains = [drain.bench_drain(run.app, run.env, processes=1), drain.bench_drain(run.app, run.env, processes=2)]
        noop = drain.bench_noop_drain(run.app, run.env)
    finally:
        prices.set()
    speedup = round(drains[1]["orders_per_s"] / drains[0]["orders_per_s"], 2)
    efficiency = round(drains[0]["orders_per_s"] / noop["tasks_per_s"], 3)
    run.results.update(drain=drains, drain_speedup=speedup, noop_drain=noop, engine_efficiency_drain=efficiency)
    run.rows += [
        *[
            (f"drain of {d['orders']} queued orders, {d['engines']} engine(s) (orders/s)", d["orders_per_s"])
            for d in drains
        ],
        ("  2 engines / 1 engine", speedup),
        (f"drain of {noop['tasks']} queued no-op tasks, 1 engine (tasks/s)", noop["tasks_per_s"]),
        ("engine efficiency in the drain (orders / no-op tasks)", efficiency),
        *[(f"  cores busy, {d['engines']} engine(s): " + cores_line(d["cores"]), "") for d in drains],
    ]


def run_cascade(run: Run) -> None:
    run.stop_stack()
    cascades = [cascade.bench_cascade(run.app, run.env, batch=1), cascade.bench_cascade(run.app, run.env, batch=500)]
    run.results["cascade"] = cascades
    run.rows += [
        (
            f"cascade of {c['positions']} closes, batches of {c['batch']} (s, balanced)",
            f"{c['seconds']} ({c['ledger_balanced']})",
        )
        for c in cascades
    ]


def run_resting(run: Run) -> None:
    run.stop_stack()
    rounds = [resting.bench_resting(run.app, run.env, orders) for orders in (10_000, 100_000)]
    run.results["resting"] = rounds
    run.failed |= any(r["filled"] != r["crossed"] or not r["ledger_balanced"] for r in rounds)
    run.rows += [
        (
            f"tick crossing {r['crossed']} of {r['working']} working limits ({r['markets']} markets): filled in (s)",
            r["seconds"],
        )
        for r in rounds
    ]
    run.rows.append(("  100k resting / 10k resting", round(rounds[1]["seconds"] / rounds[0]["seconds"], 2)))


def run_funding(run: Run) -> None:
    run.stop_stack()
    rounds = [
        funding.bench_funding(run.app, FUNDING_ACCOUNTS, FUNDING_POSITIONS // 10),
        funding.bench_funding(run.app, FUNDING_ACCOUNTS, FUNDING_POSITIONS),
    ]
    run.results["funding"] = rounds
    run.failed |= any(r["paid"] != r["positions"] or not r["ledger_balanced"] for r in rounds)
    run.rows += [
        (
            f"funding round, {r['positions']} positions / {r['accounts']} accounts (s, balanced)",
            f"{r['seconds']} ({r['ledger_balanced']})",
        )
        for r in rounds
    ]


# In running order. The idle stack first, on an empty database; the HTTP suites share one stack.
SUITES: dict[str, Callable[[Run], None]] = {
    "idle": run_idle,
    "trades": run_trades,
    "open_loop": run_open_loop,
    "streams": run_streams,
    "backpack": run_backpack,
    "feed": run_feed,
    "all_markets": run_all_markets,
    "snapshots": run_snapshots,
    "drain": run_drain,
    "cascade": run_cascade,
    "resting": run_resting,
    "funding": run_funding,
}
NEEDS = {"open_loop": "trades"}  # the open loop runs at half the closed loop's peak


def main(argv: list[str]) -> int:
    unknown = set(argv) - set(SUITES)
    if unknown:
        print(f"unknown suites {sorted(unknown)}; known: {' '.join(SUITES)}", file=sys.stderr)
        return 2
    chosen = set(argv or SUITES)
    chosen |= {NEEDS[name] for name in chosen if name in NEEDS}
    env = os.environ.copy()
    env.setdefault("TRADE_RATE_LIMIT", "100000/second")  # the limiter's cost is measured, not its refusals
    env.update(APP_ENV=env.get("APP_ENV", "development"), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    os.environ.update(env)
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import redis_client

    app = create_app()
    with app.app_context():
        upgrade()
        run_fixture("", {})  # the bench's own database: every run starts empty
        for pattern in ("price:*", "book:*", "feed:*", "engine:*", "trigger-levels*"):  # and its own Redis database
            for key in redis_client.scan_iter(pattern):
                redis_client.delete(key)
    run = Run(app, env)
    try:
        for name, suite in SUITES.items():
            if name in chosen:
                suite(run)
    finally:
        run.stop_stack()
    histogram = run.results.pop("_histogram", None)
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "clients": CLIENTS,
        "suites": [name for name in SUITES if name in chosen],
        **run.results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{results['when'].replace(':', '')}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\n{'measure':<54}{'value':>14}")
    for name, value in run.rows:
        print(f"{name:<54}{value!s:>14}")
    print(f"\nresults: {out.relative_to(ROOT)}")
    if histogram is not None:
        picture = out.with_name(f"{out.stem}-latency.png")
        open_loop.latency_histogram(histogram, picture)
        print(f"latency histogram: {picture.relative_to(ROOT)}")
    return 1 if run.failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
