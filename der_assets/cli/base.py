"""The `der` group and what every domain's commands share."""

from __future__ import annotations

import click

from der_assets import config

url_option = click.option("--url", envvar=config.WAREHOUSE_URL_ENV, default=None,
                          help="Warehouse SQLAlchemy URL (default: $DER_WAREHOUSE_URL, else SQLite in $DER_HOME).")


def engine_for(url: str | None):
    """The warehouse engine for --url, else the configured one."""
    from der_assets.warehouse import connect_warehouse

    return connect_warehouse(url or config.warehouse_url())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """der_assets: run a DER fleet as one ISO capacity resource."""
