"""Property tests: on random fleets, dates and commands the physics invariants always hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.simulator import FleetSpec, FleetTwin, simulate_fleet_day

from ._fleets import CHICAGO, PHILADELPHIA

TOL = 1e-9


@st.composite
def fleets(draw):
    n = draw(st.integers(1, 6))
    rows = []
    for i in range(n):
        lat, lon, tz = draw(st.sampled_from([PHILADELPHIA, CHICAGO]))
        cap = draw(st.sampled_from([0.0, 5.0, 13.5, 27.0]))
        rows.append(
            {
                "site_id": f"H{i}",
                "latitude": lat + draw(st.floats(-0.5, 0.5)),
                "longitude": lon + draw(st.floats(-0.5, 0.5)),
                "timezone": tz,
                "pv_dc_kw": draw(st.floats(0.0, 15.0)),
                "pv_ac_kw": draw(st.floats(0.0, 12.0)),
                "tilt_deg": draw(st.floats(0.0, 60.0)),
                "azimuth_deg": draw(st.floats(60.0, 300.0)),
                "battery_kwh": cap,
                "battery_kw": draw(st.floats(0.5, 10.0)),
                "battery_efficiency": draw(st.floats(0.7, 1.0)),
                "reserve_floor_pct": draw(st.floats(0.0, 60.0)),
                "export_allowed": draw(st.booleans()),
                "command_latency_s": draw(st.sampled_from([0.0, 5.0, 30.0, 290.0, 450.0])),
                "ramp_kw_per_s": draw(st.floats(0.005, 50.0)),
            }
        )
    return FleetSpec.from_frame(pd.DataFrame(rows))


@st.composite
def scenarios(draw):
    fleet = draw(fleets())
    interval_s = draw(st.sampled_from([300, 900]))
    day = draw(st.dates(pd.Timestamp("2020-01-01").date(), pd.Timestamp("2030-12-31").date()))
    start = pd.Timestamp(day, tz="UTC") + pd.Timedelta(seconds=interval_s * draw(st.integers(0, 86400 // interval_s - 1)))
    n_intervals = draw(st.integers(1, 96))
    n_cmd = draw(st.integers(0, 12))
    cmds = []
    for _ in range(n_cmd):
        cmds.append(
            {
                "site_id": f"H{draw(st.integers(0, fleet.n_sites - 1))}",
                "issued_at": start + pd.Timedelta(seconds=draw(st.integers(-600, n_intervals * interval_s))),
                "setpoint_kw": draw(st.one_of(st.floats(-15.0, 15.0), st.just(float("nan")))),
                "duration_s": draw(st.floats(1.0, 6 * 3600.0)),
            }
        )
    soc0 = draw(st.floats(0.0, 100.0))
    return fleet, interval_s, start, n_intervals, pd.DataFrame(cmds), soc0


def _check_invariants(fleet: FleetSpec, res, soc0_pct: float) -> None:
    dt_h = res.interval_s / 3600
    b = fleet.battery
    # the meter closes the site balance in every interval
    assert np.allclose(res.load_kwh, res.pv_kwh + res.battery_kwh + res.grid_kwh, rtol=0, atol=1e-12)
    assert (res.pv_kwh >= 0).all() and (res.load_kwh > 0).all()
    assert np.isfinite(res.pv_kwh).all() and np.isfinite(res.load_kwh).all() and np.isfinite(res.grid_kwh).all()
    assert (res.pv_kwh <= fleet.pv_ac_kw * dt_h + TOL).all()
    # power limits
    assert (np.abs(res.battery_kwh) <= b.power_kw * dt_h + TOL).all()
    has = b.capacity_kwh > 0
    assert (res.battery_kwh[:, ~has] == 0).all() and np.isnan(res.soc_pct[:, ~has]).all()
    # SoC within [0, 100] and never below the reserve unless it started below it (then it never falls)
    soc = res.soc_pct[:, has]
    reserve_pct = 100 * b.reserve_kwh[has] / b.capacity_kwh[has]
    assert (soc <= 100 + TOL).all() and (soc >= -TOL).all()
    floor = np.minimum(reserve_pct, soc0_pct)
    assert (soc >= floor - 1e-7).all()
    # the SoC moves by exactly battery energy over sqrt(eta) one way, times sqrt(eta) the other
    soc_kwh = np.vstack([np.full(has.sum(), np.nan), soc * b.capacity_kwh[has] / 100])
    soc_kwh[0] = soc0_pct * b.capacity_kwh[has] / 100
    e = res.battery_kwh[:, has]
    sq = np.sqrt(b.efficiency[has])
    expected = np.where(e > 0, -e / sq, -e * sq)
    assert np.allclose(np.diff(soc_kwh, axis=0), expected, atol=1e-9)
    # a non-export site never pushes battery energy past its own net load
    no_export = ~b.export_allowed
    net = res.load_kwh - res.pv_kwh
    assert (res.battery_kwh[:, no_export] <= np.maximum(net[:, no_export], 0) + TOL).all()
    # counters are the sums
    delta = res.lifetime_wh_end - res.lifetime_wh_start
    assert np.allclose(delta["load_wh"], res.load_kwh.sum(axis=0) * 1000)
    assert np.allclose(delta["grid_import_wh"] - delta["grid_export_wh"], res.grid_kwh.sum(axis=0) * 1000)
    assert (delta >= -1e-9).all().all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_invariants_hold_under_random_commands(scenario):
    fleet, interval_s, start, n_intervals, cmds, soc0 = scenario
    twin = FleetTwin(fleet, start, interval_s=interval_s, initial_soc_pct=soc0, seed=11)
    if len(cmds):
        twin.command_many(cmds)
    res = twin.advance_to(start + pd.Timedelta(seconds=interval_s * n_intervals))
    assert res.n_intervals == n_intervals
    _check_invariants(fleet, res, soc0)
    # self-consumption alone never exports from the battery nor charges it from the grid
    plain = FleetTwin(fleet, start, interval_s=interval_s, initial_soc_pct=soc0, seed=11).advance_to(
        start + pd.Timedelta(seconds=interval_s * n_intervals)
    )
    net = plain.load_kwh - plain.pv_kwh
    assert (plain.battery_kwh <= np.maximum(net, 0) + TOL).all()
    assert (plain.battery_kwh >= np.minimum(net, 0) - TOL).all()
    assert np.array_equal(plain.load_kwh, res.load_kwh) and np.array_equal(plain.pv_kwh, res.pv_kwh)


@settings(max_examples=8, deadline=None)
@given(fleets(), st.dates(pd.Timestamp("2024-01-01").date(), pd.Timestamp("2027-12-31").date()), st.floats(-10, 10))
def test_full_local_day_with_a_dense_plan(fleet, day, setpoint_kw):
    plan_times = pd.date_range(pd.Timestamp(day, tz="America/New_York").tz_convert("UTC"), periods=24, freq="5min")
    plan = pd.DataFrame([(s, t, setpoint_kw) for s in fleet.site_ids for t in plan_times],
                        columns=["site_id", "interval_start", "setpoint_kw"])
    res = simulate_fleet_day(fleet, day, setpoints=plan, initial_soc_pct=50.0, day_tz="America/New_York")
    assert res.n_intervals in (276, 288, 300)
    _check_invariants(fleet, res, 50.0)
