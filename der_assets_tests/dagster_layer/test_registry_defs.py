"""The Dagster shell around the registry: assets, checks, sensor, on SQLite and PostgreSQL."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

from der_assets.defs.registry.assets import asset_registry, enrollment_package, registry_import_sensor
from der_assets.defs.registry.checks import registry_completeness
from der_assets.defs.resources import WarehouseResource
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file

RULES = {"meter_point_present", "edc_account_present", "unique_device_serials",
         "plausible_battery_ratings", "valid_time_zones", "enrollment_fields_present"}


def test_definitions_load():
    from der_assets.definitions import defs

    d = defs()
    graph = d.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} >= {"asset_registry", "enrollment_package"}
    assert {k.name for k in graph.asset_check_keys if k.asset_key == dg.AssetKey("asset_registry")} == RULES
    assert d.resolve_job_def("registry_refresh") is not None
    assert d.resolve_sensor_def("registry_import_sensor").default_status == dg.DefaultSensorStatus.RUNNING


def _load(engine, tmp_path, fleet: pd.DataFrame) -> None:
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))


def test_materialize_with_passing_checks(engine, warehouse_url, tmp_path):
    _load(engine, tmp_path, demo_fleet(200))
    result = dg.materialize([asset_registry, registry_completeness],
                            resources={"warehouse": WarehouseResource(url=warehouse_url)})
    assert result.success
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert metadata["sites"].value == 200
    assert metadata["devices"].value == 400
    assert metadata["battery_kwh"].value == 4000.0  # 200 batteries x 20 kWh
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == RULES
    assert all(e.passed for e in evaluations.values())


def test_failing_check_carries_a_table_of_failures(engine, warehouse_url, tmp_path):
    fleet = demo_fleet(5)
    missing = sorted(fleet["site_id"].unique())[:2]
    fleet.loc[fleet.site_id.isin(missing), "edc_account"] = None
    _load(engine, tmp_path, fleet)
    result = dg.materialize([asset_registry, registry_completeness],
                            resources={"warehouse": WarehouseResource(url=warehouse_url)})
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    failing = evaluations["edc_account_present"]
    assert not failing.passed
    assert failing.severity == dg.AssetCheckSeverity.WARN
    assert failing.metadata["num_problems"].value == 2
    rows = failing.metadata["problems"].value.records
    assert [r.data["key"] for r in rows] == missing
    assert all(e.passed for name, e in evaluations.items() if name != "edc_account_present")


def test_enrollment_package_writes_the_pjm_inventory(engine, warehouse_url, tmp_path, isolated_home):
    _load(engine, tmp_path, demo_fleet(30))
    result = dg.materialize([asset_registry, enrollment_package], partition_key="PJM",
                            resources={"warehouse": WarehouseResource(url=warehouse_url)},
                            selection=[enrollment_package])
    assert result.success
    written = pd.read_csv(isolated_home / "exports" / "enrollment_pjm.csv")
    assert len(written) == 30
    assert written["battery_kwh"].sum() == 600.0


def test_sensor_fires_once_per_import(engine, warehouse_url, tmp_path):
    resources = {"warehouse": WarehouseResource(url=warehouse_url)}
    with dg.instance_for_test() as instance:
        skip = registry_import_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(skip, dg.SkipReason)
        _load(engine, tmp_path, demo_fleet(3))
        fired = registry_import_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.run_key for r in fired.run_requests] == ["registry-import-1"]
        assert fired.cursor == "1"
        again = registry_import_sensor(dg.build_sensor_context(instance=instance, cursor="1", resources=resources))
        assert isinstance(again, dg.SkipReason)
