"""The connection pool on real PostgreSQL: an idle connection that died is replaced on checkout
(`app.extensions.ping_idle_connections`), a connection just returned is used without a ping."""

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.pool import NullPool

from app import extensions
from app.extensions import db

BACKEND_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
def pinged_engine(app):
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"], pool_size=1)
    extensions.ping_idle_connections(engine)
    yield engine
    engine.dispose()


def kill_backend(app, pid: int) -> None:
    """Terminate a server process, and return once it is gone (the signal is asynchronous)."""
    with create_engine(app.config["SQLALCHEMY_DATABASE_URI"], poolclass=NullPool).connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}).scalar()


def pooled_backend(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(BACKEND_PID).scalar()


def test_an_idle_connection_that_died_is_replaced_on_checkout(app, pinged_engine, monkeypatch):
    first = pooled_backend(pinged_engine)
    kill_backend(app, first)
    monkeypatch.setattr(extensions, "PING_IDLE_AFTER_S", 0)  # as if a second had passed since
    assert pooled_backend(pinged_engine) not in (None, first)


def test_a_connection_just_returned_is_not_pinged_and_its_failure_renews_the_pool(app, pinged_engine, monkeypatch):
    first = pooled_backend(pinged_engine)
    kill_backend(app, first)
    monkeypatch.setattr(extensions, "PING_IDLE_AFTER_S", 3600)
    with pytest.raises(exc.OperationalError), pinged_engine.connect() as connection:
        connection.execute(BACKEND_PID)  # no ping: the statement finds the connection dead
    assert pooled_backend(pinged_engine) != first


def test_the_migrations_build_exactly_the_tables_the_models_describe(app):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, db.metadata) == []


def test_the_accounts_migration_keeps_every_users_rows_under_a_main_account_of_the_same_id(app, monkeypatch):
    """0012 on a database holding a user's money: the rows stay where they are, now keyed by a
    `main` account with the user's own id; new accounts get new ids; it goes back while every
    user has only that account, and refuses to fold a second one away."""
    from flask_migrate import downgrade, upgrade
    from sqlalchemy.engine import make_url

    from app import create_app

    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    scratch = url.set(database="trading_migration_check")
    with create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool).connect() as admin:
        admin.execute(text("DROP DATABASE IF EXISTS trading_migration_check"))
        admin.execute(text("CREATE DATABASE trading_migration_check"))
    monkeypatch.setenv("DATABASE_URL", scratch.render_as_string(hide_password=False))
    old = create_app()
    with old.app_context():
        upgrade(revision="0011")
        for statement in (
            "INSERT INTO users (id, email, created_at) VALUES (41, 'a@example.com', now())",
            "INSERT INTO balances (user_id, usd, locked_margin) VALUES (41, 490000, 10000)",
            "INSERT INTO ledger_entries (user_id, kind, usd_delta, locked_delta, created_at)"
            " VALUES (41, 'deposit', 500000, 0, now()), (41, 'open', -10000, 10000, now())",
            "INSERT INTO orders (id, user_id, asset, side, order_type, status, margin, leverage, slippage_bps,"
            " open_fee, close_fee, created_at) VALUES (gen_random_uuid(), 41, 'BTC', 'long', 'market', 'open',"
            " 10000, 10, 100, 0, 0, now())",
        ):
            db.session.execute(text(statement))
        db.session.commit()
        upgrade()
        account = db.session.execute(text("SELECT id, user_id, name, mode FROM accounts")).one()
        assert tuple(account) == (41, 41, "main", "hedging")
        assert db.session.execute(text("SELECT account_id FROM orders")).scalar_one() == 41
        assert (
            db.session.execute(text("SELECT sum(usd_delta) FROM ledger_entries WHERE account_id = 41")).scalar()
            == 490000
        )
        second = db.session.execute(
            text(
                "INSERT INTO accounts (user_id, name, mode, starting_balance, leverage_limit, created_at)"
                " VALUES (41, 'second', 'hedging', 1, 10, now()) RETURNING id"
            )
        ).scalar_one()
        assert second > 41
        db.session.commit()
        version = text("SELECT version_num FROM alembic_version")
        head = db.session.execute(version).scalar_one()
        db.session.rollback()
        with pytest.raises((RuntimeError, SystemExit)):  # Flask-Migrate turns the error into an exit
            downgrade(revision="0011")
        assert db.session.execute(version).scalar_one() == head  # nothing undone
        db.session.execute(text("DELETE FROM accounts WHERE name = 'second'"))
        db.session.commit()
        downgrade(revision="0011")
        assert db.session.execute(text("SELECT user_id FROM balances")).scalar_one() == 41
        db.session.remove()
        db.engine.dispose()
