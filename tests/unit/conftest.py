"""Unit tests: no PostgreSQL, Redis or worker. Apps built here point at closed ports."""

import pytest

CLOSED_PORTS = {
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none",
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "JWT_SECRET_KEY": "unit-test-secret-key-that-is-long-enough",
    "APP_ENV": "test",
}


@pytest.fixture(scope="session")
def offline_app():
    """The real app, built from settings whose servers are unreachable (nothing connects at start)."""
    from app import create_app
    from config import Config

    return create_app(Config.from_env(CLOSED_PORTS))
