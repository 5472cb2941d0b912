import click
from flask import Blueprint

from app.balances.service import ledger_mismatches

cli = Blueprint("ledger", __name__, cli_group=None)


@cli.cli.command("ledger-check")
def ledger_check():
    """Prove that every balance equals the sum of its ledger entries (exit 1 if not)."""
    mismatches = ledger_mismatches()
    for row in mismatches:
        click.echo(f"MISMATCH {row}", err=True)
    if mismatches:
        raise SystemExit(1)
    click.echo("ledger ok: every balance equals the sum of its ledger entries")
