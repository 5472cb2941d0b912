"""Extension singletons, bound to the app in `create_app` with `init_app`."""

import functools
import time

import redis
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event, exc

from app.errors import Api


class RedisClient:
    """The app's Redis connection (prices, rate limits, order results), configured from REDIS_URL."""

    def __init__(self):
        self._client: redis.Redis | None = None

    def init_app(self, app):
        self._client = redis.Redis.from_url(
            app.config["REDIS_URL"],
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=2,
            **app.config["REDIS_OPTIONS"],
        )
        app.extensions["redis"] = self

    def __getattr__(self, name):
        if self._client is None:
            raise RuntimeError("RedisClient used before init_app")
        return getattr(self._client, name)


db = SQLAlchemy()
migrate = Migrate()
jwt = JWTManager()
api = Api()
redis_client = RedisClient()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
sock = Sock()  # WebSocket routes (Backpack paper mode's /backpack/ws)


def autocommit():
    """A pooled connection on which each statement commits by itself. A write that is one
    statement then costs one round trip to PostgreSQL, not BEGIN, the statement and COMMIT, and
    skips the session's unit of work."""
    return _autocommitting(db.engine).connect()


@functools.cache
def _autocommitting(engine):
    return engine.execution_options(isolation_level="AUTOCOMMIT")


PING_IDLE_AFTER_S = 1.0


def ping_idle_connections(engine) -> None:
    """The pool's pre-ping, for connections idle over PING_IDLE_AFTER_S only. Pinging every
    checkout cost each trade request and each wake-up a round trip to PostgreSQL; a connection
    back in the pool for milliseconds is as alive as the answer it just got. A dead one
    (PostgreSQL restarted) invalidates the whole pool, as pre-ping does, and the checkout takes a
    new connection; one that dies within the second fails its statement, and that too
    invalidates the pool."""

    @event.listens_for(engine, "checkin")
    def returned(dbapi_connection, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle(dbapi_connection, record, proxy) -> None:
        returned_at = record.info.get("returned_at")  # a new connection has none: it just answered
        if returned_at is None or time.monotonic() - returned_at < PING_IDLE_AFTER_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.InvalidatePoolError(f"idle connection failed its ping: {error}") from error
