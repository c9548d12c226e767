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
