"""Settings are parsed strictly: junk stops the process with the variable's name."""

from decimal import Decimal

import pytest

from config import Config, ConfigError

BASE = {"DATABASE_URL": "postgres://u@h/db", "REDIS_URL": "redis://h:1/0", "JWT_SECRET_KEY": "k" * 40}
PRODUCTION = {"APP_ENV": "production", "PUBLIC_URL": "https://paper.example", "SMTP_URL": "smtp://mail.example:587"}


def config(**env) -> Config:
    return Config.from_env({**BASE, **env})


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("1", True), ("YES", True), ("false", False), ("0", False), ("off", False), ("", False)],
)
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert config(JWT_COOKIE_SECURE=raw).JWT_COOKIE_SECURE is expected


@pytest.mark.parametrize(
    "name, raw",
    [
        ("JWT_COOKIE_SECURE", "treu"),
        ("PRICE_MAX_AGE_S", "ten"),
        ("PRICE_MAX_AGE_S", "nan"),
        ("PRICE_MAX_AGE_S", "-1"),
        ("TRADE_WAIT_S", "5s"),
        ("LIQUIDATION_RATIO", "abc"),
        ("LIQUIDATION_RATIO", "1.5"),
        ("LIQUIDATION_RATIO", "0"),
        ("STARTING_BALANCE", "5000.00"),
        ("PENDING_SWEEP_AFTER_S", "0"),
        ("TRUSTED_PROXIES", "one"),
        ("APP_ENV", "staging"),
        ("PORT", "http"),
        ("TRADE_RATE_LIMIT", "fast"),
        ("AUTH_RATE_LIMIT_IP", "30/fortnight"),
    ],
)
def test_junk_is_refused_with_the_variables_name(name, raw):
    with pytest.raises(ConfigError, match=name):
        config(**{name: raw})


def test_defaults_and_conversions():
    settings = config()
    assert settings.LIQUIDATION_RATIO == Decimal("0.9") and settings.PRICE_MAX_AGE_S == 10
    assert settings.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://u@h/db"
    assert settings.JWT_COOKIE_SECURE is False and config(**PRODUCTION).JWT_COOKIE_SECURE is True
    assert settings.CELERY["task_default_queue"] == "default"  # never the engine's queue
    assert settings.MAX_CONTENT_LENGTH == 64 * 1024


def test_production_needs_a_secret_and_every_process_needs_its_servers():
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        Config.from_env({**BASE, "JWT_SECRET_KEY": "", "APP_ENV": "production"})
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        Config.from_env({"REDIS_URL": "redis://h/0", "JWT_SECRET_KEY": "k" * 40})


@pytest.mark.parametrize("missing", ["PUBLIC_URL", "SMTP_URL"])
def test_production_refuses_to_start_without_its_public_url_and_mail_server(missing):
    with pytest.raises(ConfigError, match=missing):
        config(**{**PRODUCTION, missing: ""})
    assert config(**{**PRODUCTION, "APP_ENV": "development", missing: ""}).APP_ENV == "development"


def test_rediss_verifies_its_certificate_unless_told_not_to_for_every_client():
    import ssl

    plain = config()
    assert plain.REDIS_OPTIONS == {} and "broker_use_ssl" not in plain.CELERY
    verified = config(REDIS_URL="rediss://h:1/0")
    assert verified.REDIS_OPTIONS == {"ssl_cert_reqs": "required"}
    assert verified.CELERY["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    unverified = config(REDIS_URL="rediss://h:1/0", REDIS_TLS_VERIFY="false")
    assert unverified.REDIS_OPTIONS == {"ssl_cert_reqs": "none"}
    assert unverified.CELERY["broker_use_ssl"] == {"ssl_cert_reqs": ssl.CERT_NONE}
