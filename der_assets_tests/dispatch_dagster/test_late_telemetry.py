"""Delivery measured when its data is in: event_performance is provisional while the event's battery
telemetry is still arriving, final (and right) once it covers the event, alerts only on the final
figure and only once, and event_telemetry_sensor re-runs it as days of interval_telemetry land.

The event: 18:00-18:30 UTC, 6 kW in 5-minute intervals (0.5 kWh each, 3.0 kWh in all). Battery A
discharges 4 kW, reported in 5-minute rows (1/3 kWh each); battery B 1.4 kW, reported in
15-minute buckets (0.35 kWh each, 0.35/3 kWh per interval). Together 0.45 kWh an interval: 90 %.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from der_assets.defs.alerts.sensors import check_failure_alerts
from der_assets.defs.dispatch.assets import event_performance, event_telemetry_sensor, instructions
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.dispatch.contract import parse_instruction
from der_assets.dispatch.intake.store import record_instruction
from der_assets.simulator.servers.runner import serving
from der_assets.warehouse.bulk import bulk_insert
from der_assets.warehouse.schema import dispatch_commands, dispatch_plans, interval_telemetry
from der_assets.warehouse.schema import event_performance as performance_table

START = pd.Timestamp("2026-07-15T18:00Z")
END = START + pd.Timedelta(minutes=30)
KEY = "EVT-LATE"


def _receiver(received: list):
    async def hook(request: Request):
        received.append(await request.json())
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def _rows(device: str, site: str, starts, interval_s: int, kwh: float, received_at: pd.Timestamp) -> pd.DataFrame:
    return pd.DataFrame({"site_id": site, "device_id": device, "source": "enphase", "channel": "battery_kwh",
                         "interval_start": pd.DatetimeIndex(starts), "interval_s": interval_s, "value": kwh,
                         "quality": "measured", "received_at": received_at, "revision": 0})


def _seed(engine):
    record_instruction(engine, parse_instruction({
        "instruction_id": KEY, "modification": 0, "iso": "PJM", "resource_id": "AGG-1",
        "issued_at": "2026-07-15T17:40:00Z", "start": START.isoformat(), "end": END.isoformat(),
        "interval_minutes": 5, "target_kw": 6}), channel="http", raw=b"{}",
        received_at=dt.datetime(2026, 7, 15, 17, 41, tzinfo=dt.UTC))
    sent = dt.datetime(2026, 7, 15, 17, 59, tzinfo=dt.UTC)
    commands = pd.DataFrame([
        {"instruction_id": KEY, "modification": 0, "battery_id": b, "site_id": s, "source": "enphase",
         "setpoint_kw": kw, "ok": True, "detail": None, "sent_at": sent} for b, s, kw in (("A-BAT", "A", 4.0),
                                                                                         ("B-BAT", "B", 1.4))])
    plan = pd.DataFrame([{"instruction_id": KEY, "modification": 0, "battery_id": b, "interval_start": t,
                          "setpoint_kw": kw, "soc_end_kwh": 5.0}
                         for b, kw in (("A-BAT", 4.0), ("B-BAT", 1.4)) for t in pd.date_range(START, END, freq="5min",
                                                                                               inclusive="left")])
    with engine.begin() as conn:
        bulk_insert(conn, dispatch_commands, commands)
        bulk_insert(conn, dispatch_plans, plan)


def _land(engine, frame: pd.DataFrame) -> None:
    with engine.begin() as conn:
        bulk_insert(conn, interval_telemetry, frame)


def _set_clock(path, at: pd.Timestamp) -> None:
    """The platform clock for the run: `at`, moving at wall speed (seconds here against hours of horizon)."""
    path.write_text(json.dumps({"clock": {"sim_epoch": at.isoformat(), "wall_epoch_s": time.time(), "speed": 1.0}}))


@pytest.fixture
def setup(engine, warehouse_url, tmp_path, monkeypatch):
    _seed(engine)
    ready = tmp_path / "ready.json"
    monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
    monkeypatch.delenv("DER_DISPATCH_FINAL_COVERAGE_PCT", raising=False)
    monkeypatch.delenv("DER_DISPATCH_FINAL_AFTER_H", raising=False)
    resources = {"warehouse": WarehouseResource(url=warehouse_url), "clock": ClockResource(follow_twin=True)}
    received: list = []
    with serving({"hook": _receiver(received)}) as urls:
        monkeypatch.setenv("DER_ALERT_WEBHOOK_URL", f"{urls['hook']}/hook")
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(instructions.name, [KEY])
        yield engine, resources, instance, received, ready


def _measure(resources, instance):
    result = dg.materialize([event_performance], partition_key=KEY, resources=resources, instance=instance)
    assert result.success
    meta = result.asset_materializations_for_node("event_performance")[0].metadata
    check = result.get_asset_check_evaluations()[0]
    # the generic check-failure alert sensor runs after every successful run; it leaves this check alone
    check_failure_alerts(dg.build_run_status_sensor_context(
        sensor_name="check_failure_alerts", dagster_instance=instance, dagster_run=instance.get_run_by_id(result.run_id),
        dagster_event=result.get_run_success_event()))
    return {k: v.value for k, v in meta.items()}, check


def _under_delivery(received):
    assert not [a for a in received if a["kind"] == "check_failed"]
    return [a for a in received if a["kind"] == "under_delivery"]


def test_late_telemetry_is_provisional_then_final_and_alerts_once(setup):
    engine, resources, instance, received, ready = setup
    landed = START + pd.Timedelta(minutes=32)
    # right after the event only A's first quarter-hour has been pulled
    _land(engine, _rows("A-BAT", "A", pd.date_range(START, periods=3, freq="5min"), 300, 4.0 * 5 / 60, landed))
    _set_clock(ready, END + pd.Timedelta(minutes=2))
    # before the dispatch run has measured the event once, new telemetry asks for nothing
    instance.report_runless_asset_event(dg.AssetMaterialization("interval_telemetry", partition="2026-07-15"))
    early = event_telemetry_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not early.run_requests
    meta, check = _measure(resources, instance)
    # coverage: A 50 % of the event, B 0 %: 25 % of the battery-seconds; measured 3 x 1/3 kWh of 3 kWh
    assert (meta["status"], meta["coverage_pct"], meta["delivered_kwh"]) == ("provisional", 25.0, pytest.approx(1.0, abs=1e-4))
    assert meta["delivered_pct"] == pytest.approx(33.33, abs=1e-4)
    assert meta["batteries_missing"] == 2 and "B-BAT" in meta["missing_batteries"]
    # planned for the unmeasured battery-time: half of A's 2.0 kWh and all of B's 0.7 kWh
    assert meta["unmeasured_planned_kwh"] == pytest.approx(1.7, abs=1e-4)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["status"].value == "provisional" and "alert_policy" in check.metadata
    assert _under_delivery(received) == []  # no alert on a provisional figure
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(sa.select(performance_table)).mappings().all())
    # only the intervals some battery reported in have rows: the rest is unknown, not 0
    assert len(rows) == 3 and set(rows["status"]) == {"provisional"} and rows["alerted_at"].isna().all()
    assert rows["batteries_missing"].tolist() == [1, 1, 1]

    # a day of interval_telemetry lands for the event's day: the sensor asks for a re-run; another day: not
    instance.report_runless_asset_event(dg.AssetMaterialization("interval_telemetry", partition="2026-07-15"))
    fired = event_telemetry_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                           cursor=early.cursor))
    assert [r.partition_key for r in fired.run_requests] == [KEY]
    assert fired.run_requests[0].run_key.startswith(f"{KEY}:0:telemetry:2026-07-15:")
    instance.report_runless_asset_event(dg.AssetMaterialization("interval_telemetry", partition="2026-07-10"))
    quiet = event_telemetry_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                           cursor=fired.cursor))
    assert not quiet.run_requests

    # the rest lands: A's second quarter-hour, B's two buckets
    later = START + pd.Timedelta(hours=3)
    _land(engine, pd.concat([_rows("A-BAT", "A", pd.date_range(START + pd.Timedelta(minutes=15), periods=3,
                                                               freq="5min"), 300, 4.0 * 5 / 60, later),
                             _rows("B-BAT", "B", [START, START + pd.Timedelta(minutes=15)], 900, 0.35, later)]))
    _set_clock(ready, END + pd.Timedelta(hours=3))
    meta, check = _measure(resources, instance)
    assert (meta["status"], meta["coverage_pct"], meta["incomplete"]) == ("final", 100.0, False)
    assert meta["delivered_kwh"] == pytest.approx(2.7, abs=1e-4) and meta["instructed_kwh"] == pytest.approx(3.0, abs=1e-4)
    assert meta["delivered_pct"] == pytest.approx(90.0, abs=1e-4) and meta["unmeasured_planned_kwh"] == 0.0
    assert not check.passed and check.metadata["status"].value == "final"
    alerts = _under_delivery(received)
    assert len(alerts) == 1
    assert alerts[0]["title"] == f"instruction {KEY} m0 delivered 90.0 % (2.7 of 3.0 kWh), final"
    assert alerts[0]["details"]["coverage_pct"] == 100.0

    # a final event is not re-run by new telemetry, and a manual re-run does not alert again
    instance.report_runless_asset_event(dg.AssetMaterialization("interval_telemetry", partition="2026-07-15"))
    after_final = event_telemetry_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                                 cursor=quiet.cursor))
    assert not after_final.run_requests
    meta, _ = _measure(resources, instance)
    assert meta["status"] == "final" and meta["alert_sent_at"] != "none"
    assert len(_under_delivery(received)) == 1
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(sa.select(performance_table)).mappings().all())
    assert len(rows) == 6 and set(rows["status"]) == {"final"} and rows["alerted_at"].notna().all()
    assert rows["delivered_kwh"].sum() == pytest.approx(2.7, abs=1e-4)


def test_past_the_give_up_horizon_the_figure_is_final_and_flagged_incomplete(setup):
    engine, resources, instance, received, ready = setup
    # A reported the whole event; B never did
    _land(engine, _rows("A-BAT", "A", pd.date_range(START, periods=6, freq="5min"), 300, 4.0 * 5 / 60,
                        START + pd.Timedelta(minutes=40)))
    _set_clock(ready, END + pd.Timedelta(hours=1))
    meta, _ = _measure(resources, instance)
    assert (meta["status"], meta["coverage_pct"]) == ("provisional", 50.0)
    assert _under_delivery(received) == []

    _set_clock(ready, END + pd.Timedelta(hours=47))
    assert not event_telemetry_sensor(dg.build_sensor_context(instance=instance, resources=resources)).run_requests
    _set_clock(ready, END + pd.Timedelta(hours=49))  # 48 h after the event: judge what there is
    fired = event_telemetry_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert [r.run_key for r in fired.run_requests] == [f"{KEY}:0:final-after-horizon"]
    meta, check = _measure(resources, instance)
    assert (meta["status"], meta["incomplete"], meta["coverage_pct"]) == ("final", True, 50.0)
    assert meta["delivered_kwh"] == pytest.approx(2.0, abs=1e-4) and meta["delivered_pct"] == pytest.approx(66.67, abs=1e-4)
    assert "B-BAT" in meta["missing_batteries"] and not check.passed
    assert meta["unmeasured_planned_kwh"] == pytest.approx(0.7, abs=1e-4)  # what B was to deliver: unknown
    alerts = _under_delivery(received)
    assert len(alerts) == 1 and alerts[0]["details"]["incomplete"] is True
    assert alerts[0]["title"].endswith("final, incomplete: 1 batteries not fully measured")
    assert not event_telemetry_sensor(dg.build_sensor_context(instance=instance, resources=resources)).run_requests


def test_the_coverage_threshold_comes_from_the_environment(setup, monkeypatch):
    engine, resources, instance, received, ready = setup
    _land(engine, _rows("A-BAT", "A", pd.date_range(START, periods=6, freq="5min"), 300, 4.0 * 5 / 60,
                        START + pd.Timedelta(minutes=40)))
    _set_clock(ready, END + pd.Timedelta(hours=1))
    monkeypatch.setenv("DER_DISPATCH_FINAL_COVERAGE_PCT", "50")
    meta, _ = _measure(resources, instance)
    assert (meta["status"], meta["incomplete"], meta["final_coverage_pct"]) == ("final", False, 50.0)
    monkeypatch.setenv("DER_DISPATCH_FINAL_COVERAGE_PCT", "lots")
    result = dg.materialize([event_performance], partition_key=KEY, resources=resources, instance=instance,
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "DER_DISPATCH_FINAL_COVERAGE_PCT='lots' is not a number (percent)" in str(failure.step_failure_data.error)


def test_the_live_event_log_reports_delivery_so_far_from_landed_telemetry(setup):
    engine, _, _, _, _ = setup
    from der_assets.defs.dispatch.assets import _EventLog
    from der_assets.dispatch.execution import IntervalProgress
    from der_assets.dispatch.intake.store import latest
    from der_assets.warehouse.schema import dispatch_event_log

    # during the event: A's first quarter-hour has landed, B has not reported yet
    _land(engine, _rows("A-BAT", "A", pd.date_range(START, periods=3, freq="5min"), 300, 4.0 * 5 / 60,
                        START + pd.Timedelta(minutes=16)))
    log = _EventLog(dg.build_asset_context(), engine, latest(engine, KEY))
    both = ("A-BAT", "B-BAT")
    log(IntervalProgress(START, 2, 2, (), 0, 5.4, both))
    log(IntervalProgress(START + pd.Timedelta(minutes=15), 2, 2, (), 0, 5.4, both))
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(sa.select(dispatch_event_log).order_by(
            dispatch_event_log.c.interval_start)).mappings().all())
    assert rows["line"].tolist() == [
        "interval 18:00Z: 2 setpoints sent, 2 acknowledged, 0 failed, re-planned 0, 5.4 kW commanded; "
        "delivered so far not yet measured",
        "interval 18:15Z: 2 setpoints sent, 2 acknowledged, 0 failed, re-planned 0, 5.4 kW commanded; "
        "delivered so far 1.0 kWh of 1.5 kWh (1 of 2 batteries reporting)"]
    assert rows["delivered_so_far_kwh"].isna().tolist() == [True, False]
    assert rows["delivered_so_far_kwh"].iloc[1] == pytest.approx(1.0, abs=1e-4)
    assert rows["instructed_so_far_kwh"].tolist() == pytest.approx([0.0, 1.5])
    assert log.frame()["commanded_kw"].tolist() == [5.4, 5.4]
