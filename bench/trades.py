"""Closed-loop trades (open + close through the real HTTP API) against the Celery no-op round trip
on the same broker and worker settings, in alternating rounds: the engine's efficiency."""

import time
import uuid

import redis

from bench.common import (
    EFFICIENCY_ROUNDS,
    NOOPS,
    ROUND_TRIPS,
    TRADE,
    ApiClient,
    CpuProfile,
    Progress,
    percentiles,
    quiet_heap,
    run_clients,
)


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
