"""Checks that used to pass unseen: GX on every interval_telemetry run, and an ISO export with no sites."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from der_assets.connectors.landing import land
from der_assets.defs.resources import WarehouseResource
from der_assets.defs.telemetry.assets import interval_telemetry
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file

DAY = "2026-07-15"


def test_gx_is_evaluated_even_when_a_blocking_check_fails(engine, warehouse_url, tmp_path):
    fleet = demo_fleet(4)
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    site = fleet.loc[fleet.telemetry_source == "solaredge", "site_id"].iloc[0]
    start = dt.datetime(2026, 7, 15, tzinfo=dt.UTC)
    land(engine, b'{"energyDetails": {"meters": [', source="solaredge", endpoint="energyDetails", site_id=site,
         received_at=start + dt.timedelta(days=1), window_start=start, window_end=start + dt.timedelta(days=1))
    result = dg.materialize([interval_telemetry], partition_key=DAY, raise_on_error=False,
                            instance=dg.DagsterInstance.ephemeral(),
                            resources={"warehouse": WarehouseResource(url=warehouse_url)})
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["quarantined_payloads"].passed  # blocking, ERROR: this is what skipped the separate GX op
    gx = checks["operator_rules_gx"]
    assert gx.severity == dg.AssetCheckSeverity.WARN and gx.metadata["sources_validated"].value >= 1
    assert "data_docs" in gx.metadata
