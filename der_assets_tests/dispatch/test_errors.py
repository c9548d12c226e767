"""Bad input files raise DispatchInputError with one line naming the file and line/field."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from der_assets.dispatch import DispatchInputError, plan_from_files


def _run(d, **kw):
    return plan_from_files(d / "fleet.csv", d / "forecast.csv", d / "instruction.json", d / "plan.csv", **kw)


def _edit_instruction(d, **changes):
    data = json.loads((d / "instruction.json").read_text())
    data.update(changes)
    (d / "instruction.json").write_text(json.dumps(data))


def _edit_csv(d, name, row, col, value):
    df = pd.read_csv(d / name, dtype=str, keep_default_na=False)
    df.loc[row, col] = value
    df.to_csv(d / name, index=False)


def _expect(d, file, *fragments, **kw):
    with pytest.raises(DispatchInputError) as info:
        _run(d, **kw)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(file), msg
    for f in fragments:
        assert f in msg, msg
    assert not (d / "plan.csv").exists()
    return info.value


@pytest.mark.parametrize(
    "changes, fragments",
    [
        ({"end": "2026-07-15T17:00:00Z"}, ["field end", "not after start"]),
        ({"end": "2026-07-15T18:00:00Z"}, ["field end", "not after start"]),
        ({"target_kw": -5}, ["field target_kw", "negative"]),
        ({"target_kw": [41.0] * 23 + [-1.0]}, ["field target_kw", "negative"]),
        ({"target_kw": [41.0] * 5}, ["field target_kw", "5 values", "24 intervals"]),
        ({"target_kw": "lots"}, ["field target_kw", "not a finite number"]),
        ({"target_kw": True}, ["field target_kw"]),
        ({"interval_minutes": 7}, ["field interval_minutes", "whole number of 7-minute"]),
        ({"interval_minutes": 0}, ["field interval_minutes"]),
        ({"interval_minutes": 2.5}, ["field interval_minutes"]),
        ({"start": "2026-07-15T18:00:00"}, ["field start", "UTC offset"]),
        ({"start": "not a time Z"}, ["field start"]),
        ({"instruction_id": ""}, ["field instruction_id"]),
    ],
)
def test_bad_instruction(example_dir, changes, fragments):
    _edit_instruction(example_dir, **changes)
    _expect(example_dir, "instruction.json", *fragments)


def test_missing_instruction_key(example_dir):
    data = json.loads((example_dir / "instruction.json").read_text())
    del data["target_kw"]
    (example_dir / "instruction.json").write_text(json.dumps(data))
    _expect(example_dir, "instruction.json", "missing key(s): target_kw")


def test_instruction_not_json(example_dir):
    (example_dir / "instruction.json").write_text("{not json")
    _expect(example_dir, "instruction.json", "not valid JSON")


def test_unknown_resource_from_registry(example_dir):
    err = _expect(example_dir, "instruction.json", "unknown resource 'AGG-1'", "AGG-2", resource_ids=["AGG-2"])
    assert err.field == "resource_id"


def test_unknown_resource_from_fleet_column(example_dir):
    df = pd.read_csv(example_dir / "fleet.csv", dtype=str)
    df["resource_id"] = "AGG-9"
    df.to_csv(example_dir / "fleet.csv", index=False)
    _expect(example_dir, "instruction.json", "unknown resource 'AGG-1'")


@pytest.mark.parametrize(
    "row, col, value, fragments",
    [
        (2, "soc_kwh", "25", ["line 4", "field soc_kwh", "exceeds capacity_kwh", "B2"]),
        (0, "soc_kwh", "-1", ["line 2", "field soc_kwh", "negative"]),
        (3, "efficiency", "1.2", ["line 5", "field efficiency", "outside (0, 1]"]),
        (3, "efficiency", "0", ["line 5", "field efficiency", "outside (0, 1]"]),
        (1, "max_discharge_kw", "-3", ["line 3", "field max_discharge_kw", "negative"]),
        (1, "max_charge_kw", "-3", ["line 3", "field max_charge_kw", "negative"]),
        (4, "reserve_kwh", "99", ["line 6", "field reserve_kwh", "exceeds capacity_kwh"]),
        (4, "reserve_kwh", "-0.5", ["line 6", "field reserve_kwh", "negative"]),
        (5, "capacity_kwh", "0", ["line 7", "field capacity_kwh", "> 0"]),
        (6, "capacity_kwh", "abc", ["line 8", "field capacity_kwh", "not a finite number"]),
        (6, "soc_kwh", "", ["line 8", "field soc_kwh", "not a finite number"]),
        (6, "soc_kwh", "nan", ["line 8", "field soc_kwh"]),
        (7, "available", "maybe", ["line 9", "field available", "not true or false"]),
        (8, "battery_id", "B0", ["line 10", "field battery_id", "appears twice"]),
        (8, "site_id", "", ["line 10", "field site_id", "empty"]),
    ],
)
def test_bad_fleet(example_dir, row, col, value, fragments):
    _edit_csv(example_dir, "fleet.csv", row, col, value)
    err = _expect(example_dir, "fleet.csv", *fragments)
    assert err.field == col and err.line == row + 2


def test_fleet_missing_column(example_dir):
    df = pd.read_csv(example_dir / "fleet.csv", dtype=str).drop(columns=["efficiency"])
    df.to_csv(example_dir / "fleet.csv", index=False)
    _expect(example_dir, "fleet.csv", "missing column(s): efficiency")


def test_bad_agreement_value(example_dir):
    df = pd.read_csv(example_dir / "fleet.csv", dtype=str)
    df["max_event_hours"] = "2"
    df.loc[3, "max_event_hours"] = "-1"
    df.to_csv(example_dir / "fleet.csv", index=False)
    _expect(example_dir, "fleet.csv", "line 5", "field max_event_hours")


@pytest.mark.parametrize(
    "row, col, value, fragments",
    [
        (3, "interval_start", "2026-07-15T18:07:00Z", ["line 5", "field interval_start", "not on the instruction's 5-minute grid"]),
        (3, "interval_start", "2026-07-15T18:15:00", ["line 5", "field interval_start", "no UTC offset"]),
        (3, "interval_start", "yesterday Z", ["line 5", "field interval_start", "not a valid time"]),
        (4, "interval_start", "2026-07-15T18:00:00Z", ["line 6", "appears twice"]),
        (10, "load_kw", "-2", ["line 12", "field load_kw", "negative"]),
        (10, "pv_kw", "sunny", ["line 12", "field pv_kw", "not a finite number"]),
    ],
)
def test_bad_forecast(example_dir, row, col, value, fragments):
    _edit_csv(example_dir, "forecast.csv", row, col, value)
    _expect(example_dir, "forecast.csv", *fragments)


def test_missing_file(example_dir):
    (example_dir / "forecast.csv").unlink()
    _expect(example_dir, "forecast.csv", "file not found")


def test_forecast_gap_is_reported_not_repaired(example_dir):
    # An empty load cell is a gap: the non-export cap there is 0 and a warning says so.
    df = pd.read_csv(example_dir / "forecast.csv", dtype=str)
    row = df.index[(df["site_id"] == "S1")][0]
    df.loc[row, "load_kw"] = ""
    df.to_csv(example_dir / "forecast.csv", index=False)
    summary = _run(example_dir)
    assert any("missing" in w for w in summary["warnings"])
    plan = pd.read_csv(example_dir / "plan.csv")
    first = plan[(plan["battery_id"] == "B1")].iloc[0]
    assert first["setpoint_kw"] == 0


def test_impossible_target_is_a_shortfall_not_an_error(example_dir):
    _edit_instruction(example_dir, target_kw=1e6)
    summary = _run(example_dir)
    assert summary["status"] == "shortfall"
    assert summary["shortfall_kwh"] == pytest.approx(summary["target_kwh"] - summary["planned_kwh"], abs=1e-6)


def test_zero_target_and_target_list(example_dir):
    _edit_instruction(example_dir, target_kw=[0.0] * 12 + [5.0] * 12)
    summary = _run(example_dir)
    assert summary["status"] == "met"
    plan = pd.read_csv(example_dir / "plan.csv")
    per_interval = plan.groupby("interval_start")["setpoint_kw"].sum().to_numpy()
    assert per_interval[:12] == pytest.approx([0.0] * 12, abs=1e-9)
    assert per_interval[12:] == pytest.approx([5.0] * 12, abs=1e-4)
