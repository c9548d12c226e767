"""Checks that used to pass unseen: GX on every interval_telemetry run, and an ISO export with no sites."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

from der_assets.connectors.landing import land
from der_assets.defs.resources import ClockResource, WarehouseResource
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
                            resources={"warehouse": WarehouseResource(url=warehouse_url), "clock": ClockResource()})
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["quarantined_payloads"].passed  # blocking, ERROR: this is what skipped the separate GX op
    gx = checks["operator_rules_gx"]
    assert gx.severity == dg.AssetCheckSeverity.WARN and gx.metadata["sources_validated"].value >= 1
    assert "data_docs" in gx.metadata


def _export(warehouse_url, iso: str):
    from der_assets.defs.registry.assets import enrollment_package

    result = dg.materialize([enrollment_package], partition_key=iso, instance=dg.DagsterInstance.ephemeral(),
                            resources={"warehouse": WarehouseResource(url=warehouse_url)})
    [check] = result.get_asset_check_evaluations()
    return check


def test_an_empty_iso_export_never_passes_silently(engine, warehouse_url, tmp_path):
    fleet = demo_fleet(3)  # PJM sites only
    isone = sorted(fleet["site_id"].unique())[0]
    fleet.loc[fleet.site_id == isone, ["iso", "zone", "site_status"]] = ["ISONE", "NEMA", "retired"]
    fleet.loc[fleet.site_id == isone, "timezone"] = "America/New_York"
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))

    check = _export(warehouse_url, "ISONE")
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert check.description == ("no sites enrolled for ISO-NE: the registry's 1 ISO-NE site(s) are all retired "
                                 "(1 retired)")
    assert check.metadata["sites_exported"].value == 0
    check = _export(warehouse_url, "NYISO")
    assert check.passed and check.description == ("no sites enrolled for NYISO: the registry has no NYISO site, "
                                                   "so the export is empty by design")
    check = _export(warehouse_url, "PJM")
    assert check.passed and check.description == "2 site(s) enrolled for PJM"


def test_the_export_refreshes_when_the_registry_changes():
    from der_assets.defs.registry.assets import asset_registry, enrollment_package

    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(assets=[asset_registry, enrollment_package, dg.AssetSpec(
        "capacity_estimate", partitions_def=dg.MultiPartitionsDefinition({
            "iso": dg.StaticPartitionsDefinition(["ISONE", "NYISO", "PJM"]),
            "delivery_year": dg.StaticPartitionsDefinition(["2026-2027"])}))],
        resources={"warehouse": WarehouseResource()})
    at = dt.datetime(2026, 7, 16, 10, 0, tzinfo=dt.UTC)
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at)
    quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor,
                                              evaluation_time=at + dt.timedelta(minutes=1))
    assert first.total_requested == quiet.total_requested == 0
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_registry.key))
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor,
                                              evaluation_time=at + dt.timedelta(minutes=2))
    assert after.get_requested_partitions(enrollment_package.key) == {"ISONE", "NYISO", "PJM"}
    for iso in ("ISONE", "NYISO", "PJM"):  # the requested runs
        instance.report_runless_asset_event(dg.AssetMaterialization(enrollment_package.key, partition=iso))
    after = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor,
                                              evaluation_time=at + dt.timedelta(minutes=2, seconds=30))
    assert after.total_requested == 0
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "capacity_estimate", partition=dg.MultiPartitionKey({"iso": "NYISO", "delivery_year": "2026-2027"})))
    later = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=after.cursor,
                                              evaluation_time=at + dt.timedelta(minutes=3))
    assert later.get_requested_partitions(enrollment_package.key) == {"NYISO"}
