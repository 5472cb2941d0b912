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
