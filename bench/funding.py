"""A funding round: every open position on one perpetual pays or receives at one boundary."""

import time

from bench.common import Progress, run_fixture, users_with_main_accounts

MARGIN = 1000  # 10.00 USD a position, at 10x: 0.00084500 BTC at 118,320.0
FUNDING_FIXTURE = (
    users_with_main_accounts("funding")
    + """
INSERT INTO balances (account_id, usd, locked_margin)
  SELECT g, 500000 - CAST(:locked AS bigint), CAST(:locked AS bigint) FROM generate_series(1, :accounts) g;
INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'deposit', 500000, 0, now() - interval '1 day' FROM generate_series(1, :accounts) g;
INSERT INTO ledger_entries (account_id, kind, usd_delta, locked_delta, created_at)
  SELECT g, 'open', -CAST(:locked AS bigint), CAST(:locked AS bigint), now() - interval '1 day'
  FROM generate_series(1, :accounts) g;
INSERT INTO orders (id, account_id, asset, side, order_type, status, margin, leverage, slippage_bps, quantity,
                    open_price, liquidation_price, created_at, opened_at, open_fee, close_fee)
  SELECT gen_random_uuid(), (g - 1) % :accounts + 1, 'BTC_USDC_PERP', (ARRAY['long', 'short'])[g % 2 + 1], 'market',
         'open', :margin, 10, 100, 84500, 1183200, CASE WHEN g % 2 = 0 THEN 1076700 ELSE 1289700 END,
         now() - interval '2 hours', now() - interval '2 hours', 0, 0
  FROM generate_series(1, :positions) g;
INSERT INTO markets (symbol, base_symbol, quote_symbol, market_type, order_book_state, tick_size, step_size,
                     min_quantity, price_decimals, quantity_decimals, funding_interval_ms, backpack, synced_at)
  VALUES ('BTC_USDC_PERP', 'BTC', 'USDC', 'PERP', 'Open', 0.1, 0.00001, 0.00001, 1, 5, 3600000, '{}', now());
INSERT INTO funding_rates (market, boundary, rate, mark)
  VALUES ('BTC_USDC_PERP', now() - interval '1 hour', 0.0000125, 118320.5);
ANALYZE
"""
)


def bench_funding(app, accounts: int, positions: int) -> dict:
    """One boundary's round over `positions` open positions of `accounts` accounts, as one engine
    process owning every shard settles it (events published included)."""
    from sqlalchemy import func, select

    from app.balances.service import ledger_mismatches
    from app.extensions import db, redis_client
    from app.models import FundingPayment
    from core.keys import FUNDING_KEY
    from workers.funding import settle_due

    progress = Progress(f"funding {positions // 1000}k", 2)
    with app.app_context():
        params = {
            "accounts": accounts,
            "positions": positions,
            "locked": positions // accounts * MARGIN,
            "margin": MARGIN,
        }
        run_fixture(FUNDING_FIXTURE, params)
        # the round is the fixture's one boundary: not also one a poller of an earlier suite
        # recorded in Redis (settle_due copies those in first, and the positions would pay it too)
        redis_client.delete(FUNDING_KEY.format(market="BTC_USDC_PERP"))
        progress.tick()
        began = time.perf_counter()
        paid = settle_due(range(app.config["ENGINE_SHARDS"]))
        seconds = time.perf_counter() - began
        progress.tick()
        stored = db.session.scalar(select(func.count()).select_from(FundingPayment))
        balanced = ledger_mismatches() == []
        db.session.rollback()
    return {
        "accounts": accounts,
        "positions": positions,
        "paid": paid,
        "stored": stored,
        "seconds": round(seconds, 3),
        "positions_per_s": round(paid / seconds),
        "ledger_balanced": balanced,
    }
