"""`der dev`: what `make dev` runs."""

from __future__ import annotations

import json
import sys

import click

from der_assets.cli.base import cli


@cli.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--sites", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--setup-only", is_flag=True, help="Prepare the data home and demo fleet, do not start Dagster.")
@click.option("--no-twin", is_flag=True, help="Do not start the fleet twin beside the UI.")
@click.option("--no-intake", is_flag=True,
              help="Do not start the instruction intake (webhook, inbox watcher, VEN) and the demo VTN.")
def dev(host: str, port: int, sites: int, setup_only: bool, no_twin: bool, no_intake: bool) -> None:
    """Set up the data home and demo fleet, then start the Dagster UI, the fleet twin and the intake."""
    from der_assets.devserver import prepare, run_dagster_dev

    env = prepare(n_sites=sites, echo=lambda m: click.echo(m, err=True))
    if setup_only:
        click.echo(json.dumps({k: env[k] for k in sorted(env) if k.startswith(("DER_", "DAGSTER_"))}, indent=1))
        return
    sys.exit(run_dagster_dev(env, host=host, port=port, twin=not no_twin, intake=not no_intake,
                             echo=lambda m: click.echo(m, err=True)))
