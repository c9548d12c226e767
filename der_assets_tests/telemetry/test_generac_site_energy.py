"""Generac PWRcell battery and grid energy from vendor model 64259's lifetime counters.

Without it a PWRcell battery has no battery_kwh at all (the standard models carry no energy
counter), so dispatch could command it but never measure what it delivered.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from der_assets.telemetry.parsers import generac

from ._helpers import channel, parse, poll_log

GENERAC_DEFS = Path(__file__).resolve().parents[1] / "fixtures" / "generac_pwrcell" / "edalquist_pwrcell_sunspec" / \
    "vendor_models_json"


def _u64(value: int) -> list[int]:
    return [(value >> shift) & 0xFFFF for shift in (48, 32, 16, 0)]


def _body(**ws) -> list[int]:
    regs = [0] * generac.LENGTH
    at = 0
    for name, n in generac.LAYOUT:
        if name in ws:
            regs[at:at + n] = _u64(ws[name])
        at += n
    return regs


def _snapshot(polled_at: str, soc: float, **ws) -> dict:
    return {"format": "der_assets.sunspec_snapshot/1", "polled_at": polled_at, "unit_id": 1, "base_address": 40000,
            "models": [{"id": 124, "address": 40122, "length": 24, "points": {"ChaState": soc}, "registers": []},
                       {"id": 64259, "address": 40148, "length": 64, "points": None, "registers": _body(**ws)}]}


KWH = 3_600_000  # watt-seconds in one kWh


def test_the_layout_is_generacs_published_definition():
    points = json.loads((GENERAC_DEFS / "model_64259.json").read_text())["group"]["points"][2:]  # after ID and L
    assert [(p["name"], p.get("size", 1)) for p in points] == list(generac.LAYOUT)
    assert sum(n for _, n in generac.LAYOUT) == generac.LENGTH == 64
    assert {p["name"]: p.get("units") for p in points if p["name"] in generac.COUNTERS_WS} == dict.fromkeys(
        generac.COUNTERS_WS, "Ws")


def test_battery_and_grid_energy_are_the_counters_differences():
    # 12:00 -> 12:15: 0.5 kWh discharged, 0.1 kWh imported; 12:15 -> 12:30: 0.25 kWh charged, 0.2 kWh exported
    log = poll_log(_snapshot("2026-07-15T12:00:00Z", 80.0, bat_out=10 * KWH, bat_in=8 * KWH, net_in=50 * KWH, net_out=7 * KWH),
                   _snapshot("2026-07-15T12:15:00Z", 77.0, bat_out=10 * KWH + KWH // 2, bat_in=8 * KWH,
                             net_in=50 * KWH + KWH // 10, net_out=7 * KWH),
                   _snapshot("2026-07-15T12:30:00Z", 78.5, bat_out=10 * KWH + KWH // 2, bat_in=8 * KWH + KWH // 4,
                             net_in=50 * KWH + KWH // 10, net_out=7 * KWH + KWH // 5))
    rows = parse("generac", "snapshot", log, received_at=pd.Timestamp("2026-07-15T12:31Z"))
    battery, grid = channel(rows, "battery_kwh"), channel(rows, "grid_kwh")
    assert battery["interval_start"].tolist() == [pd.Timestamp("2026-07-15T12:00Z"), pd.Timestamp("2026-07-15T12:15Z")]
    assert battery["value"].tolist() == pytest.approx([0.5, -0.25])
    assert grid["value"].tolist() == pytest.approx([0.1, -0.2])
    assert set(battery["quality"]) == set(grid["quality"]) == {"measured"}  # readings on the grid's boundaries
    assert set(rows["source"]) == {"generac"}


def test_a_fall_back_hour_reads_in_utc():
    # 01:45 EDT and 01:00 EST are 15 minutes apart (05:45Z and 06:00Z)
    log = poll_log(_snapshot("2026-11-01T01:45:00-04:00", 50.0, bat_out=KWH, bat_in=0),
                   _snapshot("2026-11-01T01:00:00-05:00", 48.0, bat_out=KWH + KWH // 4, bat_in=0))
    battery = channel(parse("generac", "snapshot", log, received_at=pd.Timestamp("2026-11-01T07:00Z")), "battery_kwh")
    assert battery["interval_start"].tolist() == [pd.Timestamp("2026-11-01T05:45Z")]
    assert battery["value"].tolist() == pytest.approx([0.25])


def test_not_implemented_counters_give_no_energy_not_zero():
    ones = 2**64 - 1
    log = poll_log(_snapshot("2026-07-15T12:00:00Z", 80.0, bat_out=ones, bat_in=ones),
                   _snapshot("2026-07-15T12:15:00Z", 79.0, bat_out=ones, bat_in=ones))
    rows = parse("generac", "snapshot", log, received_at=pd.Timestamp("2026-07-15T12:31Z"))
    battery = channel(rows, "battery_kwh")
    assert battery["value"].isna().all() and not (battery["quality"].isin(["measured", "estimated"])).any()
    assert math.isnan(generac.counters_wh(_body(bat_out=ones))["bat_out"])
    assert generac.counters_wh([1, 2, 3]) is None  # a cut-off model body is not read
