"""A failed plan is tried again once the data it lacked lands, while the event is still ahead.

The first-start case: an instruction for 18:00-18:30 UTC arrives at 17:00, before the fleet's first
pull. No battery has a SoC, so the plan sends nothing, plan_exists fails and the dispatch run is red.
When today's interval_telemetry is rebuilt with SoC rows, replan_sensor asks for one more dispatch
run, and that plan gives the batteries setpoints. It asks nothing for another day's rebuild, for an
event whose run succeeded, whose commands went out, or that starts within the command lead.
"""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg
import pandas as pd
import pytest

from der_assets.defs.dispatch.assets import dispatch_plan, instructions
from der_assets.defs.dispatch.replan import replan_sensor
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.dispatch.contract import parse_instruction
from der_assets.dispatch.intake.store import record_instruction
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.service import ScaledClock
from der_assets.warehouse.bulk import bulk_insert
from der_assets.warehouse.schema import dispatch_commands, interval_telemetry

KEY = "EVT-FIRST-START"
NOW = pd.Timestamp("2026-07-15T17:00Z")
TODAY = "2026-07-15"


@pytest.fixture(scope="module")
def dispatch_job():
    import der_assets.definitions

    return der_assets.definitions.defs().resolve_job_def("dispatch")


@pytest.fixture
def platform(engine, warehouse_url, tmp_path, monkeypatch):
    fleet = demo_fleet(6)
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    record_instruction(engine, parse_instruction({
        "instruction_id": KEY, "modification": 0, "iso": "PJM", "resource_id": "AGG-1",
        "issued_at": "2026-07-15T16:58:00Z", "start": "2026-07-15T18:00:00Z", "end": "2026-07-15T18:30:00Z",
        "interval_minutes": 5, "target_kw": 6}), channel="http", raw=b"{}",
        received_at=dt.datetime(2026, 7, 15, 16, 59, tzinfo=dt.UTC))
    ready = tmp_path / "ready.json"  # the platform clock stands at 17:00 (a thousandth of wall speed)
    ready.write_text(json.dumps({"clock": ScaledClock(NOW, 1e-3).describe()}))
    monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
    monkeypatch.setenv("DER_CLOCK", "twin")
    monkeypatch.setenv("DER_WAREHOUSE_URL", warehouse_url)
    monkeypatch.delenv("DER_DISPATCH_LEAD_S", raising=False)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(instructions.name, [KEY])
    resources = {"warehouse": WarehouseResource(url=warehouse_url), "clock": ClockResource(follow_twin=True)}
    return engine, fleet, instance, resources, ready


def _rebuilt(instance, day: str) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization("interval_telemetry", partition=day))


def _tick(instance, resources, cursor=None):
    return replan_sensor(dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor))


def _land_soc(engine, fleet: pd.DataFrame, soc_pct: float) -> list[str]:
    batteries = fleet[fleet["device_type"] == "battery"]
    rows = pd.DataFrame({"site_id": batteries["site_id"].to_numpy(), "device_id": batteries["device_id"].to_numpy(),
                         "source": batteries["telemetry_source"].to_numpy(), "channel": "soc_pct",
                         "interval_start": NOW - pd.Timedelta(minutes=15), "interval_s": 900, "value": soc_pct,
                         "quality": "measured", "received_at": NOW - pd.Timedelta(minutes=5), "revision": 0})
    with engine.begin() as conn:
        bulk_insert(conn, interval_telemetry, rows)
    return sorted(rows["device_id"])


def test_a_failed_plan_is_tried_again_when_todays_soc_lands(platform, dispatch_job):
    engine, fleet, instance, resources, _ = platform
    failed = dispatch_job.execute_in_process(partition_key=KEY, instance=instance, raise_on_error=False)
    assert not failed.success  # no SoC anywhere: nothing to send, plan_exists fails the run

    _rebuilt(instance, "2026-07-14")  # yesterday's rebuild says nothing about the SoC now
    quiet = _tick(instance, resources)
    assert not quiet.run_requests and "2026-07-15" in quiet.skip_reason.skip_message

    batteries = _land_soc(engine, fleet, 80.0)
    _rebuilt(instance, TODAY)
    fired = _tick(instance, resources, quiet.cursor)
    assert [r.partition_key for r in fired.run_requests] == [KEY]
    request = fired.run_requests[0]
    assert request.run_key.startswith(f"{KEY}:0:replan:") and request.tags["dagster/priority"] == "10"
    # the same rebuild is not tried twice
    assert not _tick(instance, resources, fired.cursor).run_requests

    # with the SoC in (80 % everywhere), the plan gives batteries discharge setpoints for the 6 kW
    result = dg.materialize([dispatch_plan], partition_key=KEY, instance=instance, resources=resources,
                            raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["plan_exists"].passed
    assert 0 < checks["plan_exists"].metadata["batteries_discharging"].value <= len(batteries) == 6
    assert checks["plan_exists"].metadata["planned_kwh"].value == pytest.approx(3.0, abs=1e-6)  # 6 kW x 0.5 h


def test_no_replan_once_commands_went_out_or_the_event_is_too_close(platform, dispatch_job):
    engine, fleet, instance, resources, ready = platform
    assert not dispatch_job.execute_in_process(partition_key=KEY, instance=instance, raise_on_error=False).success
    # inside the 60 s command lead before 18:00 a new plan could not reach the first interval
    ready.write_text(json.dumps({"clock": ScaledClock(pd.Timestamp("2026-07-15T17:59:30Z"), 1e-3).describe()}))
    _rebuilt(instance, TODAY)
    late = _tick(instance, resources)
    assert not late.run_requests and late.skip_reason.skip_message == "no future event waits on a failed plan"

    ready.write_text(json.dumps({"clock": ScaledClock(NOW, 1e-3).describe()}))
    with engine.begin() as conn:  # a command of this modification went out: the command step re-plans, not us
        bulk_insert(conn, dispatch_commands, pd.DataFrame([{
            "instruction_id": KEY, "modification": 0, "battery_id": "X-BAT", "site_id": "X", "source": "enphase",
            "setpoint_kw": 1.0, "ok": True, "detail": None, "sent_at": NOW.to_pydatetime()}]))
    _rebuilt(instance, TODAY)
    assert not _tick(instance, resources, late.cursor).run_requests
