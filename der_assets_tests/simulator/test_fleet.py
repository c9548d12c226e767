"""Fleet API: time axis and DST, determinism, window independence, counters, validation."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from der_assets.simulator import CHANNELS, COUNTER_COLUMNS, FleetSpec, FleetTwin, day_window_utc, simulate_fleet_day

from ._fleets import mixed_frame, site_row


@pytest.fixture(scope="module")
def fleet() -> FleetSpec:
    return FleetSpec.from_frame(mixed_frame(12, seed=1))


@pytest.mark.parametrize(
    ("day", "day_tz", "n_intervals", "first_utc"),
    [
        (dt.date(2026, 11, 1), "America/New_York", 300, "2026-11-01 04:00"),  # fall back: 25 h
        (dt.date(2026, 3, 8), "America/New_York", 276, "2026-03-08 05:00"),  # spring forward: 23 h
        (dt.date(2026, 11, 1), "America/Chicago", 300, "2026-11-01 05:00"),
        (dt.date(2026, 11, 1), "UTC", 288, "2026-11-01 00:00"),
        (dt.date(2026, 7, 15), "America/New_York", 288, "2026-07-15 04:00"),
    ],
)
def test_day_window_and_interval_counts(fleet, day, day_tz, n_intervals, first_utc):
    res = simulate_fleet_day(fleet, day, day_tz=day_tz)
    assert res.n_intervals == n_intervals
    assert res.interval_start[0] == pd.Timestamp(first_utc, tz="UTC")
    assert str(res.interval_start.tz) == "UTC"
    assert (np.diff(res.interval_start.asi8) == 300 * 10**9).all()
    start, end = day_window_utc(day, day_tz)
    assert res.interval_start[-1] + pd.Timedelta(seconds=300) == end


def test_fifteen_minute_dst_day_has_100_intervals(fleet):
    res = simulate_fleet_day(fleet, dt.date(2026, 11, 1), day_tz="America/New_York", interval_s=900)
    assert res.n_intervals == 100


def test_fall_back_day_household_follows_local_clock(fleet):
    """On 2026-11-01 the 01:00-02:00 EDT/EST hour happens twice; the twin must not crash or skip it."""
    res = simulate_fleet_day(fleet, dt.date(2026, 11, 1), day_tz="America/New_York")
    assert np.isfinite(res.load_kwh).all() and (res.load_kwh > 0).all()


def test_energy_balance_closes_exactly(fleet):
    res = simulate_fleet_day(fleet, dt.date(2026, 7, 15))
    assert np.allclose(res.load_kwh, res.pv_kwh + res.battery_kwh + res.grid_kwh, rtol=0, atol=1e-12)
    assert (res.pv_kwh >= 0).all() and (res.load_kwh > 0).all()


def test_deterministic_for_a_seed(fleet):
    a = simulate_fleet_day(fleet, dt.date(2026, 7, 15), seed=7)
    b = simulate_fleet_day(fleet, dt.date(2026, 7, 15), seed=7)
    c = simulate_fleet_day(fleet, dt.date(2026, 7, 15), seed=8)
    for ch in CHANNELS:
        assert np.array_equal(getattr(a, ch), getattr(b, ch), equal_nan=True)
    assert np.array_equal(a.pv_kwh, c.pv_kwh)  # weather is the TMY, not random
    assert not np.allclose(a.load_kwh, c.load_kwh)


def test_site_values_do_not_depend_on_the_rest_of_the_fleet(fleet):
    solo = FleetSpec.from_frame(fleet.frame.iloc[[3]])
    a = simulate_fleet_day(fleet, dt.date(2026, 7, 15), seed=2)
    b = simulate_fleet_day(solo, dt.date(2026, 7, 15), seed=2)
    for ch in CHANNELS:
        assert np.allclose(getattr(a, ch)[:, 3], getattr(b, ch)[:, 0], equal_nan=True)


def test_stepping_one_interval_at_a_time_equals_one_window(fleet):
    start = pd.Timestamp("2026-07-15 20:00", tz="UTC")
    end = pd.Timestamp("2026-07-16 04:00", tz="UTC")  # crosses a UTC midnight
    whole = FleetTwin(fleet, start, seed=3).advance_to(end)
    twin = FleetTwin(fleet, start, seed=3)
    parts = [twin.step(1) for _ in range(whole.n_intervals)]
    stepped = type(whole).concat(parts)
    assert stepped.interval_start.equals(whole.interval_start)
    for ch in CHANNELS:
        assert np.allclose(getattr(stepped, ch), getattr(whole, ch), rtol=0, atol=1e-12, equal_nan=True)
    pd.testing.assert_frame_equal(twin.lifetime_wh(), stepped.lifetime_wh_end)


def test_local_day_equals_the_same_hours_of_utc_days(fleet):
    """The New York local day 2026-07-15 is 04:00Z Jul 15 to 04:00Z Jul 16; PV and load are
    functions of time only, so they match the corresponding UTC-day rows."""
    local = simulate_fleet_day(fleet, dt.date(2026, 7, 15), day_tz="America/New_York")
    d15 = simulate_fleet_day(fleet, dt.date(2026, 7, 15))
    d16 = simulate_fleet_day(fleet, dt.date(2026, 7, 16))
    pv = np.concatenate([d15.pv_kwh[48:], d16.pv_kwh[:48]])
    load = np.concatenate([d15.load_kwh[48:], d16.load_kwh[:48]])
    assert np.allclose(local.pv_kwh, pv, atol=1e-12) and np.allclose(local.load_kwh, load, atol=1e-12)


def test_lifetime_counters_carry_across_days_and_match_energies(fleet):
    twin = FleetTwin(fleet, pd.Timestamp("2026-07-14", tz="UTC"), seed=1)
    days = list(twin.replay_days(dt.date(2026, 7, 15), dt.date(2026, 7, 17)))
    assert [d.n_intervals for d in days] == [288, 288, 288]
    assert days[0].interval_start[0] == pd.Timestamp("2026-07-15", tz="UTC")  # the gap day was simulated
    for prev, nxt in zip(days, days[1:]):
        pd.testing.assert_frame_equal(prev.lifetime_wh_end, nxt.lifetime_wh_start)
        # SoC carries over: the next day starts where the last one ended
        assert np.allclose(nxt.lifetime_wh_start["pv_wh"], prev.lifetime_wh_end["pv_wh"])
    d = days[1]
    delta = d.lifetime_wh_end - d.lifetime_wh_start
    assert np.allclose(delta["pv_wh"], d.pv_kwh.sum(axis=0) * 1000)
    assert np.allclose(delta["grid_import_wh"] - delta["grid_export_wh"], d.grid_kwh.sum(axis=0) * 1000)
    assert np.allclose(delta["battery_discharge_wh"] - delta["battery_charge_wh"], d.battery_kwh.sum(axis=0) * 1000)
    per_interval = d.lifetime_wh_by_interval()
    assert set(per_interval) == set(COUNTER_COLUMNS)
    assert np.allclose(per_interval["pv_wh"][-1], d.lifetime_wh_end["pv_wh"])
    assert (np.diff(per_interval["grid_export_wh"], axis=0) >= 0).all()  # monotone, like a real register
    assert list(twin.lifetime_wh().columns) == COUNTER_COLUMNS


def test_soc_carries_across_days(fleet):
    twin = FleetTwin(fleet, pd.Timestamp("2026-07-15", tz="UTC"))
    a, b = twin.replay_days(dt.date(2026, 7, 15), dt.date(2026, 7, 16))
    has = fleet.battery.capacity_kwh > 0
    # the first interval of day 2 moved SoC by its own battery energy from day 1's last SoC
    cap = fleet.battery.capacity_kwh[has]
    e = b.battery_kwh[0, has]
    eta = fleet.battery.efficiency[has]
    stored = np.where(e > 0, -e / np.sqrt(eta), -e * np.sqrt(eta))
    assert np.allclose(b.soc_pct[0, has], a.soc_pct[-1, has] + 100 * stored / cap)


def test_sync_follows_a_wall_clock(fleet):
    twin = FleetTwin(fleet, pd.Timestamp("2026-07-15 12:00", tz="UTC"))
    assert twin.sync(pd.Timestamp("2026-07-15 12:04:59", tz="UTC")) is None
    res = twin.sync(pd.Timestamp("2026-07-15 12:11:00", tz="UTC"))
    assert res.n_intervals == 2 and twin.now == pd.Timestamp("2026-07-15 12:10", tz="UTC")

    clock = iter(np.arange(0, 10) * 300.0 + pd.Timestamp("2026-07-15 12:10", tz="UTC").value / 1e9 + 1)
    seen = []
    t = {"now": next(clock)}
    twin.run_realtime(
        stop=lambda: len(seen) >= 3, clock=lambda: t["now"], sleep=lambda s: t.update(now=next(clock)),
        on_result=seen.append,
    )
    assert [r.n_intervals for r in seen] == [1, 1, 1]


def test_to_frame_and_channels_are_long(fleet):
    res = FleetTwin(fleet, pd.Timestamp("2026-07-15 12:00", tz="UTC")).step(4)
    wide = res.to_frame()
    assert len(wide) == 4 * fleet.n_sites
    assert list(wide.columns) == ["site_id", "interval_start", "interval_s", *CHANNELS]
    assert str(wide["interval_start"].dt.tz) == "UTC"
    row = wide[(wide.site_id == "T0002")].iloc[1]
    assert row["pv_kwh"] == res.pv_kwh[1, 2]
    long = res.to_channels()
    assert len(long) == 5 * len(wide)
    assert set(long["channel"]) == set(CHANNELS)


def test_fleet_spec_validation():
    good = pd.DataFrame([site_row("A"), site_row("B")])
    spec = FleetSpec.from_frame(good)
    assert spec.n_sites == 2 and spec.frame["ramp_kw_per_s"].iloc[0] == pytest.approx(5.0 / 60)
    assert list(spec.index_of(["B", "A"])) == [1, 0]
    with pytest.raises(KeyError):
        spec.index_of(["nope"])
    with pytest.raises(ValueError, match="missing columns"):
        FleetSpec.from_frame(good.drop(columns=["tilt_deg"]))
    with pytest.raises(ValueError, match="duplicate"):
        FleetSpec.from_frame(pd.DataFrame([site_row("A"), site_row("A")]))
    with pytest.raises(ValueError, match="reserve_floor_pct"):
        FleetSpec.from_frame(pd.DataFrame([site_row("A", reserve_floor_pct=120)]))
    with pytest.raises(Exception):
        FleetSpec.from_frame(pd.DataFrame([site_row("A", where=(40, -75, "Mars/Olympus"))]))
    minimal = good.drop(columns=["battery_efficiency", "reserve_floor_pct", "export_allowed"])
    spec = FleetSpec.from_frame(minimal)
    assert spec.battery.efficiency[0] == 0.9 and not spec.battery.export_allowed[0]


def test_twin_rejects_naive_or_off_grid_times(fleet):
    with pytest.raises(ValueError, match="timezone-aware"):
        FleetTwin(fleet, dt.datetime(2026, 7, 15))
    with pytest.raises(ValueError, match="grid"):
        FleetTwin(fleet, pd.Timestamp("2026-07-15 00:01", tz="UTC"))
    twin = FleetTwin(fleet, pd.Timestamp("2026-07-15 01:00", tz="UTC"))
    with pytest.raises(ValueError, match="back in time"):
        twin.advance_to(pd.Timestamp("2026-07-15 00:00", tz="UTC"))
