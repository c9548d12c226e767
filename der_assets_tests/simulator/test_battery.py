"""Battery physics and control: hand-checked numbers for commands, latency, ramp, SoC and reserve."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest

from der_assets.simulator import FleetSpec, FleetTwin, simulate_fleet_day
from der_assets.simulator.battery import BatteryParams, BatteryState, step_batteries

from ._fleets import mixed_frame, site_row

SQRT_ETA = math.sqrt(0.9)


def _one_battery(ramp_kw_per_s=0.1, export_allowed=True) -> BatteryParams:
    return BatteryParams(
        capacity_kwh=np.array([13.5]),
        power_kw=np.array([5.0]),
        efficiency=np.array([0.9]),
        reserve_kwh=np.array([2.7]),
        export_allowed=np.array([export_allowed]),
        ramp_kw_per_s=np.array([ramp_kw_per_s]),
    )


def _segments(*pairs):
    """(target or None, length_s) pairs -> (3, 1) arrays, padded with empty segments."""
    pairs = list(pairs) + [(None, 0.0)] * (3 - len(pairs))
    target = np.array([[np.nan if t is None else t] for t, _ in pairs])
    length = np.array([[s] for _, s in pairs])
    return target, length


def test_command_after_latency_with_ramp_hand_checked():
    """Night, load 1 kW, battery covering it (p = 1 kW). A 5 kW setpoint arrives with a
    30 s latency and a 0.1 kW/s ramp: 30 s at 1 kW, 40 s ramping 1 -> 5 kW (avg 3 kW),
    230 s at 5 kW: 30 + 120 + 1150 = 1300 kW*s = 0.361111 kWh delivered.
    SoC falls by 0.361111 / sqrt(0.9) = 0.380645 kWh."""
    params = _one_battery()
    state = BatteryState(soc_kwh=np.array([10.0]), power_kw=np.array([1.0]))
    target, length = _segments((None, 30.0), (5.0, 270.0))
    e = step_batteries(params, state, load_kw=np.array([1.0]), pv_kw=np.array([0.0]), interval_s=300,
                       segment_target_kw=target, segment_length_s=length)
    assert e[0] == pytest.approx(1300 / 3600)
    assert state.soc_kwh[0] == pytest.approx(10.0 - 0.3611111 / SQRT_ETA, abs=1e-6)
    assert state.soc_kwh[0] == pytest.approx(9.619355, abs=1e-6)
    assert state.power_kw[0] == pytest.approx(5.0)


def test_slow_ramp_does_not_reach_setpoint_within_interval():
    """Ramp 0.01 kW/s: after 30 s latency at 1 kW, 270 s ramping reaches 1 + 2.7 = 3.7 kW;
    energy = 30 * 1 + 270 * (1 + 3.7) / 2 = 664.5 kW*s."""
    params = _one_battery(ramp_kw_per_s=0.01)
    state = BatteryState(soc_kwh=np.array([10.0]), power_kw=np.array([1.0]))
    target, length = _segments((None, 30.0), (5.0, 270.0))
    e = step_batteries(params, state, load_kw=np.array([1.0]), pv_kw=np.array([0.0]), interval_s=300,
                       segment_target_kw=target, segment_length_s=length)
    assert e[0] == pytest.approx(664.5 / 3600)
    assert state.power_kw[0] == pytest.approx(3.7)


def test_charging_raises_soc_by_sqrt_eta():
    """Command -4 kW (charge) for a whole interval from p = -4: 4 kW x 1/12 h = 0.3333 kWh
    absorbed, stored energy rises by 0.3333 x sqrt(0.9) = 0.316228 kWh."""
    params = _one_battery()
    state = BatteryState(soc_kwh=np.array([5.0]), power_kw=np.array([-4.0]))
    target, length = _segments((-4.0, 300.0))
    e = step_batteries(params, state, load_kw=np.array([1.0]), pv_kw=np.array([0.0]), interval_s=300,
                       segment_target_kw=target, segment_length_s=length)
    assert e[0] == pytest.approx(-1 / 3)
    assert state.soc_kwh[0] == pytest.approx(5.0 + 0.316228, abs=1e-6)


def test_discharge_stops_exactly_at_reserve():
    """0.1 kWh stored above the 2.7 kWh reserve can deliver 0.1 x sqrt(0.9) = 0.094868 kWh."""
    params = _one_battery()
    state = BatteryState(soc_kwh=np.array([2.8]), power_kw=np.array([5.0]))
    target, length = _segments((5.0, 300.0))
    e = step_batteries(params, state, load_kw=np.array([1.0]), pv_kw=np.array([0.0]), interval_s=300,
                       segment_target_kw=target, segment_length_s=length)
    assert e[0] == pytest.approx(0.1 * SQRT_ETA)
    assert state.soc_kwh[0] == pytest.approx(2.7)


def test_non_export_battery_never_exceeds_net_load():
    params = _one_battery(export_allowed=False)
    state = BatteryState(soc_kwh=np.array([10.0]), power_kw=np.array([5.0]))
    target, length = _segments((5.0, 300.0))
    e = step_batteries(params, state, load_kw=np.array([2.0]), pv_kw=np.array([0.5]), interval_s=300,
                       segment_target_kw=target, segment_length_s=length)
    assert e[0] == pytest.approx(1.5 / 12)


def test_twin_command_discharges_after_latency_and_soc_falls():
    """A no-PV site at 100 % SoC is told to discharge 5 kW for 30 min at 18:00 UTC
    (latency 30 s, ramp 0.1 kW/s). Compared with the same twin without the command,
    which covers the house load p_self = load (< 5 kW) by self-consumption:
    interval 18:00: 30 s at p_self, ramp (5 - p_self)/0.1 s, then 5 kW;
    18:05 - 18:25: exactly 5 kW x 5 min = 0.416667 kWh each (SoC -0.439205 kWh each);
    18:30: 30 s at 5 kW, then back to p_self."""
    frame = pd.DataFrame([site_row("A", pv_dc_kw=0.0, pv_ac_kw=0.0, command_latency_s=30.0, ramp_kw_per_s=0.1)])
    fleet = FleetSpec.from_frame(frame)
    start = pd.Timestamp("2026-07-15 17:00", tz="UTC")
    base = FleetTwin(fleet, start, initial_soc_pct=100.0).advance_to(start + pd.Timedelta(hours=2))
    twin = FleetTwin(fleet, start, initial_soc_pct=100.0)
    twin.command("A", 5.0, 1800, issued_at=pd.Timestamp("2026-07-15 18:00", tz="UTC"))
    res = twin.advance_to(start + pd.Timedelta(hours=2))

    load_kw = res.load_kwh[:, 0] * 12
    assert np.allclose(res.load_kwh, base.load_kwh)  # commands do not change the house
    k0 = 12  # 18:00
    assert load_kw[k0 - 1 : k0 + 8].max() < 5.0
    p_self = load_kw
    # before the command: self-consumption, battery covers the load
    assert np.allclose(res.battery_kwh[:k0, 0], base.battery_kwh[:k0, 0])
    assert np.allclose(res.battery_kwh[:k0, 0], p_self[:k0] / 12)
    ramp_s = (5.0 - p_self[k0]) / 0.1
    first_kws = p_self[k0] * 30 + (p_self[k0] + 5.0) / 2 * ramp_s + 5.0 * (270 - ramp_s)
    assert res.battery_kwh[k0, 0] == pytest.approx(first_kws / 3600)
    assert np.allclose(res.battery_kwh[k0 + 1 : k0 + 6, 0], 5.0 / 12)
    assert res.battery_kwh[k0 + 6, 0] == pytest.approx((5.0 * 30 + p_self[k0 + 6] * 270) / 3600)
    assert np.allclose(res.battery_kwh[k0 + 7 :, 0], p_self[k0 + 7 :] / 12)
    # SoC falls by delivered / sqrt(eta): 0.416667 / 0.948683 = 0.439205 kWh = 3.2534 % of 13.5 kWh per full interval
    soc = res.soc_pct[:, 0]
    assert np.allclose(-np.diff(soc)[k0 : k0 + 5], 0.4392052 / 13.5 * 100, atol=1e-6)
    # the exported part: 5 kW minus the house load leaves through the meter
    assert np.all(res.grid_kwh[k0 + 1 : k0 + 6, 0] < 0)


def test_self_consumption_respects_reserve_and_bounds_over_a_week():
    fleet = FleetSpec.from_frame(mixed_frame(40, seed=3))
    twin = FleetTwin(fleet, pd.Timestamp("2026-01-10", tz="UTC"), initial_soc_pct=30.0)
    res = twin.advance_to(pd.Timestamp("2026-01-17", tz="UTC"))
    has = fleet.battery.capacity_kwh > 0
    reserve_pct = fleet.frame["reserve_floor_pct"].to_numpy()
    soc = res.soc_pct[:, has]
    assert np.all(soc >= reserve_pct[has] - 1e-9)
    assert np.all(soc <= 100 + 1e-9)
    assert np.isnan(res.soc_pct[:, ~has]).all()
    assert np.all(res.battery_kwh[:, ~has] == 0)
    # self-consumption never exports from the battery, never imports into it from the grid
    net_kwh = res.load_kwh - res.pv_kwh
    assert np.all(res.battery_kwh <= np.maximum(net_kwh, 0) + 1e-12)
    assert np.all(res.battery_kwh >= np.minimum(net_kwh, 0) - 1e-12)
    limit_kwh = fleet.battery.power_kw * 300 / 3600
    assert np.all(np.abs(res.battery_kwh) <= limit_kwh + 1e-12)
    # in January a battery actually cycles: some hit the reserve in the evening
    assert (np.abs(soc - reserve_pct[has]) < 1e-6).any()


def test_non_export_sites_never_export_from_battery_even_when_commanded():
    frame = mixed_frame(30, seed=5)
    frame["export_allowed"] = np.arange(30) % 2 == 0
    fleet = FleetSpec.from_frame(frame)
    day = dt.date(2026, 7, 15)
    plan = pd.DataFrame(
        [(s, t, 7.6) for s in frame["site_id"] for t in pd.date_range("2026-07-15 12:00", periods=96, freq="5min", tz="UTC")],
        columns=["site_id", "interval_start", "setpoint_kw"],
    )
    res = simulate_fleet_day(fleet, day, setpoints=plan, initial_soc_pct=100.0)
    no_export = ~fleet.battery.export_allowed
    net_kwh = res.load_kwh - res.pv_kwh
    assert np.all(res.battery_kwh[:, no_export] <= np.maximum(net_kwh[:, no_export], 0) + 1e-12)
    # export-allowed sites do push energy out while commanded at midday
    exported = (res.battery_kwh > np.maximum(net_kwh, 0) + 1e-6)[:, ~no_export & (fleet.battery.capacity_kwh > 0)]
    assert exported.any()


def test_release_returns_to_self_consumption():
    fleet = FleetSpec.from_frame(pd.DataFrame([site_row("A", command_latency_s=0.0, ramp_kw_per_s=100.0)]))
    start = pd.Timestamp("2026-07-15 03:00", tz="UTC")
    base = FleetTwin(fleet, start).advance_to(start + pd.Timedelta(hours=1))
    twin = FleetTwin(fleet, start)
    twin.command("A", -3.0, 7200)  # charge from the grid
    twin.release("A", issued_at=start + pd.Timedelta(minutes=30))
    res = twin.advance_to(start + pd.Timedelta(hours=1))
    assert np.allclose(res.battery_kwh[:6, 0], -3.0 / 12, atol=1e-3)  # ramp of 100 kW/s is ~instant
    # after release the battery covers the load again (night: pv = 0)
    assert np.all(res.battery_kwh[6:, 0] > 0)
    assert np.allclose(res.battery_kwh[6:, 0], res.load_kwh[6:, 0], atol=1e-3)
    assert twin.commands.empty
    assert base.battery_kwh[0, 0] > 0
