"""Fronius Solar API v1 against real captures (FIXTURE-VERIFIED)."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from der_assets.telemetry import ParseError

from ._helpers import channel, fixture_bytes, fixture_json, parse, poll_log

AK = ("fronius_solar_api_v1_local", "akleber_fronius-json-tools")
ARCHIVE = AK + ("archivedata_day_2017-08-30.json",)
FLOW = AK + ("json__1.23.2-1__GetPowerFlowRealtimeData.json",)


def test_archive_detail_day_gives_grid_from_registers():
    raw = fixture_json(*ARCHIVE)
    regs = raw["Body"]["Data"]["meter:16220118"]["Data"]
    first_last = {k: (v["Values"]["0"], v["Values"]["86100"]) for k, v in regs.items()}
    import_wh = first_last["EnergyReal_WAC_Plus_Absolute"][1] - first_last["EnergyReal_WAC_Plus_Absolute"][0]
    export_wh = first_last["EnergyReal_WAC_Minus_Absolute"][1] - first_last["EnergyReal_WAC_Minus_Absolute"][0]
    assert (import_wh, export_wh) == (37, 10279)  # read off the file by hand

    grid = channel(parse("fronius", "GetArchiveData", fixture_bytes(*ARCHIVE)), "grid_kwh")
    assert len(grid) == 288  # the claimed day, 5-min steps
    assert grid["interval_start"].iloc[0] == pd.Timestamp("2017-08-29T22:00:00Z")  # 00:00+02:00
    assert grid["interval_start"].iloc[-1] == pd.Timestamp("2017-08-30T21:55:00Z")
    assert (grid["quality"] == "measured").sum() == 287
    assert grid["quality"].iloc[-1] == "missing"  # no register reading at 24:00: not a zero
    assert grid["value"].sum() == pytest.approx((import_wh - export_wh) / 1000.0)
    assert set(grid["device_id"]) == {"16220118"} and set(grid["interval_s"]) == {300}


def test_archive_dailysum_is_not_interval_data():
    with pytest.raises(ParseError, match="DailySum"):
        parse("fronius", "GetArchiveData", fixture_bytes(*AK, "archivedata_dailysum_2017-08-30.json"))


def test_archive_error_status_is_raised_with_reason():
    raw = fixture_json(*ARCHIVE)
    raw["Head"]["Status"] = {"Code": 255, "Reason": "Archive busy", "UserMessage": ""}
    with pytest.raises(ParseError, match="Archive busy"):
        parse("fronius", "GetArchiveData", json.dumps(raw).encode())


def test_archive_keys_past_end_are_refused():
    raw = fixture_json(*ARCHIVE)
    for ch in raw["Body"]["Data"]["meter:16220118"]["Data"].values():
        ch["Values"]["90000"] = 1
    with pytest.raises(ParseError, match="do not fit Start..End"):
        parse("fronius", "GetArchiveData", json.dumps(raw).encode())


def test_archive_fall_back_day_has_25_hours():
    raw = fixture_json(*ARCHIVE)
    node = raw["Body"]["Data"]["meter:16220118"]
    node["Start"], node["End"] = "2017-10-29T00:00:00+02:00", "2017-10-29T23:59:59+01:00"
    for ch in node["Data"].values():
        ch["Values"] = {str(300 * k): 1000 + k for k in range(300)}  # 1 Wh per step on both registers
    grid = channel(parse("fronius", "GetArchiveData", json.dumps(raw).encode()), "grid_kwh")
    assert len(grid) == 300 and (grid["quality"] == "measured").sum() == 299
    assert grid["interval_start"].iloc[-1] == pd.Timestamp("2017-10-29T22:55:00Z")


def test_power_flow_snapshot_signs():
    df = parse("fronius", "GetPowerFlowRealtimeData", fixture_bytes(*FLOW))
    v = df.set_index("channel")["value"]
    # P_Grid -1209.74 W (export), P_Load -235.26 W (consumption), P_Akku 0, SOC 99, for 15 min
    assert v["grid_kwh"] == pytest.approx(-1209.74 * 0.25 / 1000)
    assert v["load_kwh"] == pytest.approx(235.26 * 0.25 / 1000)
    assert v["battery_kwh"] == 0.0
    assert v["soc_pct"] == 99.0
    assert "pv_kwh" not in v  # one E_Total reading is no interval yet
    assert (df["quality"] == "estimated").all()
    assert df["interval_start"].unique().tolist() == [pd.Timestamp("2022-09-05T15:15:00Z")]  # 17:24:40+02:00


def test_power_flow_poll_log_uses_e_total_counter_for_pv():
    a = fixture_json(*FLOW)
    a["Head"]["Timestamp"] = "2022-09-05T17:15:00+02:00"
    b = copy.deepcopy(a)
    b["Head"]["Timestamp"] = "2022-09-05T17:30:00+02:00"
    b["Body"]["Data"]["Site"]["E_Total"] += 380.0
    pv = channel(parse("fronius", "GetPowerFlowRealtimeData", poll_log(a, b)), "pv_kwh")
    assert pv["value"].tolist() == pytest.approx([0.38]) and pv["quality"].tolist() == ["measured"]
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2022-09-05T15:15:00Z")


def test_power_flow_meter_at_load_with_null_pv():
    df = parse("fronius", "GetPowerFlowRealtimeData.fcgi",
               fixture_bytes("fronius_solar_api_v1_local", "pyfronius", "v1__solar_api__v1__GetPowerFlowRealtimeData.fcgi"))
    v = df.set_index("channel")["value"]
    assert v["grid_kwh"] == pytest.approx(367.722145 * 0.25 / 1000)  # night import
    assert v["load_kwh"] == pytest.approx(367.722145 * 0.25 / 1000)
    assert "battery_kwh" not in v and "pv_kwh" not in v  # P_Akku null: no battery; never a 0
