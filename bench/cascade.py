"""A liquidation cascade: one tick crossing 10,000 positions, closed in batches of 1 and of 500."""

import time

from bench.common import Progress, run_fixture, start_engines, stop, users_with_main_accounts, wait_for_orders

CASCADE_FIXTURE = (
    users_with_main_accounts("cascade")
    + """
INSERT INTO balances (account_id, usd, locked_margin) SELECT g, 500000 - 1000 * :per, 1000 * :per
  FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, account_id, asset, side, order_type, status, margin, leverage, slippage_bps, quantity,
                    open_price, liquidation_price, stop_loss, take_profit, created_at, opened_at, open_fee, close_fee)
  SELECT gen_random_uuid(), (g - 1) / :per + 1, 'BTC', 'long', 'market', 'open', 1000, 100, 100, 100000, 1000100000,
         CASE WHEN g % 3 = 0 THEN 991000000 ELSE 1 END, CASE WHEN g % 3 = 1 THEN 995000000 END,
         CASE WHEN g % 3 = 2 THEN 980000000 END, now(), now(), 0, 0
  FROM generate_series(1, :accounts * :per) g;
INSERT INTO ledger_entries (account_id, order_id, kind, usd_delta, locked_delta, created_at)
  SELECT account_id, id, 'open', -1000, 1000, now() FROM orders;
INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() FROM generate_series(1, :accounts) g
"""
)


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
            seconds = wait_for_orders("closed", total, progress, began, poll_s=0.1, stall_s=300)
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
