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


class ClockResource(dg.ConfigurableResource):
    """The platform's clock: the wall clock, or the fleet twin's when it replays faster (DER_CLOCK=twin).

    Pulls ask vendors for data up to "now" and dispatch carries events out in real time, so both
    must agree with the fleet about what time it is. in_process names a SteppedClock registered in
    this process (der_assets.dispatch.clock.registered_clock): a test drives the twin and dispatch
    on it, so nothing races the wall; production leaves it unset.
    """

    follow_twin: bool | None = None
    in_process: str | None = None

    def clock(self):
        import os

        from der_assets.connectors.settings import read_ready_file
        from der_assets.dispatch.clock import DispatchClock, in_process_clock

        if self.in_process is not None:
            return in_process_clock(self.in_process)
        follow = self.follow_twin if self.follow_twin is not None else os.environ.get("DER_CLOCK") == "twin"
        return DispatchClock.from_ready(read_ready_file() or {}) if follow else DispatchClock.wall()


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"warehouse": WarehouseResource(), "clock": ClockResource()})
