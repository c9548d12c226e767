"""`der db`: the warehouse schema."""

from __future__ import annotations

import click

from der_assets import config
from der_assets.cli.base import cli, url_option


@cli.group()
def db() -> None:
    """The warehouse schema."""


@db.command("upgrade")
@url_option
def db_upgrade(url: str | None) -> None:
    """Apply the schema to the warehouse (safe to repeat)."""
    from der_assets.warehouse.engine import make_engine, upgrade

    engine = make_engine(url or config.warehouse_url())
    version = upgrade(engine)
    click.echo(f"warehouse {engine.url.render_as_string(hide_password=True)} at schema version {version}")


@db.command("ddl")
@click.option("--dialect", type=click.Choice(["postgresql", "sqlite"]), default="postgresql")
def db_ddl(dialect: str) -> None:
    """Print the CREATE statements for one dialect (as kept in sql/)."""
    from der_assets.warehouse.engine import render_ddl

    click.echo(render_ddl(dialect), nl=False)
