"""The Flask application factory."""

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import ROOT, Config
from core import logs


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config.from_object(config)
    if config.TRUSTED_PROXIES:  # behind a router (Heroku: 1), rate limits key on the client's address
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.TRUSTED_PROXIES, x_proto=config.TRUSTED_PROXIES)
    logs.configure(config.LOG_FORMAT)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # a line per plugin, per process

    from app import hardening, identity, models, openapi, tracing  # noqa: F401  (models: tables for Alembic)
    from app.dispatch import celery_init_app
    from app.extensions import api, db, jwt, limiter, migrate, ping_idle_connections, redis_client

    hardening.init_app(app)
    tracing.init_app(app)
    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    redis_client.init_app(app)
    jwt.init_app(app)
    identity.register(jwt)
    app.config.setdefault("RATELIMIT_STORAGE_URI", config.REDIS_URL)
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", config.REDIS_OPTIONS)
    limiter.init_app(app)
    api.init_app(app, spec_kwargs=openapi.spec_plugins())
    openapi.init_api(api)
    celery_init_app(app)

    from app.account.routes import blp as account_blp
    from app.accounts.routes import blp as accounts_blp
    from app.api_keys.routes import blp as api_keys_blp
    from app.assets.routes import blp as assets_blp
    from app.auth.routes import blp as auth_blp
    from app.backpack.routes import blp as backpack_blp
    from app.balances.commands import cli as ledger_cli
    from app.balances.routes import blp as balances_blp
    from app.health.routes import blp as health_blp
    from app.health.routes import probes as probes_blp
    from app.markets.commands import cli as markets_cli
    from app.markets.routes import blp as markets_blp
    from app.netting.routes import blp as netting_blp
    from app.prices.commands import cli as candles_cli
    from app.prices.routes import blp as prices_blp
    from app.streams.routes import blp as streams_blp
    from app.tokens.routes import blp as tokens_blp
    from app.trading.routes import blp as trading_blp
    from app.web.routes import blp as web_blp

    blueprints = (
        auth_blp,
        trading_blp,
        netting_blp,
        balances_blp,
        account_blp,
        accounts_blp,
        assets_blp,
        markets_blp,
        prices_blp,
        streams_blp,
        tokens_blp,
        api_keys_blp,
        health_blp,
    )
    for blueprint in blueprints:
        api.register_blueprint(blueprint, url_prefix="/api/v1")
    api.register_blueprint(probes_blp)
    app.register_blueprint(web_blp)
    app.register_blueprint(backpack_blp)
    app.register_blueprint(ledger_cli)
    app.register_blueprint(candles_cli)
    app.register_blueprint(markets_cli)
    with app.app_context():
        from app.markets.service import register_chosen_perpetuals

        register_chosen_perpetuals()
        db.session.remove()
        db.engine.dispose()  # no pooled connection left for forked workers (Celery's pool) to share
    return app
