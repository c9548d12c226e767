"""Enphase: IQ Gateway local endpoints against real captures (FIXTURE-VERIFIED), and the
Enlighten v4 cloud endpoints on payloads written to the documented shape (DOC-BASED)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry import CANONICAL_COLUMNS, ParseError

from ._helpers import channel, fixture_bytes, fixture_json, parse, poll_log

GW = "enphase_envoy_local"
FW7 = "7.6.185_with_cts_and_battery_3t"


def advance(body, seconds, deltas):
    """A later production.json snapshot: readingTime + seconds, whLifetime += delta per block."""
    out = copy.deepcopy(body)
    for section in ("production", "consumption"):
        for blk in out[section]:
            if blk.get("readingTime"):
                blk["readingTime"] += seconds
            key = blk.get("measurementType") or blk.get("type")
            blk["whLifetime"] += deltas.get(key, 0.0)
    return out


# ---- IQ Gateway production.json ------------------------------------------------------------

def test_firmware_3_9_36_html_error_page_is_a_parse_error():
    with pytest.raises(ParseError, match="malformed or truncated JSON") as err:
        parse("enphase", "production.json", fixture_bytes(GW, "3.9.36", "production.json"))
    assert str(err.value).startswith("enphase/production.json site=SITE-1")


def test_single_snapshot_gives_no_interval_rows():
    df = parse("enphase", "production.json", fixture_bytes(GW, FW7, "production.json"))
    assert df.empty and list(df.columns) == CANONICAL_COLUMNS


def test_poll_log_differences_lifetime_counters():
    body = fixture_json(GW, FW7, "production.json")
    # fixture: eim production whLifetime 2432969.956 at readingTime 1695769629 (2023-09-26T23:07:09Z)
    deltas = {"production": 250.0, "total-consumption": 100.0, "net-consumption": -150.0}
    later = advance(body, 900, deltas)
    latest = advance(later, 900, deltas)
    df = parse("enphase", "production.json", poll_log(body, later, latest))
    assert set(df["interval_start"]) == {pd.Timestamp("2023-09-26T23:15:00Z")}  # the one fully bracketed interval
    values = df.set_index("channel")["value"]
    assert values["pv_kwh"] == pytest.approx(0.25)
    assert values["load_kwh"] == pytest.approx(0.10)
    assert values["grid_kwh"] == pytest.approx(-0.15)  # net register fell: export
    assert (df["quality"] == "measured").all()


def test_firmware_8_3_5433_total_equals_net_is_flagged_suspect():
    body = fixture_json(GW, "8.3.5433_tot_is_net_cons", "production.json")
    cons = {b["measurementType"]: b["whLifetime"] for b in body["consumption"]}
    assert cons["total-consumption"] == cons["net-consumption"] == 5649402.426  # the known bug, in the capture
    deltas = {"production": 90.0, "total-consumption": 30.0, "net-consumption": 30.0}
    later = advance(body, 900, deltas)
    # the capture's readings are of 2026-07-29: received after them (the time rule refuses readings
    # more than a day after received_at)
    df = parse("enphase", "production.json", poll_log(body, later, advance(later, 900, deltas)),
               received_at=pd.Timestamp("2026-07-30T00:00Z"))
    assert channel(df, "pv_kwh")["quality"].eq("measured").all()
    assert channel(df, "load_kwh")["quality"].eq("suspect").all()
    assert channel(df, "grid_kwh")["quality"].eq("suspect").all()


def test_inverter_counter_rollover_at_1_19_mwh_is_unwrapped():
    body = fixture_json(GW, "docs_json_data", "production.json")
    body["production"] = [b for b in body["production"] if b["type"] == "inverters"]
    wrap = 2**32 / 3600.0
    snaps = []
    for k, wh in enumerate([wrap - 150.0, wrap - 50.0, 50.0]):
        s = copy.deepcopy(body)
        s["production"][0]["whLifetime"] = wh
        s["production"][0]["readingTime"] += 900 * k
        snaps.append(s)
    pv = channel(parse("enphase", "production.json", poll_log(*snaps)), "pv_kwh")
    assert len(pv) == 1 and pv["quality"].iloc[0] == "measured"
    assert pv["value"].iloc[0] == pytest.approx(0.1)


# ---- IQ Gateway /ivp/meters/readings -------------------------------------------------------

def advance_readings(readings, seconds, deltas):
    out = copy.deepcopy(readings)
    for m in out:
        m["timestamp"] += seconds
        d = deltas.get(m["eid"], (0.0, 0.0))
        m["actEnergyDlvd"] += d[0]
        m["actEnergyRcvd"] += d[1]
    return out


def test_meter_readings_need_the_meter_config():
    with pytest.raises(ParseError, match="no /ivp/meters config"):
        parse("enphase", "ivp_meters_readings", fixture_bytes(GW, FW7, "ivp_meters_readings"))


def test_meter_readings_poll_log_gives_pv_and_signed_grid():
    config = fixture_json(GW, FW7, "ivp_meters")
    r0 = fixture_json(GW, FW7, "ivp_meters_readings")
    # eid 704643328 = production, 704643584 = net-consumption (per the captured /ivp/meters)
    assert {m["eid"]: m["measurementType"] for m in config} == {704643328: "production", 704643584: "net-consumption"}
    deltas = {704643328: (300.0, 0.0), 704643584: (40.0, 240.0)}
    r1 = advance_readings(r0, 900, deltas)
    r2 = advance_readings(r1, 900, deltas)
    df = parse("enphase", "ivp_meters_readings", poll_log(config, r0, r1, r2))
    values = df.set_index("channel")["value"]
    assert values["pv_kwh"] == pytest.approx(0.3)
    assert values["grid_kwh"] == pytest.approx(0.04 - 0.24)
    assert df["interval_start"].unique().tolist() == [pd.Timestamp("2023-09-26T23:15:00Z")]


def test_meter_readings_storage_meter_signs_discharge_positive():
    config = fixture_json(GW, "docs_json_data", "ivp_meters.json")
    r0 = fixture_json(GW, "docs_json_data", "ivp_meters_readings.json")
    deltas = {704643328: (500.0, 0.0), 704643584: (10.0, 0.0), 704643840: (0.0, 400.0)}  # charging 400 Wh
    r1 = advance_readings(r0, 900, deltas)
    df = parse("enphase", "ivp_meters_readings", poll_log(config, r0, r1, advance_readings(r1, 900, deltas)))
    assert channel(df, "battery_kwh")["value"].tolist() == pytest.approx([-0.4])
    assert channel(df, "grid_kwh")["value"].tolist() == pytest.approx([0.01])


# ---- Enlighten v4 cloud (DOC-BASED) --------------------------------------------------------

T_END0 = 1717200300  # 2024-06-01T00:05:00Z


def v4(intervals, **env):
    """A v4 body whose envelope ends at its last interval (as the API's does for a finished pull);
    an envelope that declares more is a test of its own (test_real_capture_defects)."""
    last = max((int(i["end_at"]) for i in intervals if "end_at" in i), default=T_END0)
    body = {"system_id": 1765, "granularity": "day", "total_devices": 35, "start_at": T_END0 - 300,
            "end_at": last, "items": "intervals", "intervals": intervals,
            "meta": {"status": "normal", "last_report_at": T_END0, "last_energy_at": T_END0, "operational_at": 1}}
    body.update(env)
    return json.dumps(body).encode()


def test_production_micro_end_at_is_interval_end():
    iv = [{"end_at": T_END0 + 300 * k, "devices_reporting": 35, "powr": 744, "enwh": 62} for k in range(4)]
    iv[3]["devices_reporting"] = 30  # late micros: partial sum
    pv = channel(parse("enphase", "production_micro", v4(iv)), "pv_kwh")
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2024-06-01T00:00:00Z")
    assert pv["interval_start"].iloc[-1] == pd.Timestamp("2024-06-01T00:15:00Z")
    assert pv["value"].sum() == pytest.approx(4 * 0.062)
    assert pv["quality"].tolist() == ["measured"] * 3 + ["suspect"]
    assert set(pv["interval_s"]) == {300}


def test_production_meter_reads_wh_del_and_consumption_meter_reads_enwh():
    iv = [{"end_at": T_END0 - 300 + 900 * k, "devices_reporting": 1, "wh_del": "120"} for k in range(1, 3)]
    pv = channel(parse("enphase", "production_meter", v4(iv)), "pv_kwh")
    assert pv["value"].tolist() == pytest.approx([0.12, 0.12])  # numbers sent as strings
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2024-06-01T00:00:00Z")
    iv = [{"end_at": T_END0 - 300 + 900, "devices_reporting": 1, "enwh": 333}]
    assert channel(parse("enphase", "consumption_meter", v4(iv)), "load_kwh")["value"].iloc[0] == pytest.approx(0.333)


def test_battery_discharge_positive_charge_negative_and_soc():
    iv = [
        {"end_at": T_END0 - 300 + 900, "charge": {"enwh": 400, "devices_reporting": 1},
         "discharge": {"enwh": 0, "devices_reporting": 1}, "soc": {"percent": "97%", "devices_reporting": 1}},
        {"end_at": T_END0 - 300 + 1800, "charge": {"enwh": 0, "devices_reporting": 1},
         "discharge": {"enwh": 250, "devices_reporting": 1}, "soc": {"percent": 95, "devices_reporting": 1}},
        {"end_at": T_END0 - 300 + 2700},
    ]
    df = parse("enphase", "battery", v4(iv, last_reported_aggregate_soc="95%"))
    bat, soc = channel(df, "battery_kwh"), channel(df, "soc_pct")
    assert bat["value"].iloc[:2].tolist() == pytest.approx([-0.4, 0.25])
    assert bat["quality"].iloc[2] == "missing" and np.isnan(bat["value"].iloc[2])
    assert soc["value"].iloc[:2].tolist() == [97.0, 95.0]


def test_v4_interval_spacing_must_fit_resolution():
    iv = [{"end_at": T_END0 + k * 450, "enwh": 1} for k in range(3)]
    with pytest.raises(ParseError, match="spacing"):
        parse("enphase", "production_micro", v4(iv))


def test_v4_garbage_number_is_refused_not_zeroed():
    iv = [{"end_at": T_END0, "enwh": "n/a"}]
    with pytest.raises(ParseError, match="could not convert"):
        parse("enphase", "production_micro", v4(iv))
