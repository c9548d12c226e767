"""A plan carried out on the twin: setpoints over the vendors' control paths, the batteries
respond, their telemetry (pulled back over the vendor APIs and parsed) shows the delivery,
a refusing battery's share is re-dispatched, and every battery is released at the end."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pandas as pd
import pytest

from der_assets.connectors.pull import pull_source
from der_assets.dispatch.adapters import send_setpoint
from der_assets.dispatch.contract import Instruction, build_problem, plan_frame, validate_fleet, validate_forecast
from der_assets.dispatch.execution import execute_plan
from der_assets.dispatch.fleet_inputs import fleet_from_registry, forecast_from_history
from der_assets.dispatch.optimizer import solve_fast
from der_assets.dispatch.performance import delivery
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.telemetry.daily import LandedPayload, normalize_day

START = pd.Timestamp("2026-07-15T18:00Z")  # 2 pm in Philadelphia, 1 pm in Chicago
END = START + pd.Timedelta(minutes=30)
CLOUD = ["solaredge", "enphase", "sma"]
# SMA's PV measurement set carries no battery energy, so the read-back uses these two
MEASURED = ["solaredge", "enphase"]


@pytest.fixture
def twin(tmp_path, monkeypatch):
    registry = demo_fleet(40)
    clock = ManualClock(pd.Timestamp("2026-07-13T00:00Z"))  # two days of history before the event
    hub = TwinHub(registry, start=clock(), clock=clock)
    clock.set(START - pd.Timedelta(minutes=5))
    hub.sync()
    creds = make_credentials(0)
    with serving(build_http_apps(hub, creds)) as urls:
        ready = tmp_path / "ready.json"
        ready.write_text(json.dumps({"http": urls, "credentials": creds, "sunspec": [], "ami_inbox": str(tmp_path)}))
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
        yield hub, clock, registry


def _history(hub, registry):
    """Two days of what interval_telemetry would hold: each site's PV and load, as the twin made them."""
    rows = []
    for site in registry["site_id"].unique():
        w = hub.window(site, START - pd.Timedelta(days=2), START - pd.Timedelta(hours=1))
        for channel in ("pv_kwh", "load_kwh"):
            rows.append(pd.DataFrame({"site_id": site, "device_id": site, "source": "simulator", "channel": channel,
                                      "interval_start": w["interval_start"], "interval_s": 300, "value": w[channel]}))
    return pd.concat(rows, ignore_index=True)


def _plan(hub, registry, target_kw, exclude=frozenset()):
    batteries = registry[registry.device_type == "battery"]
    soc = pd.Series(hub.twin.soc_pct[[hub.site_index(s) for s in batteries.site_id]], index=batteries.device_id.values)
    fleet, _ = fleet_from_registry(registry, soc)
    source = batteries.set_index("device_id")["telemetry_source"]
    fleet["available"] &= fleet["battery_id"].map(source).isin(MEASURED) & ~fleet["battery_id"].isin(exclude)
    instruction = Instruction("EVT-1", START, END, 5, np.full(6, float(target_kw)))
    index = pd.date_range(START, END + pd.Timedelta(hours=2), freq="5min", inclusive="left")
    forecast, _ = forecast_from_history(_history(hub, registry), registry, index)
    problem = build_problem(validate_fleet(fleet), validate_forecast(forecast, instruction), instruction)
    plan = solve_fast(problem)
    frame = plan_frame(problem, plan.setpoint_kw)
    return frame, plan, batteries.rename(columns={"device_id": "battery_id", "telemetry_source": "source"})


def _battery_rows(hub, registry):
    payloads = []
    for source in MEASURED:
        # counters need a reading on each side of the event: pull a little wider
        result = asyncio.run(pull_source(source, registry, START - pd.Timedelta(minutes=15), END + pd.Timedelta(minutes=15)))
        assert not result.failures, result.failures
        payloads += [LandedPayload(i, p.source, p.endpoint, p.site_id, pd.Timestamp(p.received_at), p.content)
                     for i, p in enumerate(result.payloads)]
    return normalize_day(payloads, registry, day_start=START.floor("D"), believed_at=hub.now(), sources=MEASURED).rows


