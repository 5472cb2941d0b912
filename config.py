"""All settings, read from the environment in one place.

The API, the Celery workers and the poller all build their settings with `Config.from_env()`,
so one set of environment variables configures every process.
"""
import os
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("DATA_DIR", ROOT / ".data")).resolve()


def sqlalchemy_url(url: str) -> str:
    """Accept Heroku-style `postgres://` URLs and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def development_jwt_secret() -> str:
    """A secret generated once into ./.data/ so sessions survive restarts in development."""
    path = DATA_DIR / "jwt_secret"
    if not path.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


@dataclass(frozen=True)
class Config:
    APP_ENV: str
    SQLALCHEMY_DATABASE_URI: str
    REDIS_URL: str
    JWT_SECRET_KEY: str
    BACKPACK_WS_URL: str
    BACKPACK_MARKETS: tuple[str, ...]
    PUBLIC_URL: str
    SMTP_URL: str | None
    MAIL_FROM: str
    PRICE_MAX_AGE_S: int
    TRADE_WAIT_S: float
    LIQUIDATION_RATIO: Decimal
    STARTING_BALANCE: int
    PENDING_SWEEP_AFTER_S: int
    BROKER_VISIBILITY_TIMEOUT_S: int
    FEED_SILENCE_S: float
    AUTH_RATE_LIMIT_IP: str
    AUTH_RATE_LIMIT_EMAIL: str
    JWT_COOKIE_SECURE: bool
    JWT_ACCESS_TOKEN_EXPIRES: timedelta
    TRUSTED_PROXIES: int
    SQLALCHEMY_ENGINE_OPTIONS: dict = field(default_factory=lambda: {"pool_pre_ping": True})
    JWT_TOKEN_LOCATION: tuple[str, ...] = ("headers", "cookies")
    JWT_COOKIE_CSRF_PROTECT: bool = True
    RATELIMIT_SWALLOW_ERRORS: bool = True  # limits fail open while Redis is down
    JWT_COOKIE_SAMESITE: str = "Lax"
    JWT_ERROR_MESSAGE_KEY: str = "message"
    API_TITLE: str = "Paper trading API"
    API_VERSION: str = "v1"
    OPENAPI_VERSION: str = "3.0.3"
    OPENAPI_URL_PREFIX: str = "/"
    OPENAPI_JSON_PATH: str = "openapi.json"
    OPENAPI_SWAGGER_UI_PATH: str = "/docs"
    OPENAPI_SWAGGER_UI_URL: str = "https://cdn.jsdelivr.net/npm/swagger-ui-dist/"
    PROPAGATE_EXCEPTIONS: bool = False

    @classmethod
    def from_env(cls, **overrides) -> "Config":
        app_env = _env("APP_ENV", "development")
        jwt_secret = _env("JWT_SECRET_KEY")
        if jwt_secret is None:
            if app_env == "production":
                raise RuntimeError("JWT_SECRET_KEY must be set in production")
            jwt_secret = development_jwt_secret()
        database_url = _env("DATABASE_URL")
        redis_url = _env("REDIS_URL")
        if database_url is None or redis_url is None:
            raise RuntimeError(
                "DATABASE_URL and REDIS_URL must be set; run through `python devstack.py exec -- ...` "
                "(what `make run` and `make test` do) to start the embedded servers"
            )
        port = _env("PORT", "8000")
        settings = dict(
            APP_ENV=app_env,
            SQLALCHEMY_DATABASE_URI=sqlalchemy_url(database_url),
            REDIS_URL=redis_url,
            JWT_SECRET_KEY=jwt_secret,
            BACKPACK_WS_URL=_env("BACKPACK_WS_URL", "wss://ws.backpack.exchange"),
            BACKPACK_MARKETS=tuple(
                m.strip() for m in _env("BACKPACK_MARKETS", "SOL_USDC,BTC_USDC,ETH_USDC").split(",") if m.strip()
            ),
            PUBLIC_URL=_env("PUBLIC_URL", f"http://localhost:{port}").rstrip("/"),
            SMTP_URL=_env("SMTP_URL"),
            MAIL_FROM=_env("MAIL_FROM", "Paper Trading <no-reply@localhost>"),
            PRICE_MAX_AGE_S=int(_env("PRICE_MAX_AGE_S", "10")),
            TRADE_WAIT_S=float(_env("TRADE_WAIT_S", "5")),
            LIQUIDATION_RATIO=Decimal(_env("LIQUIDATION_RATIO", "0.9")),
            STARTING_BALANCE=int(_env("STARTING_BALANCE", "500000")),
            PENDING_SWEEP_AFTER_S=int(_env("PENDING_SWEEP_AFTER_S", "15")),
            BROKER_VISIBILITY_TIMEOUT_S=int(_env("BROKER_VISIBILITY_TIMEOUT_S", "60")),
            FEED_SILENCE_S=float(_env("FEED_SILENCE_S", "20")),
            AUTH_RATE_LIMIT_IP=_env("AUTH_RATE_LIMIT_IP", "30/minute"),
            AUTH_RATE_LIMIT_EMAIL=_env("AUTH_RATE_LIMIT_EMAIL", "5/minute"),
            JWT_COOKIE_SECURE=_env("JWT_COOKIE_SECURE", "1" if app_env == "production" else "0") == "1",
            JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=int(_env("JWT_ACCESS_TOKEN_EXPIRES_S", "86400"))),
            TRUSTED_PROXIES=int(_env("TRUSTED_PROXIES", "0")),
        )
        settings.update(overrides)
        return cls(**settings)
