"""The state every test starts from, and what the tests read of it: tables, Redis keys, statements, the ledger."""

import contextlib

APP_KEY_PATTERNS = ("price:*", "book:*", "mark:*", "funding:*", "feed:*", "engine:*", "trigger-levels*", "LIMITS*")


def reset_state(app) -> None:
    """Empty tables; no prices, feed status, rate-limit counters or engine flags in Redis."""
    from sqlalchemy.exc import OperationalError

    from app.extensions import db, redis_client
    from app.models import empty_every_table

    with app.app_context():
        for attempt in range(3):  # a worker's transaction can take its locks the other way round
            try:
                empty_every_table()
                db.session.commit()
                break
            except OperationalError as error:
                db.session.rollback()
                if attempt == 2 or "deadlock" not in str(error):
                    raise
        for pattern in APP_KEY_PATTERNS:
            keys = list(redis_client.scan_iter(pattern))
            if keys:
                redis_client.delete(*keys)


@contextlib.contextmanager
def statements_reading(app, table: str):
    """The SQL statements this process sends while the block runs that read `table` (FROM it)."""
    from sqlalchemy import event

    from app.extensions import db

    reads: list[str] = []

    def count(_conn, _cursor, statement, *_):
        if f"FROM {table}" in statement:
            reads.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield reads
    finally:
        event.remove(engine, "before_cursor_execute", count)


def count_orders(app, *where) -> int:
    from app.extensions import db
    from app.models import Order

    with app.app_context():
        return db.session.execute(db.select(db.func.count()).select_from(Order).where(*where)).scalar_one()


def assert_ledger_balances(app):
    """Every balance equals its ledger, and locked margin equals the margin of open positions and
    working orders."""
    from app.balances.service import ledger_mismatches
    from app.extensions import db
    from app.models import Balance, Order

    with app.app_context():
        assert ledger_mismatches() == []
        for row in db.session.execute(db.select(Balance)).scalars():
            open_margin = db.session.execute(
                db.select(db.func.coalesce(db.func.sum(Order.margin), 0)).where(
                    Order.account_id == row.account_id, Order.status.in_(["open", "working"])
                )
            ).scalar_one()
            assert row.locked_margin == open_margin


def user_of(app, account_id: int) -> int:
    """The user an account belongs to (what a JWT's `sub` names)."""
    from app.extensions import db
    from app.models import Account

    with app.app_context():
        return db.session.get(Account, account_id).user_id
