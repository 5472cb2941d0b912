"""All settings, read from the environment in one place.

The API, the Celery workers and the poller all build their settings with `Config.from_env()`,
so one set of environment variables configures every process. Nothing is read at import time,
and every value is parsed strictly: a malformed one stops the process with the variable's name.
"""

import os
import re
import secrets
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from core.shards import parse_shard_set, process_shards
from core.tasks import DEFAULT_QUEUE, MAIL_ROUTES, SNAPSHOT_EQUITY, SWEEP_MAIL_OUTBOX, SWEEP_STUCK_ORDERS, EngineRouter

ROOT = Path(__file__).resolve().parent
MAX_REQUEST_BYTES = 64 * 1024


class ConfigError(RuntimeError):
    """A missing or malformed setting; the message names the variable."""


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where development servers and generated secrets live: $DATA_DIR or ./.data/."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("DATA_DIR") or ROOT / ".data").resolve()


def libpq_url(url: str) -> str:
    """Accept Heroku-style `postgres://` URLs (psycopg wants `postgresql://`)."""
    return "postgresql://" + url.removeprefix("postgres://") if url.startswith("postgres://") else url


def sqlalchemy_url(url: str) -> str:
    """The same database through SQLAlchemy's psycopg 3 driver."""
    url = libpq_url(url)
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url


def development_secret(directory: Path, name: str) -> str:
    """A secret generated once into `directory`, so it survives restarts in development."""
    path = directory / name
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


