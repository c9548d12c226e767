"""Resources, configured from the environment (DER_WAREHOUSE_URL, DER_HOME)."""

from __future__ import annotations

import dagster as dg
from sqlalchemy.engine import Engine

from der_assets import config


class WarehouseResource(dg.ConfigurableResource):
    """The SQLAlchemy warehouse. With no url, DER_WAREHOUSE_URL or the SQLite default is used."""

    url: str | None = None

    def resolved_url(self) -> str:
        return self.url or config.warehouse_url()

    def engine(self) -> Engine:
        from der_assets.warehouse import connect_warehouse

        return connect_warehouse(self.resolved_url())

    def dialect(self) -> str:
        return "postgres" if self.resolved_url().startswith("postgres") else "sqlite"


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"warehouse": WarehouseResource()})
