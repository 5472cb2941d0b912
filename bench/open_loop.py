"""Orders arriving at a fixed rate (half the closed-loop peak), each timed from its scheduled
arrival, split into stages by its timestamps; and the latency histogram."""

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from sqlalchemy import select

from bench.common import (
    OPEN_LOOP_S,
    OPEN_LOOP_WARMUP_S,
    TRADE,
    ApiClient,
    CpuProfile,
    DiskStalls,
    Progress,
    percentiles,
    quiet_heap,
)


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
WINDOW_S = 5  # the phase cut in windows: an episode of a few seconds, or a trend over the phase


def order_stages(app, moments: dict[str, tuple[float, float, float]], counted_from: float) -> dict:
    """Where each open-loop order spent its time, cut at the order's two timestamps (this machine's
    one clock): `client` from its scheduled arrival until a bench thread sent it; `web` until
    the web process built its INSERT (created_at: HTTP, token, validation, quote); `engine` until
    the engine filled it (opened_at: the INSERT's commit, the wake-up, the batch); `answer` until
    its answer arrived (the batch's commit, the event, the reply). The p99 of every WINDOW_S
    window, and the slowest orders with their second in the phase, to set beside the servers' logs."""
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
    windows: dict[int, list[list[float]]] = {}
    for order_id, times in split.items():
        windows.setdefault(int((moments[order_id][0] - counted_from) // WINDOW_S), []).append(times)
    slowest = sorted(split, key=lambda order_id: sum(split[order_id]), reverse=True)[: max(1, len(split) // 100)]
    return {
        "stages": stages,
        "windows": [{"from_s": window * WINDOW_S, **_window(rows)} for window, rows in sorted(windows.items())],
        "slowest": [
            {
                "at_s": round(moments[order_id][0] - counted_from, 3),
                "total_ms": round(sum(split[order_id]) * 1000, 1),
                **{stage: round(split[order_id][i] * 1000, 1) for i, stage in enumerate(OPEN_LOOP_STAGES)},
            }
            for order_id in sorted(slowest, key=lambda order_id: moments[order_id][0])
        ],
    }


def _window(rows: list[list[float]]) -> dict:
    """A window's p50 and p99 of the whole time, and each stage's p99."""
    totals = percentiles([sum(times) for times in rows])
    by_stage = {stage: percentiles([times[i] for times in rows])["p99_ms"] for i, stage in enumerate(OPEN_LOOP_STAGES)}
    return {"p50_ms": totals["p50_ms"], "p99_ms": totals["p99_ms"], **by_stage}


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


def reset_accounts(app, base_url: str, users: list[dict], stall_s: float = 120.0) -> float:
    """Reset the users' accounts (the engine closes every position the open loop left) and wait
    until none is open: the suites after this one start from accounts like the ones it found, not
    from 9,000 positions whose streams value them twice a second. Returns the seconds it took."""
    from sqlalchemy import text

    from app.extensions import db

    began = time.perf_counter()
    api = ApiClient(base_url)
    for headers in users:
        status, answer = api.post("/api/v1/account/reset", headers, {})
        if status not in (200, 202):
            raise RuntimeError(f"reset refused: {status} {answer}")
    with app.app_context():
        while db.session.scalar(text("SELECT count(*) FROM orders WHERE status = 'open'")):
            db.session.rollback()
            if time.perf_counter() - began > stall_s:
                raise RuntimeError(f"positions still open {stall_s} s after the resets")
            time.sleep(0.2)
        db.session.rollback()
    return round(time.perf_counter() - began, 2)
