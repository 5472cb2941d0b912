import click
from flask import Blueprint

from app.prices.service import backfill
from core.assets import ASSETS

cli = Blueprint("candles", __name__, cli_group="candles")


@cli.cli.command("backfill")
@click.option("--days", type=click.IntRange(1, 365), default=7, show_default=True)
@click.option("--asset", type=click.Choice(list(ASSETS)), multiple=True, help="default: every asset")
@click.option("--pause", type=float, default=2.1, show_default=True, help="seconds between REST requests")
def backfill_command(days: int, asset: tuple[str, ...], pause: float):
    """Load older 1-minute candles from Backpack's REST klines where the service has none."""
    for symbol in asset or ASSETS:
        click.echo(f"{symbol}: {backfill(symbol, days, pause_s=pause)} minutes loaded")
