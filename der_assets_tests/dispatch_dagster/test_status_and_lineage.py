"""Honest status and lineage for dispatch: declared dependencies are the data flow, nothing
materializes a dispatch asset without an instruction, and a plan with nothing in it fails the run
(a blocking ERROR check) instead of showing a green success."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from der_assets.defs.dispatch.assets import device_commands, dispatch_plan, instructions
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.dispatch.contract import parse_instruction
from der_assets.dispatch.intake.store import record_instruction
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file

DISPATCH = ["dispatch_plan", "device_commands", "event_performance", "metered_performance"]


@pytest.fixture(scope="module")
def defs():
    import der_assets.definitions

    return der_assets.definitions.defs()


def test_the_lineage_is_the_data_flow(defs):
    graph = defs.resolve_asset_graph()

    def parents(name):
        return {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("dispatch_plan") == {"asset_registry", "interval_telemetry"}
    assert parents("device_commands") == {"dispatch_plan", "asset_registry"}
    assert parents("event_performance") == {"device_commands", "interval_telemetry"}
    assert parents("metered_performance") == {"event_performance", "meter_intervals"}
    plan = graph.get(dg.AssetKey("dispatch_plan")).assets_def
    measure = graph.get(dg.AssetKey("event_performance")).assets_def
    # instructions are dynamic, days are time windows: the plan reads the latest day, a measurement any day
    assert isinstance(plan.get_partition_mapping(dg.AssetKey("interval_telemetry")), dg.LastPartitionMapping)
    assert isinstance(measure.get_partition_mapping(dg.AssetKey("interval_telemetry")), dg.AllPartitionMapping)


def test_nothing_materializes_dispatch_without_an_instruction(defs):
    graph = defs.resolve_asset_graph()
    for name in DISPATCH:
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def == instructions, name
        assert node.automation_condition is None, name
    for schedule in defs.schedules or []:
        job = defs.resolve_job_def(schedule.job_name)
        assert not set(job.asset_layer.selected_asset_keys) & {dg.AssetKey(n) for n in DISPATCH}, schedule.name
    instance = dg.DagsterInstance.ephemeral()
    assert instance.get_dynamic_partitions(instructions.name) == []


def _instruction(engine, key: str) -> None:
    record_instruction(engine, parse_instruction({
        "instruction_id": key, "modification": 0, "iso": "PJM", "resource_id": "AGG-1",
        "issued_at": "2026-07-15T17:40:00Z", "start": "2026-07-15T18:00:00Z", "end": "2026-07-15T18:30:00Z",
        "interval_minutes": 5, "target_kw": 20}), channel="http", raw=b"{}",
        received_at=dt.datetime(2026, 7, 15, 17, 41, tzinfo=dt.UTC))


def test_a_plan_with_nothing_to_send_fails_the_run(engine, warehouse_url, tmp_path):
    # no telemetry at all: every battery's SoC is unknown, so each is planned at its reserve floor
    import_registry_file(engine, write_registry_file(demo_fleet(6), tmp_path / "fleet.csv"))
    _instruction(engine, "EVT-EMPTY")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(instructions.name, ["EVT-EMPTY"])
    result = dg.materialize([dispatch_plan, device_commands], partition_key="EVT-EMPTY", instance=instance,
                            resources={"warehouse": WarehouseResource(url=warehouse_url),
                                       "clock": ClockResource(follow_twin=False)}, raise_on_error=False)
    assert not result.success  # red, not a green "Success"
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["plan_exists"].passed and checks["plan_exists"].severity == dg.AssetCheckSeverity.ERROR
    assert checks["plan_exists"].metadata["batteries_discharging"].value == 0
    assert checks["plan_meets_target"].severity == dg.AssetCheckSeverity.WARN  # a shortfall alone is a warning
    failed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    ran = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert failed == {"dispatch_plan"} and "device_commands" not in ran  # no command went out


def test_commands_no_battery_acknowledged_fail_the_run(engine, warehouse_url, tmp_path, monkeypatch):
    """Every vendor's control path is down (a closed loopback port): nothing was carried out, so the run is red."""
    import json

    import pandas as pd

    from der_assets.dispatch.intake.store import latest
    from der_assets.warehouse.bulk import bulk_insert
    from der_assets.warehouse.schema import dispatch_plans

    from der_assets.dispatch.clock import SteppedClock, registered_clock
    from der_assets.simulator.hub import ManualClock
    from der_assets.simulator.service import make_credentials

    fleet = demo_fleet(6)
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    record_instruction(engine, parse_instruction({
        "instruction_id": "EVT-DOWN", "modification": 0, "iso": "PJM", "resource_id": "AGG-1",
        "issued_at": "2026-07-15T17:40:00Z", "start": "2026-07-15T18:00:00Z", "end": "2026-07-15T18:10:00Z",
        "interval_minutes": 5, "target_kw": 4}), channel="http", raw=b"{}",
        received_at=dt.datetime(2026, 7, 15, 17, 41, tzinfo=dt.UTC))
    batteries = fleet.loc[(fleet.device_type == "battery") & (fleet.telemetry_source == "sonnen"), "device_id"]
    starts = pd.date_range("2026-07-15T18:00Z", periods=2, freq="5min")
    with engine.begin() as conn:
        bulk_insert(conn, dispatch_plans, pd.DataFrame([
            {"instruction_id": "EVT-DOWN", "modification": 0, "battery_id": b, "interval_start": t,
             "setpoint_kw": 4.0 / len(batteries), "soc_end_kwh": 5.0} for b in batteries for t in starts]))
    closed = "http://127.0.0.1:9"
    # the platform clock two hours before the event, moved only by the run's own sleeps (a stepped
    # clock): the run starts before the event however slow the machine is
    ready = tmp_path / "ready.json"
    ready.write_text(json.dumps({"http": {v: closed for v in ("solaredge", "enphase", "sma", "sonnen", "fronius")},
                                 "credentials": make_credentials(0), "sunspec": []}))
    monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(instructions.name, ["EVT-DOWN"])
    assert latest(engine, "EVT-DOWN").status == "active"
    with registered_clock("status", SteppedClock(ManualClock(pd.Timestamp("2026-07-15T16:00Z")))):
        result = dg.materialize([device_commands], partition_key="EVT-DOWN", instance=instance, raise_on_error=False,
                                resources={"warehouse": WarehouseResource(url=warehouse_url),
                                           "clock": ClockResource(in_process="status")})
    assert not result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["commands_reached_fleet"].passed
    assert checks["commands_reached_fleet"].severity == dg.AssetCheckSeverity.ERROR
    assert checks["commands_reached_fleet"].metadata["failed_batteries"].value == len(batteries) == 3
    assert not checks["all_batteries_acknowledged"].passed
    assert checks["all_batteries_acknowledged"].severity == dg.AssetCheckSeverity.WARN
    log = result.asset_materializations_for_node("device_commands")[0].metadata["event_log"].value
    first = log.records[0].data
    assert (first["setpoints_sent"], first["acknowledged"], first["failed"]) == (3, 0, 3)
    assert first["failed_batteries"] == ", ".join(sorted(batteries))
