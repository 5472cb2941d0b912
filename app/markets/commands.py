import click
from flask import Blueprint, current_app

from app.markets import service
from core.markets import CatalogError

cli = Blueprint("markets_cli", __name__, cli_group="markets")


@cli.cli.command("sync")
@click.option("--rest-url", help="default: BACKPACK_REST_URL")
def sync_command(rest_url: str | None):
    """Load Backpack's markets and assets into the catalog. An unreachable Backpack keeps the
    catalog as it is (a warning, exit 0: a release must not fail for it); a malformed market
    writes nothing and fails."""
    url = rest_url or current_app.config["BACKPACK_REST_URL"]
    try:
        report = service.sync(url)
    except service.CatalogUnavailable as error:
        click.echo(f"markets sync: Backpack unreachable, catalog unchanged ({error})", err=True)
        return
    except CatalogError as error:
        raise click.ClickException(f"markets sync: {error}; catalog unchanged") from None
    click.echo(f"markets sync: {report.markets} markets, {report.assets} assets from {url}")
