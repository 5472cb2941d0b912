"""The trading terminal: one HTML page, its scripts and styles served as files (no build step)."""

from flask import Blueprint, current_app, render_template

from core.assets import SEED_ASSETS
from core.candles import INTERVALS_S

blp = Blueprint("web", __name__)


@blp.get("/")
def terminal():
    return render_template(
        "terminal.html",
        assets=list(SEED_ASSETS.values()),
        intervals=INTERVALS_S,
        mail_is_logged=not current_app.config["SMTP_URL"],
    )
