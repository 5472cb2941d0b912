"""Extension singletons, bound to the app in `create_app` with `init_app`."""

import functools

import redis
from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from app.errors import Api


class RedisClient:
    """The app's Redis connection (prices, rate limits, order results), configured from REDIS_URL."""

    def __init__(self):
        self._client: redis.Redis | None = None

    def init_app(self, app):
        self._client = redis.Redis.from_url(
            app.config["REDIS_URL"], decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        app.extensions["redis"] = self

    def __getattr__(self, name):
        if self._client is None:
            raise RuntimeError("RedisClient used before init_app")
        return getattr(self._client, name)


db = SQLAlchemy()


def autocommit():
    """A pooled connection on which each statement commits by itself. A write that is one
    statement then costs one round trip to PostgreSQL, not BEGIN, the statement and COMMIT, and
    skips the session's unit of work."""
    return _autocommitting(db.engine).connect()


@functools.cache
def _autocommitting(engine):
    return engine.execution_options(isolation_level="AUTOCOMMIT")


migrate = Migrate()
jwt = JWTManager()
api = Api()
redis_client = RedisClient()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
