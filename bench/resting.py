"""Working limit orders at scale: one tick crossing 1,000 of them while 10,000 or 100,000 rest
over MARKETS markets (Backpack lists about 90 open perpetuals)."""

import time

from bench.common import Progress, run_fixture, start_engines, stop, users_with_main_accounts, wait_for_orders

CROSSED = 1000
MARKETS = 90
RESTING_FIXTURE = (
    users_with_main_accounts("resting")
    + """
INSERT INTO balances (account_id, usd, locked_margin)
  SELECT g, 500000 - CAST(:locked AS bigint), CAST(:locked AS bigint)
  FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, account_id, asset, side, order_type, status, margin, leverage, slippage_bps, quantity,
                    limit_price, created_at, open_fee, close_fee)
  SELECT gen_random_uuid(), (g - 1) % :accounts + 1,
         CASE WHEN g <= :crossed OR g % :markets = 0 THEN 'BTC' ELSE 'M' || g % :markets || '_USDC_PERP' END,
         'long', 'limit', 'working', 1000, 10, 100, 100000,
         CASE WHEN g <= :crossed THEN 995000000 ELSE 900000000 - (g % 1000) * 100000 END, now(), 0, 0
  FROM generate_series(1, :orders) g;
INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() FROM generate_series(1, :accounts) g;
INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'open', -CAST(:locked AS bigint), CAST(:locked AS bigint), now() FROM generate_series(1, :accounts) g;
ANALYZE
"""
)


def bench_resting(app, env: dict, orders: int, accounts: int = 1000) -> dict:
    """`orders` working long limits over `accounts` accounts and MARKETS markets, CROSSED of them on
    BTC at 99,500 and the rest below 90,000 (a MARKETS-th of them on BTC); a tick with BTC's ask at
    98,500: seconds until the engine filled the crossed ones (the slowest fill: an upper bound of
    the p99), and that none of the others filled."""
    from sqlalchemy import text

    from app.balances.service import ledger_mismatches
    from app.extensions import db, redis_client
    from core.prices import PriceStore, Quote, now_micros
    from core.tasks import request_trigger_check

    with app.app_context():
        locked = orders // accounts * 1000
        run_fixture(
            RESTING_FIXTURE,
            {"accounts": accounts, "orders": orders, "crossed": CROSSED, "locked": locked, "markets": MARKETS},
        )
        now = now_micros()
        PriceStore(redis_client).write(Quote("BTC", 1_000_000_000, 1_000_100_000, now, now))  # crosses nothing
    (engine,) = start_engines(env, f"engine-resting-{orders}")
    progress = Progress(f"resting {orders // 1000}k", CROSSED)
    try:
        with app.app_context():
            now = now_micros()
            PriceStore(redis_client).write(Quote("BTC", 984_900_000, 985_000_000, now, now))
            began = time.perf_counter()
            shards = range(app.config["ENGINE_SHARDS"])  # the fixture's rows have no trigger levels: every shard
            request_trigger_check(redis_client, app.extensions["celery"], "BTC", shards)
            seconds = wait_for_orders("open", CROSSED, progress, began, poll_s=0.02, stall_s=120)
            time.sleep(1)
            opened = db.session.execute(text("SELECT count(*) FROM orders WHERE status = 'open'")).scalar_one()
            balanced = ledger_mismatches() == []
            db.session.rollback()
    finally:
        stop(engine)
    return {
        "working": orders,
        "markets": MARKETS,
        "crossed": CROSSED,
        "filled": opened,
        "seconds": round(seconds, 3),
        "ledger_balanced": balanced,
    }
