"""The Flask application factory."""
import logging

from flask import Flask

from config import ROOT, Config


def create_app(config: Config | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config.from_object(config)
    app.json.sort_keys = False
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from app import models  # noqa: F401  (tables for Alembic)
    from app.errors import register_error_handlers
    from app.extensions import api, db, jwt, limiter, migrate, redis_client

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    redis_client.init_app(app)
    jwt.init_app(app)
    app.config.setdefault("RATELIMIT_STORAGE_URI", config.REDIS_URL)
    limiter.init_app(app)
    api.init_app(app)
    register_error_handlers(app)

    from app.health.routes import blp as health_blp

    for blueprint in (health_blp,):
        api.register_blueprint(blueprint, url_prefix="/api/v1")
    return app
