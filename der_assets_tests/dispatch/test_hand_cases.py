"""Cases small enough to check on paper (one-hour intervals so kW and kWh read the same)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from der_assets.dispatch import (
    Prices,
    build_problem,
    check_hard_constraints,
    compare_plans,
    evaluate_plan,
    gini,
    iso_first,
    parse_instruction,
    self_consumption_first,
    solve_fast,
    solve_reference,
)
from der_assets.dispatch.contract import validate_fleet, validate_forecast

START = "2026-07-15T18:00:00Z"


def make(batteries: list[dict], netload: dict[str, list[float]], target, hours: int, post_need: dict[str, list[float]] | None = None):
    """Problem from plain dicts: one-hour intervals, forecast pv=0 so load = net load."""
    fleet = validate_fleet(pd.DataFrame(batteries))
    ins = parse_instruction(
        {"instruction_id": "HAND", "start": START, "end": (pd.Timestamp(START) + pd.Timedelta(hours=hours)).isoformat(), "interval_minutes": 60, "target_kw": target}
    )
    rows = []
    for site, loads in netload.items():
        extra = (post_need or {}).get(site, [])
        for k, v in enumerate(list(loads) + list(extra)):
            rows.append({"site_id": site, "interval_start": (pd.Timestamp(START) + pd.Timedelta(hours=k)).isoformat(), "load_kw": v, "pv_kw": 0.0})
    forecast = validate_forecast(pd.DataFrame(rows), ins)
    return build_problem(fleet, forecast, ins)


def bat(bid, site, *, cap=20.0, soc=10.0, reserve=2.0, dis=6.0, eta=1.0, export=True, avail=True, **extra):
    return {
        "battery_id": bid, "site_id": site, "capacity_kwh": cap, "soc_kwh": soc, "reserve_kwh": reserve,
        "max_discharge_kw": dis, "max_charge_kw": dis, "efficiency": eta, "export_allowed": export, "available": avail, **extra,
    }


def test_two_batteries_energy_limited():
    # A: (10-2)*sqrt(1) = 8 kWh usable; B: (12-2)*sqrt(0.81) = 9 kWh. Target 2 h x 10 kW = 20 kWh.
    # Per hour the fleet can do 6+5 = 11 >= 10, so energy binds: 20 - (8+9) = 3 kWh short.
    p = make([bat("A", "S1"), bat("B", "S2", soc=12.0, dis=5.0, eta=0.81)], {"S1": [1, 1], "S2": [1, 1]}, 10.0, 2)
    plan = solve_fast(p)
    assert plan.shortfall_kwh == pytest.approx(3.0, abs=1e-6)
    assert check_hard_constraints(p, plan.setpoint_kw) == []
    assert plan.setpoint_kw.sum(axis=1) == pytest.approx([8.0, 9.0], abs=1e-6)
    # B ends exactly at reserve: 12 - 9/0.9 = 2.
    soc_end_b = 12.0 - plan.setpoint_kw[1].sum() / 0.9
    assert soc_end_b == pytest.approx(2.0, abs=1e-6)


def test_two_batteries_non_export_cap():
    # B is non-export with net load 3 then 1 kW: it can give at most 4 kWh. A gives its 8 (<= 6 per hour).
    # Hour 1 <= 6 + 3 = 9, hour 2 <= 6 + 1 = 7, energy 8 + 4 = 12: shortfall 20 - 12 = 8 kWh.
    p = make([bat("A", "S1"), bat("B", "S2", soc=12.0, dis=5.0, eta=0.81, export=False)], {"S1": [1, 1], "S2": [3, 1]}, 10.0, 2)
    plan = solve_fast(p)
    assert plan.shortfall_kwh == pytest.approx(8.0, abs=1e-6)
    assert plan.setpoint_kw[1] == pytest.approx([3.0, 1.0], abs=1e-6)
    assert check_hard_constraints(p, plan.setpoint_kw) == []


def test_power_limited_interval():
    # Target 15 then 2 kW; each battery 6 kW, 20 kWh usable. Hour 1 can reach only 12: 3 kWh short.
    p = make([bat("A", "S1", cap=30.0, soc=22.0), bat("B", "S2", cap=30.0, soc=22.0)], {"S1": [0, 0], "S2": [0, 0]}, [15.0, 2.0], 2)
    plan = solve_fast(p)
    assert plan.shortfall_kwh == pytest.approx(3.0, abs=1e-6)
    assert plan.setpoint_kw[:, 0] == pytest.approx([6.0, 6.0], abs=1e-6)


def test_unavailable_and_fully_met():
    p = make([bat("A", "S1"), bat("B", "S2", avail=False)], {"S1": [0], "S2": [0]}, 5.0, 1)
    plan = solve_fast(p)
    assert plan.status == "met" and plan.shortfall_kwh == pytest.approx(0.0, abs=1e-9)
    assert plan.setpoint_kw[:, 0] == pytest.approx([5.0, 0.0], abs=1e-6)


def test_fairness_splits_equal_batteries_evenly():
    # Two identical batteries, no post-event need: equal shares are cheapest (5 kWh each).
    p = make([bat("A", "S1", soc=12.0, dis=10.0), bat("B", "S2", soc=12.0, dis=10.0)], {"S1": [0], "S2": [0]}, 10.0, 1, {"S1": [0], "S2": [0]})
    plan = solve_fast(p)
    assert plan.setpoint_kw[:, 0] == pytest.approx([5.0, 5.0], abs=1e-6)


def test_post_event_need_is_protected():
    # A's subscriber needs its 10 kWh after the event (post-event forecast 10 kW for 1 h); B's needs
    # nothing. The optimizer takes all 10 kWh from B: no one loses energy. ISO-first drains pro rata
    # (5 + 5) and A's subscriber buys 5 kWh back at retail.
    p = make(
        [bat("A", "S1", soc=12.0, dis=10.0), bat("B", "S2", soc=12.0, dis=10.0)],
        {"S1": [0], "S2": [0]}, 10.0, 1, {"S1": [10.0], "S2": [0.0]},
    )
    assert p.need_kwh == pytest.approx([10.0, 0.0])
    plan = solve_fast(p)
    assert plan.setpoint_kw[:, 0] == pytest.approx([0.0, 10.0], abs=1e-6)
    assert evaluate_plan(p, plan.setpoint_kw)["subscriber_impact_kwh"] == pytest.approx(0.0, abs=1e-6)
    iso = iso_first(p)
    assert iso[:, 0] == pytest.approx([5.0, 5.0], abs=1e-6)
    assert evaluate_plan(p, iso)["subscriber_impact_kwh"] == pytest.approx(5.0, abs=1e-6)
    sc = self_consumption_first(p)
    assert sc[:, 0] == pytest.approx([0.0, 10.0], abs=1e-6)
    table = compare_plans(p)
    assert table.loc["iso_first", "subscriber_energy_lost_kwh"] == pytest.approx(5.0, abs=1e-6)
    assert table.loc["optimizer", "subscriber_energy_lost_kwh"] == pytest.approx(0.0, abs=1e-6)


def test_objective_terms_by_hand():
    # One battery, eta 0.81, gives 9 kWh of a 10 kWh target (1 h). Need 0.
    p = make([bat("A", "S1", soc=12.0, dis=10.0, eta=0.81)], {"S1": [0]}, 10.0, 1, {"S1": [0]})
    prices = Prices(shortfall_usd_per_kwh=2.3, retail_usd_per_kwh=0.17, fairness_usd_per_kwh2=0.002, degradation_usd_per_kwh=0.05)
    ev = evaluate_plan(p, np.array([[9.0]]), prices)
    assert ev["shortfall_usd"] == pytest.approx(2.3 * 1.0)
    assert ev["impact_usd"] == pytest.approx(0.0)
    assert ev["fairness_usd"] == pytest.approx(0.002 * 81.0)
    assert ev["degradation_usd"] == pytest.approx(0.05 * 9.0 / 0.9)
    ref = solve_reference(p, prices)
    assert ref.setpoint_kw[0, 0] == pytest.approx(9.0, abs=1e-4)


def test_program_agreements():
    # A has used its 2 events this month; B may only run the first hour of a 2-hour event.
    p = make(
        [
            bat("A", "S1", events_this_month=2, max_events_per_month=2, max_event_hours=""),
            bat("B", "S2", events_this_month=0, max_events_per_month=5, max_event_hours=1),
        ],
        {"S1": [0, 0], "S2": [0, 0]}, 5.0, 2,
    )
    plan = solve_fast(p)
    assert plan.setpoint_kw[0] == pytest.approx([0.0, 0.0])
    assert plan.setpoint_kw[1] == pytest.approx([5.0, 0.0], abs=1e-6)
    assert plan.shortfall_kwh == pytest.approx(5.0, abs=1e-6)
    assert any("no events left" in w for w in p.warnings)


def test_two_batteries_one_non_export_site_share_the_cap():
    # Two non-export batteries at one site with 4 kW net load: together at most 4 kW.
    p = make([bat("A", "S1", dis=6.0, export=False), bat("B", "S1", dis=2.0, export=False)], {"S1": [4.0]}, 10.0, 1)
    plan = solve_fast(p)
    assert plan.setpoint_kw[:, 0].sum() == pytest.approx(4.0, abs=1e-6)
    assert check_hard_constraints(p, plan.setpoint_kw) == []


def test_gini_by_hand():
    assert gini(np.array([1.0, 1.0, 1.0])) == pytest.approx(0.0)
    assert gini(np.array([0.0, 0.0, 3.0])) == pytest.approx(2 / 3)
    assert gini(np.array([1.0, 3.0])) == pytest.approx(0.25)
    assert gini(np.array([])) == 0.0
