"""The engine's batch statements find their rows by primary key whatever the planner's statistics
say. With `id IN (the oldest pending ids)` the planner hash-joined the ids against a sequential
scan of the whole orders table whenever stale statistics guessed the subquery large: every batch
then read every order (the bench's open loop showed it as a tail growing with the table)."""

import re

from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from app.extensions import db
from workers.execution import _batch_statement
from workers.netting_execution import _pending_statement

STALE_STATISTICS = """
INSERT INTO orders (id, account_id, asset, side, order_type, status, margin, leverage, slippage_bps, quantity,
                    open_price, liquidation_price, close_requested_at, created_at, opened_at, open_fee, close_fee)
  SELECT gen_random_uuid(), :account, 'BTC', 'long', 'market', 'open', 1000, 10, 100, 84500, 1183200, 1076700,
         CASE WHEN g % 10 = 0 THEN now() END, now(), now(), 0, 0
  FROM generate_series(1, 5000) g;
ANALYZE orders;
UPDATE orders SET close_requested_at = NULL
"""


def plan(statement) -> str:
    sql = statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    return "\n".join(row[0] for row in db.session.execute(text("EXPLAIN " + str(sql).replace("%%", "%"))))


def test_a_batch_reads_orders_by_key_even_when_the_statistics_expect_thousands(app, make_user):
    account_id, _ = make_user()
    with app.app_context():
        for statement in STALE_STATISTICS.strip().split(";\n"):
            db.session.execute(text(statement), {"account": account_id})
        db.session.commit()  # the planner still expects 500 requested closes: none is left
        shards = frozenset(range(app.config["ENGINE_SHARDS"]))
        hedging = plan(_batch_statement(shards, app.config["ENGINE_SHARDS"], 100))
        netting = plan(_pending_statement(shards, app.config["ENGINE_SHARDS"], 100))
        db.session.rollback()
    # the batch's own rows (the unaliased table; its subqueries' scans are orders_1, orders_2)
    assert not re.search(r"Seq Scan on orders\s+\(", hedging), hedging
    assert "Index Cond: (id = ANY ((InitPlan" in hedging, hedging
    # the netting batch reads its rows from the same array (by key or, for a test database's few
    # net orders, by a scan of them, as it should), not by a semi-join against the table
    assert "id = ANY ((InitPlan" in netting and "Semi Join" not in netting, netting
