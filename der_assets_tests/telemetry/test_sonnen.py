"""sonnen local API v2 against the MarkusBiggus mock responses (FIXTURE-VERIFIED), including
local-time DST stamps."""

from __future__ import annotations

import copy

import pandas as pd
import pytest

from der_assets.telemetry import ParseError

from ._helpers import channel, parse, poll_log, sonnen_mock

CHG = "mock_sonnenbatterie_v2_charging.py"
DIS = "mock_sonnenbatterie_v2_discharging.py"
TZ = "Europe/Athens"  # UTC+2 in November, as the mocks' UTC_Offet says


def test_status_signs_from_charging_and_discharging_snapshots():
    chg = sonnen_mock(CHG, "__mock_status_charging")
    dis = sonnen_mock(DIS, "__mock_status_discharging")
    # fixture physics: 2972 pv = 1578 load + 1394 charge; 1541 load = 103 pv + 1438 discharge
    assert chg["Production_W"] == chg["Consumption_W"] - chg["Pac_total_W"]
    df = parse("sonnen", "status", poll_log(chg, dis), tz=TZ)
    v = df.set_index("channel")["value"]
    q_h = 0.25 / 1000  # W over 15 min -> kWh
    assert v["pv_kwh"] == pytest.approx((2972 + 103) / 2 * q_h)
    assert v["load_kwh"] == pytest.approx((1578 + 1541) / 2 * q_h)
    assert v["battery_kwh"] == pytest.approx((-1394 + 1438) / 2 * q_h)  # + discharge, - charge
    assert v["grid_kwh"] == 0.0
    assert v["soc_pct"] == 81.0  # USOC, not RSOC (88)
    assert df["interval_start"].unique().tolist() == [pd.Timestamp("2023-11-20T15:00:00Z")]  # 17:00:55 local
    assert (df["quality"] == "estimated").all()


def test_status_grid_feed_in_is_export():
    s = sonnen_mock(CHG, "__mock_status_charging")
    s["GridFeedIn_W"] = "400"  # numbers may arrive as strings
    grid = channel(parse("sonnen", "status", poll_log(s), tz=TZ), "grid_kwh")
    assert grid["value"].iloc[0] == pytest.approx(-0.1)


def test_status_spring_forward_stamp_is_refused():
    s = sonnen_mock(CHG, "__mock_status_charging")
    s["Timestamp"] = "2024-03-31 03:30:00"  # Europe/Athens jumps 03:00 -> 04:00
    with pytest.raises(ParseError, match="does not exist") as err:
        parse("sonnen", "status", poll_log(s), tz=TZ)
    assert "sonnen/status site=SITE-1" in str(err.value)


def test_status_fall_back_stamps_placed_by_poll_order():
    base = sonnen_mock(DIS, "__mock_status_discharging")
    stamps = ["2024-10-27 03:20:00", "2024-10-27 03:50:00", "2024-10-27 03:20:00", "2024-10-27 03:50:00"]
    bodies = [dict(base, Timestamp=s) for s in stamps]
    df = parse("sonnen", "status", poll_log(*bodies), tz=TZ)
    starts = channel(df, "pv_kwh")["interval_start"].tolist()
    # 03:20 EEST = 00:20Z, 03:50 EEST = 00:50Z, then the same wall times in EET = 01:20Z, 01:50Z
    assert starts == [pd.Timestamp(t) for t in
                      ["2024-10-27T00:15Z", "2024-10-27T00:45Z", "2024-10-27T01:15Z", "2024-10-27T01:45Z"]]
    assert (df["quality"] != "suspect").all()


def test_status_fall_back_stamp_seen_once_is_suspect():
    base = sonnen_mock(DIS, "__mock_status_discharging")
    df = parse("sonnen", "status", poll_log(dict(base, Timestamp="2024-10-27 03:20:00")), tz=TZ)
    assert (df["quality"] == "suspect").all()


def test_powermeter_counters_need_poll_times():
    pm = sonnen_mock(CHG, "__mock_powermeter")
    assert [m["direction"] for m in pm] == ["production", "consumption"]
    later = copy.deepcopy(pm)
    later[0]["kwh_imported"] += 0.5
    later[1]["kwh_imported"] += 0.25
    wrap = lambda t, b: {"polled_at": t, "body": b}
    df = parse("sonnen", "powermeter", poll_log(wrap("2023-11-20T17:00:00+02:00", pm), wrap("2023-11-20T17:15:00+02:00", later)))
    v = df.set_index("channel")["value"]
    assert v["pv_kwh"] == pytest.approx(0.5) and v["load_kwh"] == pytest.approx(0.25)
    assert (df["quality"] == "measured").all()
    with pytest.raises(ParseError, match="carry no time"):
        parse("sonnen", "powermeter", poll_log(pm, later))
