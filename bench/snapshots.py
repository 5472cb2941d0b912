"""The minute equity snapshot round over many accounts and open positions."""

import time

from bench.common import Progress, run_fixture, users_with_main_accounts

SNAPSHOT_FIXTURE = (
    users_with_main_accounts("snap")
    + """
INSERT INTO balances (account_id, usd, locked_margin) SELECT g, 490000, CASE WHEN g <= :positions THEN 10000 ELSE 0 END
  FROM generate_series(1, :accounts) g;
INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() - interval '1 day' FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, account_id, asset, side, order_type, status, margin, leverage, slippage_bps, quantity,
                    open_price, liquidation_price, created_at, opened_at, open_fee, close_fee)
  SELECT gen_random_uuid(), g, (ARRAY['BTC', 'ETH', 'SOL'])[g % 3 + 1], (ARRAY['long', 'short'])[g % 2 + 1], 'market',
         'open', 10000, 10, 100,
         (ARRAY[999900, 33333333, 56179775])[g % 3 + 1], (ARRAY[1000100000, 3000000000, 178000000])[g % 3 + 1],
         CASE WHEN g % 2 = 0 THEN 1 ELSE 2000000000000 END, now(), now(), 0, 0
  FROM generate_series(1, :positions) g;
"""
)


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
                "INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at) "
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
