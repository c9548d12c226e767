import datetime as dt

import numpy as np
import pandas as pd
import pytest

from der_assets.capacity import EstimateParams, estimate_capacity
from der_assets.capacity.availability import Window, site_availability
from der_assets.capacity.errors import CapacityInputError

from .helpers import registry, rows, site, soc_at, window

DAY = "2026-07-15"
WS = "2026-07-15T19:00:00Z"  # 15:00 EDT


def one_day(reg, tel, efficiency=1.0, commands=None, **kw):
    w = Window(months=(7,), efficiency=efficiency, **kw)
    return site_availability(reg, tel, "PJM", w, commands)


def test_soc_limited_site_by_hand():
    reg = registry(site("A", rated_kw=10, capacity_kwh=20, reserve_pct=20))
    av = one_day(reg, soc_at("A", WS, 50.0), efficiency=0.81)
    # (10 kWh - 4 kWh) * sqrt(0.81) / 1 h = 5.4 kW
    assert av.deliverable_kw[0, 0] == pytest.approx(5.4)
    assert av.reasons_text()[0, 0] == "soc"
    assert av.losses_kw["soc"][0, 0] == pytest.approx(4.6)
    assert sum(v[0, 0] for v in av.losses_kw.values()) + 5.4 == pytest.approx(10.0)


def test_reserve_and_power_by_hand():
    reg = registry(site("R", rated_kw=10, capacity_kwh=10, reserve_pct=50), site("P", rated_kw=10, capacity_kwh=5))
    tel = pd.concat([soc_at("R", WS, 100.0), soc_at("P", WS, 100.0)])
    av = one_day(reg, tel)
    r, p = list(av.sites["site_id"]).index("R"), list(av.sites["site_id"]).index("P")
    assert av.deliverable_kw[r, 0] == pytest.approx(5.0) and av.reasons_text()[r, 0] == "reserve"
    assert av.losses_kw["reserve"][r, 0] == pytest.approx(5.0)
    # 5 kWh cannot hold 10 kW for an hour: 5 kW, the rest is the power (energy/duration) loss
    assert av.deliverable_kw[p, 0] == pytest.approx(4.0)  # reserve 20 % default of the helper
    assert av.losses_kw["power"][p, 0] == pytest.approx(5.0)


def test_non_export_cap_every_interval():
    reg = registry(site("N", export=False, reserve_pct=0))
    tel = pd.concat([
        soc_at("N", WS, 100.0),
        window("N", WS, "load_kwh", [1.0, 0.75, 2.0, 2.0], device="N-M"),
        window("N", WS, "pv_kwh", [0.25, 0.25, 0.0, 0.0], device="N-P"),
        window("N", "2026-07-15T20:00:00Z", "load_kwh", [0.0], device="N-M"),  # after the window: ignored
    ])
    av = one_day(reg, tel)
    # net kW per interval: 3, 2, 8, 8 -> the battery may hold 2 kW
    assert av.deliverable_kw[0, 0] == pytest.approx(2.0)
    assert av.reasons_text()[0, 0] == "non_export"
    assert av.losses_kw["non_export"][0, 0] == pytest.approx(8.0)


def test_non_export_from_grid_and_battery_rows():
    reg = registry(site("G", export=False, reserve_pct=0))
    tel = pd.concat([soc_at("G", WS, 100.0),
                     window("G", WS, "grid_kwh", [0.5, 0.5, 0.5, 0.5], device="G-M"),
                     window("G", WS, "battery_kwh", [0.25, 0.25, 0.25, 0.0])])
    av = one_day(reg, tel)
    assert av.deliverable_kw[0, 0] == pytest.approx(2.0)  # (0.5 + 0.0) kWh / 0.25 h in the last interval


def test_non_export_without_net_load_is_unavailable_not_assumed():
    reg = registry(site("N", export=False), site("E"))
    tel = pd.concat([soc_at("N", WS, 100.0), soc_at("E", WS, 100.0),
                     window("N", WS, "load_kwh", [1.0, 1.0, np.nan, 1.0], device="N-M"),
                     window("N", WS, "pv_kwh", [0.0] * 4, device="N-P")])
    av = one_day(reg, tel)
    n = list(av.sites["site_id"]).index("N")
    assert av.deliverable_kw[n, 0] == 0.0 and av.reasons_text()[n, 0] == "no_net_load"
    assert av.deliverable_kw[1 - n, 0] == 10.0
    assert any("no_net_load" in w for w in av.warnings)


def test_silent_battery_and_site_without_telemetry_count_unavailable():
    reg = registry(site("A"), site("S"), site("Z"))
    tel = pd.concat([soc_at("A", WS, 80.0), soc_at("S", WS, np.nan),
                     rows("S", "soc_pct", ["2026-07-15T12:00:00Z"], [50.0])])
    av = one_day(reg, tel)
    reasons = dict(zip(av.sites["site_id"], av.reasons_text()[:, 0]))
    assert reasons == {"A": "ok", "S": "offline", "Z": "no_telemetry"}
    assert av.deliverable_kw[1:, 0].tolist() == [0.0, 0.0]
    assert av.losses_kw["offline"][1:, 0].tolist() == [10.0, 10.0]


def test_program_limits_status_and_opt_out():
    reg = registry(site("A"), site("O", opt_out=True), site("X", status="suspended"), site("H", max_hours=0.5),
                   site("M", max_events=0))
    tel = pd.concat([soc_at(s, WS, 100.0) for s in "AOXHM"])
    av = one_day(reg, tel)
    reasons = dict(zip(av.sites["site_id"], av.reasons_text()[:, 0]))
    assert reasons == {"A": "ok", "H": "event_hours", "M": "no_events_left", "O": "opt_out", "X": "not_active"}