def test_plan_is_delivered_and_released(twin):
    hub, clock, registry = twin
    frame, plan, batteries = _plan(hub, registry, 40.0)
    assert plan.status == "met"

    async def sleep(seconds):
        clock.advance(seconds=seconds)
        hub.sync()

    report = asyncio.run(execute_plan(frame, batteries, end=END, interval_s=300, send=send_setpoint,
                                      now=hub.now, sleep=sleep, lead_s=60))
    assert all(a.ok for a in report.acks), [a.detail for a in report.acks if not a.ok]
    commanded = set(frame.loc[frame.setpoint_kw > 0, "battery_id"])
    assert report.released == commanded
    clock.advance(minutes=30)
    hub.sync()
    rows = _battery_rows(hub, registry)
    perf = delivery(rows, pd.date_range(START, periods=6, freq="5min"), np.full(6, 40.0), 5, sorted(commanded))
    # commands act after 30 s latency and ramp at full power per minute: sent 60 s ahead, the
    # first quarter-hour delivers about 91 % (84 % when sent on the interval start); hand-overs
    # between batteries cost a little; the rest delivers the 40 kW
    # Enphase reports batteries every 15 minutes, so the check is per quarter-hour
    assert perf["instructed_kwh"].sum() == pytest.approx(40.0 * 0.5)
    assert perf["batteries_missing"].max() == 0 and perf["apportioned"].any()
    quarter = perf.groupby(perf.index // 3)[["instructed_kwh", "delivered_kwh"]].sum()
    pct = 100 * quarter["delivered_kwh"] / quarter["instructed_kwh"]
    assert pct.iloc[0] > 88.0 and pct.iloc[1] > 95.0
    assert perf["delivered_kwh"].sum() > 0.9 * perf["instructed_kwh"].sum()
    # released: after the event no commanded battery discharges into the noon PV surplus
    sites = batteries.set_index("battery_id").loc[sorted(commanded), "site_id"]
    after = [hub.window(s, END + pd.Timedelta(minutes=5), END + pd.Timedelta(minutes=10))["battery_kwh"].iloc[0]
             for s in sites]
    assert max(after) < 0.05, after


def test_a_refusing_battery_is_redispatched(twin):
    hub, clock, registry = twin
    frame, plan, batteries = _plan(hub, registry, 40.0)
    refuser = frame.loc[frame.setpoint_kw > 0, "battery_id"].iloc[0]

    async def send(battery_id, site_id, source, setpoint_kw, duration_s):
        if battery_id == refuser and setpoint_kw is not None:
            return await send_setpoint(battery_id, site_id, source, 1e6, duration_s)  # refused by the device: 400
        return await send_setpoint(battery_id, site_id, source, setpoint_kw, duration_s)

    async def sleep(seconds):
        clock.advance(seconds=seconds)
        hub.sync()

    def replan(failed, at):
        later, _, _ = _plan(hub, registry, 40.0, exclude=failed)
        return later[pd.to_datetime(later.interval_start, utc=True) >= at]

    report = asyncio.run(execute_plan(frame, batteries, end=END, interval_s=300, send=send, now=hub.now,
                                      sleep=sleep, replan=replan))
    assert report.failed == {refuser} and report.replans == 1
    # the refuser never discharged for the event; the others carried its share (twin truth, kW)
    sites = batteries.set_index("battery_id")["site_id"]
    served = {a.battery_id for a in report.acks if a.ok and a.setpoint_kw}
    assert refuser not in served
    kw = sum(hub.window(sites[b], START, END)["battery_kwh"].to_numpy() for b in served) * 12
    assert kw[2:].min() > 0.9 * 40.0, kw.round(1)
