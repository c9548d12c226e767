"""The worked case in the file contract: 12 batteries, 24 intervals, minimum shortfall 30.54 kWh."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from der_assets.dispatch import (
    build_problem,
    check_hard_constraints,
    compare_plans,
    min_shortfall_lp,
    plan_from_files,
    read_fleet,
    read_forecast,
    read_instruction,
    solve_fast,
)
from der_assets.dispatch.contract import SUMMARY_KEYS

from .conftest import independent_violations


def _problem(d):
    ins = read_instruction(d / "instruction.json")
    return build_problem(read_fleet(d / "fleet.csv"), read_forecast(d / "forecast.csv", ins), ins)


def test_example_plan_from_files_reaches_minimum_shortfall(example_dir, tmp_path):
    out = tmp_path / "out" / "plan.csv"
    summary = plan_from_files(example_dir / "fleet.csv", example_dir / "forecast.csv", example_dir / "instruction.json", out)
    assert summary["shortfall_kwh"] == pytest.approx(30.54, abs=0.01)
    assert summary["status"] == "shortfall"
    assert summary["instruction_id"] == "EXAMPLE-1"
    assert summary["n_batteries"] == 12
    assert summary["target_kwh"] == pytest.approx(41.189 * 2, abs=1e-6)
    assert summary["planned_kwh"] + summary["shortfall_kwh"] == pytest.approx(summary["target_kwh"], abs=1e-6)
    assert set(SUMMARY_KEYS) <= set(summary)
    json.dumps(summary)  # the CLI prints it

    plan = pd.read_csv(out)
    assert list(plan.columns) == ["battery_id", "interval_start", "setpoint_kw", "soc_end_kwh"]
    assert len(plan) == 12 * 24
    assert plan.groupby("battery_id").size().eq(24).all()
    assert independent_violations(example_dir / "fleet.csv", example_dir / "forecast.csv", out, 5) == []
    # B5 is unavailable: zero throughout.
    assert plan.loc[plan["battery_id"] == "B5", "setpoint_kw"].abs().max() == 0


def test_example_without_out_path_returns_summary_only(example_dir):
    summary = plan_from_files(example_dir / "fleet.csv", example_dir / "forecast.csv", example_dir / "instruction.json")
    assert summary["shortfall_kwh"] == pytest.approx(30.54, abs=0.01)
    assert not list(example_dir.glob("*.tmp"))


def test_example_fast_matches_lp_and_checks(example_dir):
    problem = _problem(example_dir)
    plan = solve_fast(problem)
    assert check_hard_constraints(problem, plan.setpoint_kw) == []
    assert plan.shortfall_kwh == pytest.approx(min_shortfall_lp(problem), abs=1e-4)
    assert min_shortfall_lp(problem) == pytest.approx(30.54, abs=0.01)


def test_example_comparison_optimizer_is_best(example_dir):
    table = compare_plans(_problem(example_dir))
    assert set(table.index) == {"optimizer", "iso_first", "self_consumption_first"}
    assert (table["violations"] == 0).all()
    opt = table.loc["optimizer"]
    assert opt["shortfall_kwh"] <= table["shortfall_kwh"].min() + 1e-4
    assert opt["objective_usd"] <= table["objective_usd"].min() + 1e-3
    # Self-consumption first protects subscribers and pays for it in shortfall.
    sc = table.loc["self_consumption_first"]
    assert sc["shortfall_kwh"] > opt["shortfall_kwh"]
    assert sc["subscriber_energy_lost_kwh"] <= opt["subscriber_energy_lost_kwh"] + 1e-9