def test_dispatch_history_refusal_and_events_used():
    reg = registry(site("A", max_events=1), site("B"))
    days = ["2026-07-14T19:00:00Z", WS]
    tel = pd.concat([soc_at(s, d, 100.0) for s in "AB" for d in days])
    commands = pd.DataFrame({
        "instruction_id": ["I1", "I2"], "battery_id": ["A-B", "B-B"], "site_id": ["A", "B"],
        "ok": [True, False], "sent_at": pd.to_datetime(["2026-07-14T18:00:00Z", "2026-07-15T18:00:00Z"], utc=True)})
    av = one_day(reg, tel, commands=commands)
    r = av.reasons_text()
    assert r[0].tolist() == ["ok", "no_events_left"]  # A used its one July event on the 14th
    assert r[1].tolist() == ["ok", "refused"]


def test_latest_revision_wins():
    reg = registry(site("A", reserve_pct=0))
    tel = pd.concat([soc_at("A", WS, 10.0), soc_at("A", WS, 40.0, revision=1)])
    av = one_day(reg, tel)
    assert av.deliverable_kw[0, 0] == pytest.approx(8.0)


@pytest.mark.parametrize("day,utc_start", [("2026-03-08", "2026-03-08T19:00:00Z"), ("2026-11-01", "2026-11-01T20:00:00Z"),
                                           ("2026-03-07", "2026-03-07T20:00:00Z")])
def test_dst_days_pick_the_right_utc_interval(day, utc_start):
    reg = registry(site("A", reserve_pct=0))
    month = int(day[5:7])
    candidates = pd.date_range(f"{day}T18:00:00Z", periods=12, freq="15min")
    values = np.arange(12, dtype=float) * 5  # a distinct SoC per interval
    tel = rows("A", "soc_pct", candidates, values)
    av = site_availability(reg, tel, "PJM", Window(months=(month,), efficiency=1.0))
    assert [d.isoformat() for d in av.days] == [day]
    expected_row = candidates.get_loc(pd.Timestamp(utc_start) - pd.Timedelta(minutes=15))
    assert av.deliverable_kw[0, 0] == pytest.approx(min(10.0, values[expected_row] / 100 * 20))


def test_ambiguous_local_time_is_first_occurrence():
    reg = registry(site("A", reserve_pct=0))
    starts = pd.date_range("2026-11-01T04:00:00Z", periods=12, freq="15min")
    tel = rows("A", "soc_pct", starts, np.arange(12) * 5.0)
    av = site_availability(reg, tel, "PJM", Window(months=(11,), window_start=dt.time(1, 30), efficiency=1.0))
    # 01:30 EDT = 05:30Z; its SoC row starts 05:15Z (index 5, 25 %) -> 5 kWh -> 5 kW
    assert av.deliverable_kw[0, 0] == pytest.approx(5.0)


def test_no_history_in_window_is_an_error_not_zero():
    reg = registry(site("A"))
    with pytest.raises(CapacityInputError, match="no history in the sample window"):
        site_availability(reg, soc_at("A", WS, 50.0), "PJM", Window(months=(1,)))
    with pytest.raises(CapacityInputError, match="no history in the sample window"):
        site_availability(reg, rows("A", "soc_pct", ["2026-07-15T03:00:00Z"], [50.0]), "PJM", Window(months=(7,)))


def test_synthetic_fleet_recovers_p50_p90_exactly():
    # 10 sites of 10 kW and 100 kWh, no reserve, eff 1: a site at 100 % gives 10 kW, at 0 % nothing.
    # On day d (1..10) exactly d sites are full, so the daily totals are 10, 20, ..., 100 kW.
    reg = registry(*[site(f"S{i}", capacity_kwh=100, reserve_pct=0, resource_id="AGG-1") for i in range(10)])
    frames = []
    for d in range(1, 11):
        ws = f"2026-07-{d:02d}T19:00:00Z"
        frames += [soc_at(f"S{i}", ws, 100.0 if i < d else 0.0) for i in range(10)]
    est = estimate_capacity(reg, pd.concat(frames),
                            EstimateParams("pjm", "2027/2028", "demand_resource", months=(7,), efficiency=1.0,
                                           bootstrap_samples=200))
    s = est.summary
    assert s["n_days"] == 10 and s["nameplate_kw"] == 100.0
    assert s["deliverable_p90_kw"] == 20.0  # met or exceeded on 9 of 10 days
    assert s["deliverable_p50_kw"] == 60.0  # met or exceeded on 5 of 10 days
    assert s["accredited_p90_kw"] == pytest.approx(18.4)
    assert s["unavailable_site_days"] == 45
    # losses and deliverable add up to nameplate (averaged over days)
    assert sum(s["losses_kw"].values()) + est.daily["fleet_kw"].mean() == pytest.approx(100.0)
    g = est.by_group.set_index(["level", "group"])
    assert g.loc[("resource", "AGG-1"), "deliverable_p90_kw"] == 20.0
    assert g.loc[("resource", "AGG-1"), "deliverable_p90_lo_kw"] <= 20.0 <= g.loc[("resource", "AGG-1"), "deliverable_p90_hi_kw"]
    assert len(est.sites) == 100 and set(est.sites.columns) == {"site_id", "zone", "day", "deliverable_kw", "reason"}
