"""A backlog of accepted orders drained by one and by two engine processes, against queued no-op tasks."""

import time

from bench.common import DRAIN_ORDERS, CpuProfile, Progress, run_fixture, start_engines, stop, users_with_main_accounts

DRAIN_FIXTURE = (
    users_with_main_accounts("drain")
    + """
INSERT INTO balances (account_id, usd, locked_margin) SELECT g, 500000, 0 FROM generate_series(1, :accounts) g;
INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, account_id, asset, side, order_type, status, margin, leverage, slippage_bps, created_at,
                    open_fee, close_fee)
  SELECT gen_random_uuid(), (g - 1) % :accounts + 1, 'BTC', 'long', 'market', 'pending', 1000, 5, 100, now(), 0, 0
  FROM generate_series(1, :orders) g
"""
)


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
            for (account_id,) in db.session.execute(text("SELECT account_id FROM orders ORDER BY created_at")):
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
