"""An engine transaction's changes, written and committed in one round trip
(`workers.writes.commit_in_one_round_trip`), on real PostgreSQL."""

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from app.balances.service import post_entry
from app.extensions import db
from app.models import Balance, LedgerEntry
from core.enums import LedgerKind
from tests.support.state import assert_ledger_balances
from workers.writes import commit_in_one_round_trip


@pytest.fixture
def sent(app):
    """Each statement this process sends, and each commit, with whether the connection was in
    pipeline mode (its statements go out together, without waiting for each other's results)."""
    from psycopg import pq

    log: list[tuple[str, bool]] = []

    def piped(connection) -> bool:
        return connection.connection.driver_connection.pgconn.pipeline_status == pq.PipelineStatus.ON

    def statement(connection, _cursor, text, *_):
        log.append((text, piped(connection)))

    def commit(connection):
        log.append(("COMMIT", piped(connection)))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", statement)
    event.listen(engine, "commit", commit)
    yield log
    event.remove(engine, "before_cursor_execute", statement)
    event.remove(engine, "commit", commit)


def ledger_rows() -> int:
    return db.session.execute(select(func.count()).select_from(LedgerEntry)).scalar_one()


def test_changed_columns_and_new_rows_go_out_with_the_commit_in_one_pipeline(app, make_user, sent):
    users = [make_user()[0] for _ in range(2)]
    with app.app_context():
        before = ledger_rows()
        balances = db.session.execute(select(Balance).where(Balance.account_id.in_(users))).scalars().all()
        starting = {balance.account_id: (balance.usd, balance.locked_margin) for balance in balances}
        for balance in balances:
            post_entry(balance, LedgerKind.DEPOSIT, 1_000, 0)
        sent.clear()
        commit_in_one_round_trip(db.session)

        writes = [(text.split()[0], piped) for text, piped in sent]
        assert writes == [("UPDATE", True), ("INSERT", True), ("COMMIT", True)]
        assert "locked_margin" not in sent[0][0]  # only what changed is written
        after = db.session.execute(select(Balance).where(Balance.account_id.in_(users))).scalars().all()
        assert {b.account_id: (b.usd, b.locked_margin) for b in after} == {
            user: (usd + 1_000, locked) for user, (usd, locked) in starting.items()
        }
        assert ledger_rows() == before + 2
    assert_ledger_balances(app)


def test_a_failing_statement_fails_the_commit_and_writes_nothing(app, make_user):
    account_id, _ = make_user()
    with app.app_context():
        before = ledger_rows()
        balance = db.session.get(Balance, account_id)
        post_entry(balance, LedgerKind.DEPOSIT, -balance.usd - 1, 0)  # below zero: the table refuses it
        with pytest.raises(IntegrityError, match="usd_not_negative"):
            commit_in_one_round_trip(db.session)
        db.session.rollback()
        assert ledger_rows() == before
    assert_ledger_balances(app)