class Env:
    """Typed, strict reads of environment variables; empty counts as unset."""

    TRUE = ("1", "true", "yes", "on")
    FALSE = ("0", "false", "no", "off")

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name, "").strip()
        return value if value else default

    def _parse(self, name: str, default, parse, kind: str):
        raw = self.str(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, ArithmeticError):
            raise ConfigError(f"{name}={raw!r} is not {kind}") from None

    def int(self, name: str, default: int, minimum: int = 0) -> int:
        value = self._parse(name, default, int, "an integer")
        if value < minimum:
            raise ConfigError(f"{name}={value} must be at least {minimum}")
        return value

    def float(self, name: str, default: float, minimum: float = 0) -> float:
        value = self._parse(name, default, float, "a number")
        if not value >= minimum:  # also refuses NaN
            raise ConfigError(f"{name}={value} must be at least {minimum}")
        return value

    def decimal(self, name: str, default: str, low: str, high: str) -> Decimal:
        def parse(raw: str) -> Decimal:
            try:
                return Decimal(raw)
            except InvalidOperation:
                raise ValueError(raw) from None

        value = self._parse(name, Decimal(default), parse, "a decimal")
        if not Decimal(low) < value <= Decimal(high):
            raise ConfigError(f"{name}={value} must be above {low} and at most {high}")
        return value

    def bool(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            if raw.lower() in self.TRUE:
                return True
            if raw.lower() in self.FALSE:
                return False
            raise ValueError(raw)

        return self._parse(name, default, parse, f"a boolean ({'/'.join(self.TRUE + self.FALSE)})")

    def rate(self, name: str, default: str) -> str:
        """A rate limit in the `limits` notation ("20/second", "5 per minute")."""
        from limits import parse

        value = self.str(name, default)
        try:
            parse(value)
        except ValueError:
            raise ConfigError(f"{name}={value!r} is not a rate limit like 20/second") from None
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.str(name, default)
        if value not in choices:
            raise ConfigError(f"{name}={value!r} must be one of {', '.join(choices)}")
        return value


def engine_shards(env: Env, shards: int) -> tuple[int, frozenset[int]]:
    """This engine process's index and shard set: ENGINE_SHARD_SET when given, else its share as
    process ENGINE_INDEX (or the platform's dyno number, DYNO=engine.<n>) of ENGINE_PROCESSES."""
    dyno = re.fullmatch(r"engine\.(\d+)", env.str("DYNO", ""))
    index = env.int("ENGINE_INDEX", int(dyno.group(1)) - 1 if dyno else 0)
    processes = env.int("ENGINE_PROCESSES", 1, minimum=1)
    explicit = env.str("ENGINE_SHARD_SET")
    try:
        if explicit is not None:
            return index, parse_shard_set(explicit, shards)
        return index, process_shards(index, processes, shards)
    except ValueError as error:
        raise ConfigError(f"ENGINE_SHARD_SET/ENGINE_INDEX/ENGINE_PROCESSES: {error}") from None


def redis_options(url: str, verify: bool) -> dict:
    """redis-py's TLS options for REDIS_URL, given to every client (app, hub, poller, rate limits).
    A `rediss://` URL verifies the server's certificate unless REDIS_TLS_VERIFY=false: Heroku's
    Redis presents a self-signed one."""
    if not url.startswith("rediss://"):
        return {}
    return {"ssl_cert_reqs": "required" if verify else "none"}


def celery_settings(
    redis_url: str, tls_verify: bool, visibility_timeout_s: int, sweep_every_s: float, directory: Path, shards: int
) -> dict:
    """Celery's configuration (Flask's `CELERY` key, as in Flask's Celery guide)."""
    sweep = {"task": SWEEP_STUCK_ORDERS, "schedule": sweep_every_s}
    sweeps = {f"sweep-stuck-orders-{shard}": {**sweep, "kwargs": {"shard": shard}} for shard in range(shards)}
    tls = {"broker_use_ssl": {"ssl_cert_reqs": ssl.CERT_REQUIRED if tls_verify else ssl.CERT_NONE}}
    return dict(
        broker_url=redis_url,
        **(tls if redis_url.startswith("rediss://") else {}),
        broker_connection_retry_on_startup=True,
        # Redelivers tasks of a killed worker once this many seconds passed without an ack.
        broker_transport_options={"visibility_timeout": visibility_timeout_s},
        task_routes=(EngineRouter(shards), MAIL_ROUTES),
        task_default_queue=DEFAULT_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_send_task_events=True,
        task_send_sent_event=False,  # Flower learns of a task from its worker's events; one publish fewer per send
        beat_schedule={
            **sweeps,
            "sweep-mail-outbox": {"task": SWEEP_MAIL_OUTBOX, "schedule": 10.0},
            "snapshot-equity": {"task": SNAPSHOT_EQUITY, "schedule": 60.0},
        },
        beat_schedule_filename=str(directory / "celerybeat-schedule"),
    )


@dataclass(frozen=True)
class Config:
    # Deploy: where the servers are, who the service is, secrets
    APP_ENV: str
    DATA_DIR: Path
    DATABASE_URL: str
    SQLALCHEMY_DATABASE_URI: str
    REDIS_URL: str
    REDIS_TLS_VERIFY: bool
    REDIS_OPTIONS: dict
    JWT_SECRET_KEY: str
    BACKPACK_WS_URL: str
    BACKPACK_REST_URL: str
    MARKETS: str
    PUBLIC_URL: str
    SMTP_URL: str | None
    MAIL_FROM: str
    LOG_FORMAT: str
    TRUSTED_PROXIES: int
    JWT_COOKIE_SECURE: bool
    JWT_ACCESS_TOKEN_EXPIRES: timedelta
    # Trading rules: what a user may do and what it costs
    STARTING_BALANCE: int
    MAX_ACCOUNTS: int
    LIQUIDATION_RATIO: Decimal
    TAKER_FEE_BPS: int
    MAKER_FEE_BPS: int
    NETTING_TAKER_FEE_BPS: int  # netting accounts' fees: Backpack's VIP0 perpetual fees by default
    NETTING_MAKER_FEE_BPS: int
    MAX_WORKING_ORDERS: int
    ORDER_MAX_DELAY_S: float
    PRICE_MAX_AGE_S: float
    FUNDING_INTERVAL_S: int | None  # overrides every perpetual's fundingInterval (tests, demos)
    AUTH_RATE_LIMIT_IP: str
    AUTH_RATE_LIMIT_EMAIL: str
    TRADE_RATE_LIMIT: str
    BACKPACK_RATE_LIMIT: str  # Backpack paper mode, per account: Backpack's own 2000 a minute
    # Scaling: how the engine's work is split
    ENGINE_SHARDS: int
    ENGINE_INDEX: int
    ENGINE_SHARD_SET: frozenset[int]
    # Tuning: waits, batches and sweeps
    TRADE_WAIT_S: float
    PENDING_SWEEP_AFTER_S: int
    MAIL_SWEEP_AFTER_S: int
    FEED_SILENCE_S: float
    ENGINE_CASCADE_BATCH: int
    ENGINE_ORDER_BATCH: int
    ENGINE_LINGER_MS: int
    FUNDING_BATCH: int
    CELERY: dict
    SQLALCHEMY_ENGINE_OPTIONS: dict
    MAX_CONTENT_LENGTH: int = MAX_REQUEST_BYTES
    # Backpack paper mode's WebSocket pings its clients as Backpack does (flask-sock reads this)
    SOCK_SERVER_OPTIONS: dict = field(default_factory=lambda: {"ping_interval": 60})
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
    OPENAPI_SWAGGER_UI_URL: str = "/static/vendor/swagger-ui/"
    PROPAGATE_EXCEPTIONS: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Config":
        env = Env(os.environ if environ is None else environ)
        directory = data_dir(env.environ)
        app_env = env.choice("APP_ENV", "development", ("development", "test", "production"))
        production = app_env == "production"
        jwt_secret = env.str("JWT_SECRET_KEY")
        if jwt_secret is None:
            if production:
                raise ConfigError("JWT_SECRET_KEY must be set in production")
            jwt_secret = development_secret(directory, "jwt_secret")
        database_url, redis_url = env.str("DATABASE_URL"), env.str("REDIS_URL")
        if database_url is None or redis_url is None:
            raise ConfigError(
                "DATABASE_URL and REDIS_URL must be set; run through `python devstack.py exec -- ...` "
                "(what `make run` and `make test` do) to start the embedded servers"
            )
        port = env.int("PORT", 8000, minimum=1)
        public_url, smtp_url = env.str("PUBLIC_URL"), env.str("SMTP_URL")
        if production and (public_url is None or smtp_url is None):
            raise ConfigError(
                "PUBLIC_URL and SMTP_URL must be set in production: sign-in links would point at localhost "
                "or be written to the log instead of mailed"
            )
        tls_verify = env.bool("REDIS_TLS_VERIFY", True)
        markets = env.str("MARKETS") or env.str("BACKPACK_MARKETS", "default")  # the old name still works
        shards = env.int("ENGINE_SHARDS", 16, minimum=1)
        engine_index, shard_set = engine_shards(env, shards)
        settings = dict(
            # Deploy
            APP_ENV=app_env,
            DATA_DIR=directory,
            DATABASE_URL=libpq_url(database_url),
            SQLALCHEMY_DATABASE_URI=sqlalchemy_url(database_url),
            REDIS_URL=redis_url,
            REDIS_TLS_VERIFY=tls_verify,
            REDIS_OPTIONS=redis_options(redis_url, tls_verify),
            JWT_SECRET_KEY=jwt_secret,
            BACKPACK_WS_URL=env.str("BACKPACK_WS_URL", "wss://ws.backpack.exchange"),
            BACKPACK_REST_URL=env.str("BACKPACK_REST_URL", "https://api.backpack.exchange").rstrip("/"),
            MARKETS=markets,
            PUBLIC_URL=(public_url or f"http://localhost:{port}").rstrip("/"),
            SMTP_URL=smtp_url,
            MAIL_FROM=env.str("MAIL_FROM", "Paper Trading <no-reply@localhost>"),
            LOG_FORMAT=env.choice("LOG_FORMAT", "text", ("text", "json")),
            TRUSTED_PROXIES=env.int("TRUSTED_PROXIES", 0),
            JWT_COOKIE_SECURE=env.bool("JWT_COOKIE_SECURE", production),
            JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=env.int("JWT_ACCESS_TOKEN_EXPIRES_S", 86400, minimum=1)),
            # Trading rules
            STARTING_BALANCE=env.int("STARTING_BALANCE", 500_000),
            MAX_ACCOUNTS=env.int("MAX_ACCOUNTS", 10, minimum=1),
            LIQUIDATION_RATIO=env.decimal("LIQUIDATION_RATIO", "0.9", low="0", high="1"),
            TAKER_FEE_BPS=env.int("TAKER_FEE_BPS", 0),
            MAKER_FEE_BPS=env.int("MAKER_FEE_BPS", 0),
            NETTING_TAKER_FEE_BPS=env.int("NETTING_TAKER_FEE_BPS", 5, minimum=0),
            NETTING_MAKER_FEE_BPS=env.int("NETTING_MAKER_FEE_BPS", 2, minimum=0),
            MAX_WORKING_ORDERS=env.int("MAX_WORKING_ORDERS", 200, minimum=1),
            ORDER_MAX_DELAY_S=env.float("ORDER_MAX_DELAY_S", 30, minimum=1),
            PRICE_MAX_AGE_S=env.float("PRICE_MAX_AGE_S", 10),
            FUNDING_INTERVAL_S=env.int("FUNDING_INTERVAL_S", 0, minimum=1) if env.str("FUNDING_INTERVAL_S") else None,
            AUTH_RATE_LIMIT_IP=env.rate("AUTH_RATE_LIMIT_IP", "30/minute"),
            AUTH_RATE_LIMIT_EMAIL=env.rate("AUTH_RATE_LIMIT_EMAIL", "5/minute"),
            TRADE_RATE_LIMIT=env.rate("TRADE_RATE_LIMIT", "20/second"),
            BACKPACK_RATE_LIMIT=env.rate("BACKPACK_RATE_LIMIT", "2000/minute"),
            # Scaling
            ENGINE_SHARDS=shards,
            ENGINE_INDEX=engine_index,
            ENGINE_SHARD_SET=shard_set,
            # Tuning
            TRADE_WAIT_S=env.float("TRADE_WAIT_S", 5),
            PENDING_SWEEP_AFTER_S=env.int("PENDING_SWEEP_AFTER_S", 15, minimum=1),
            MAIL_SWEEP_AFTER_S=env.int("MAIL_SWEEP_AFTER_S", 30, minimum=1),
            FEED_SILENCE_S=env.float("FEED_SILENCE_S", 20, minimum=0.1),
            ENGINE_CASCADE_BATCH=env.int("ENGINE_CASCADE_BATCH", 500, minimum=1),
            ENGINE_ORDER_BATCH=env.int("ENGINE_ORDER_BATCH", 100, minimum=1),
            ENGINE_LINGER_MS=env.int("ENGINE_LINGER_MS", 20, minimum=0),
            FUNDING_BATCH=env.int("FUNDING_BATCH", 10_000, minimum=1),  # positions per funding transaction
            CELERY=celery_settings(
                redis_url,
                tls_verify,
                visibility_timeout_s=env.int("BROKER_VISIBILITY_TIMEOUT_S", 60, minimum=1),
                sweep_every_s=5.0,
                directory=directory,
                shards=shards,
            ),
            # A gevent web worker serves many requests at once: below its concurrent trades, the
            # pool (default 5) opened and closed a connection for each request beyond it.
            # Connections idle for a while are pinged on checkout (`app.extensions.ping_idle_connections`).
            SQLALCHEMY_ENGINE_OPTIONS={
                "pool_size": env.int("DATABASE_POOL_SIZE", 10, minimum=1),
            },
        )
        settings.update(overrides)
        return cls(**settings)
