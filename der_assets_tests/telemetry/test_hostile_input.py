"""Issue 17, items 6-10: no invented or silently wrong data from a hostile payload.

Each test reproduces one defect an adversarial review found (they all failed before the fix):
an absurd timestamp, a non-finite number, a boolean where a number or an enum belongs, a
conflicting duplicate resolved silently, a Green Button reading whose own duration was ignored.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry import ParseError
from der_assets.telemetry.counters import counter_to_intervals
from der_assets.telemetry.parsers.enphase import parse_v4_many
from der_assets.telemetry.parsers.sunspec import FORMAT as SUNSPEC_FORMAT

from ._helpers import channel, fixture_json, parse, poll_log, sonnen_mock

RECEIVED = pd.Timestamp("2026-07-16T00:20Z")
ATHENS = "Europe/Athens"
NY = "America/New_York"
DAY_S = int(pd.Timestamp("2026-07-15T00:00Z").timestamp())


def hostile(source, endpoint, payload, **kw):
    kw.setdefault("received_at", RECEIVED)
    return parse(source, endpoint, payload, **kw)


# ---- payload builders --------------------------------------------------------------------------

def sonnen_status(stamps, **fields) -> bytes:
    base = sonnen_mock("mock_sonnenbatterie_v2_charging.py", "__mock_status_charging")
    bodies = []
    for k, stamp in enumerate(stamps):
        body = dict(base, Timestamp=stamp)
        for name, values in fields.items():
            body[name] = values[k]
        bodies.append(body)
    return poll_log(*bodies)


def sonnen_powermeter(polls) -> bytes:
    """polls: (polled_at, production kwh, consumption kwh)."""
    return poll_log(*[{"polled_at": t, "body": [
        {"direction": "production", "kwh_imported": pv}, {"direction": "consumption", "kwh_imported": load}]}
        for t, pv, load in polls])


def sunspec(polls) -> bytes:
    """polls: (polled_at, WH register, SoC %)."""
    return poll_log(*[{"format": SUNSPEC_FORMAT, "polled_at": t, "unit_id": 1, "base_address": 40000,
                       "models": [{"id": 103, "points": {"W": 1000.0, "WH": wh, "WH_SF": 0}},
                                  {"id": 802, "points": {"SoC": soc}}]} for t, wh, soc in polls])


def production_json(readings) -> bytes:
    """Gateway production.json bodies: (readingTime, inverter whLifetime)."""
    return poll_log(*[{"production": [{"type": "inverters", "activeCount": 10, "readingTime": t, "wNow": 100,
                                       "whLifetime": wh}]} for t, wh in readings])


def v4_micro(ends, enwh, **envelope) -> bytes:
    doc = {"system_id": 1, "granularity": "day", "total_devices": 10,
           "intervals": [{"end_at": e, "devices_reporting": 10, "enwh": w} for e, w in zip(ends, enwh)]}
    doc.update(envelope)
    return json.dumps(doc).encode()


def flow_body(stamp: str, e_total, soc=50.0) -> dict:
    return {"Head": {"Status": {"Code": 0, "Reason": "", "UserMessage": ""}, "Timestamp": stamp},
            "Body": {"Data": {"Site": {"P_PV": 1000.0, "P_Grid": -200.0, "P_Load": -800.0, "P_Akku": 0.0,
                                       "E_Total": e_total},
                              "Inverters": {"1": {"SOC": soc, "Battery_Mode": "normal"}}}}}


def espi_feed(readings, block=None) -> bytes:
    """One forward deltaData ReadingType; readings: (start, duration, value Wh)."""
    lo = min(r[0] for r in readings)
    hi = max(r[0] + r[1] for r in readings)
    b_lo, b_dur = block if block is not None else (lo, hi - lo)
    body = "".join(f"<IntervalReading><timePeriod><duration>{d}</duration><start>{s}</start></timePeriod>"
                   f"<value>{v}</value></IntervalReading>" for s, d, v in readings)
    return f"""<feed xmlns="http://www.w3.org/2005/Atom">
  <entry><link rel="self" href="/UsagePoint/1/MeterReading/1"/>
    <link rel="related" href="/UsagePoint/1/MeterReading/1/IntervalBlock"/>
    <link rel="related" href="/ReadingType/1"/>
    <content><MeterReading xmlns="http://naesb.org/espi"/></content></entry>
  <entry><link rel="self" href="/ReadingType/1"/>
    <content><ReadingType xmlns="http://naesb.org/espi"><accumulationBehaviour>4</accumulationBehaviour>
      <flowDirection>1</flowDirection><intervalLength>900</intervalLength>
      <powerOfTenMultiplier>0</powerOfTenMultiplier><uom>72</uom></ReadingType></content></entry>
  <entry><link rel="self" href="/UsagePoint/1/MeterReading/1/IntervalBlock/1"/>
    <link rel="up" href="/UsagePoint/1/MeterReading/1/IntervalBlock"/>
    <content><IntervalBlock xmlns="http://naesb.org/espi"><interval><duration>{b_dur}</duration>
      <start>{b_lo}</start></interval>{body}</IntervalBlock></content></entry></feed>""".encode()


def solaredge_meters(readings) -> bytes:
    """Production register readings: (local label, Wh)."""
    return json.dumps({"meterEnergyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh", "meters": [
        {"meterSerialNumber": "606A1234", "meterType": "Production",
         "values": [{"date": d, "value": v} for d, v in readings]}]}}).encode()


# ---- item 6: one absurd timestamp ----------------------------------------------------------------

def test_sonnen_status_one_stamp_decades_off_is_refused_naming_it():
    payload = sonnen_status(["2026-07-15 12:00:00", "2026-07-15 12:15:00", "1996-07-15 12:30:00"])
    with pytest.raises(ParseError, match="1996-07-15T09:30:00Z"):  # 12:30 EEST
        hostile("sonnen", "status", payload, tz=ATHENS)


def test_sunspec_poll_in_2060_is_refused():
    payload = sunspec([("2026-07-15T12:00:00+00:00", 1000.0, 50), ("2026-07-15T12:15:00+00:00", 1200.0, 51),
                       ("2060-07-15T12:30:00+00:00", 1400.0, 52)])
    with pytest.raises(ParseError, match="2060-07-15T12:30:00Z is outside"):
        hostile("sunspec", "snapshot", payload)


def test_solaredge_meter_reading_in_1990_is_refused():
    payload = solaredge_meters([("2026-07-15 12:00:00", 1000), ("2026-07-15 12:15:00", 1500),
                                ("1990-07-15 12:30:00", 2000)])
    with pytest.raises(ParseError, match="1990-07-15T16:30:00Z"):
        hostile("solaredge", "meters", payload, tz=NY)


def test_fronius_power_flow_stamp_in_1980_and_archive_end_decades_later_are_refused():
    bodies = [flow_body("2026-07-15T12:00:00+00:00", 1000.0), flow_body("2026-07-15T12:15:00+00:00", 1100.0),
              flow_body("1980-07-15T12:30:00+00:00", 1200.0)]
    with pytest.raises(ParseError, match="1980-07-15T12:30:00Z"):
        hostile("fronius", "GetPowerFlowRealtimeData", poll_log(*bodies))
    archive = fixture_json("fronius_solar_api_v1_local", "akleber_fronius-json-tools",
                           "archivedata_day_2017-08-30.json")
    for node in archive["Body"]["Data"].values():
        node["End"] = "2049-08-30T23:59:59+02:00"
    with pytest.raises(ParseError, match="2049-08-30T21:59:59Z"):
        hostile("fronius", "GetArchiveData", json.dumps(archive).encode())


def test_enphase_reading_time_of_12_5_is_refused_not_a_hang():
    payload = production_json([(DAY_S + 3600, 1000.0), (12.5, 1100.0), (DAY_S + 5400, 1200.0)])
    with pytest.raises(ParseError, match="1970-01-01T00:00:12Z is outside"):
        hostile("enphase", "production.json", payload)


IVP_CONFIG = [{"eid": 1, "measurementType": "production", "state": "enabled"},
              {"eid": 2, "measurementType": "net-consumption", "state": "enabled"}]


def ivp_readings(eids=(1, 2), n=3):
    return [[{"eid": eid, "timestamp": DAY_S + 900 * k, "actEnergyDlvd": 1000.0 * (k + 1), "actEnergyRcvd": 0.0}
             for eid in eids] for k in range(n)]


def test_enphase_meter_reading_timestamp_far_in_the_future_is_refused():
    readings = ivp_readings()
    pv = channel(hostile("enphase", "ivp_meters_readings", poll_log(IVP_CONFIG, *readings)), "pv_kwh")
    assert pv["value"].tolist() == [1.0, 1.0]
    readings[2][0]["timestamp"] = 4_000_000_000  # 2096
    with pytest.raises(ParseError, match="2096-10-02"):
        hostile("enphase", "ivp_meters_readings", poll_log(IVP_CONFIG, *readings))


def test_v4_interval_after_received_at_is_refused_and_the_fast_path_leaves_it():
    ends = [DAY_S + 300 * k for k in range(1, 4)]
    fine = v4_micro(ends, [10, 20, 30])
    ahead = v4_micro([e + 3 * 86400 for e in ends], [10, 20, 30])  # three days after received_at
    assert hostile("enphase", "production_micro", fine)["value"].tolist() == [0.01, 0.02, 0.03]
    with pytest.raises(ParseError, match="2026-07-18T00:00:00Z is outside"):
        hostile("enphase", "production_micro", ahead)
    received = np.full(2, RECEIVED.value, dtype=np.int64)
    assert parse_v4_many("production_micro", [fine, ahead], received).taken.tolist() == [0]


def test_a_counter_gap_longer_than_a_day_is_missing_not_spread_as_estimated():
    t = pd.to_datetime(["2026-07-15T00:00Z", "2026-07-15T00:15Z", "2026-07-17T00:15Z", "2026-07-17T00:30Z"])
    out = counter_to_intervals(t, [0.0, 1.0, 193.0, 194.0], interval_s=900, max_gap_s=900)
    assert out["quality"].value_counts().to_dict() == {"missing": 192, "measured": 2}
    assert out["value" if "value" in out else "energy"].dropna().tolist() == [1.0, 1.0]
    # a gap under a day is still spread, as before: 4 quarter-hours of 0.5 kWh
    short = counter_to_intervals(t[:2].append(pd.to_datetime(["2026-07-15T01:15Z"])), [0.0, 1.0, 3.0],
                                 interval_s=900, max_gap_s=900)
    assert short["energy"].tolist() == [1.0, 0.5, 0.5, 0.5, 0.5]
    assert short["quality"].tolist() == ["measured"] + ["estimated"] * 4


# ---- item 7: infinity is never a value -----------------------------------------------------------

def test_json_1e400_and_1e308_watts_over_an_interval_are_refused():
    stamps = ["2026-07-15 12:00:00", "2026-07-15 12:05:00"]
    with pytest.raises(ParseError, match="non-finite"):
        hostile("sonnen", "status", sonnen_status(stamps, Production_W=["1e400", 10]).replace(b'"1e400"', b"1e400"),
                tz=ATHENS)
    with pytest.raises(ParseError, match="not finite"):  # 1e308 W x 900 s overflows
        hostile("sonnen", "status", sonnen_status(stamps, Production_W=[1e308, 1e308]), tz=ATHENS)
    with pytest.raises(ParseError, match="non-finite"):
        hostile("enphase", "production_micro", v4_micro([DAY_S + 300], [7]).replace(b'"enwh": 7', b'"enwh": 1e400'))
    body = v4_micro([DAY_S + 300], [7]).replace(b'"enwh": 7', b'"enwh": 1e400')
    assert parse_v4_many("production_micro", [body]).taken.tolist() == []


def test_xml_inf_value_is_refused():
    readings = [(DAY_S, 900, 100), (DAY_S + 900, 900, "inf")]
    with pytest.raises(ParseError, match="non-finite"):
        hostile("greenbutton", "espi", espi_feed(readings))


def test_net_register_that_overflows_when_differenced_is_refused():
    # net-consumption may fall (export), so -1.7e308 then 1.7e308 Wh is a "step" beyond any double
    bodies = [{"production": [], "consumption": [{"type": "eim", "measurementType": "net-consumption",
                                                   "readingTime": DAY_S + 900 * k, "wNow": 0, "whLifetime": wh}]}
              for k, wh in enumerate([-1.7e308, 1.7e308])]
    with pytest.raises(ParseError, match="overflow"):
        hostile("enphase", "production.json", poll_log(*bodies))


# ---- item 8: booleans and epoch zero -------------------------------------------------------------

def test_v4_end_at_false_or_zero_is_refused_on_both_paths():
    for end in (False, 0):
        body = v4_micro([end, DAY_S + 300], [5, 6])
        with pytest.raises(ParseError):
            hostile("enphase", "production_micro", body)
        assert parse_v4_many("production_micro", [body]).taken.tolist() == []


def test_v4_boolean_envelope_is_refused_not_ignored():
    body = v4_micro([DAY_S + 300, DAY_S + 600], [5, 6], start_at=True, end_at=DAY_S + 600)
    with pytest.raises(ParseError, match="boolean"):
        hostile("enphase", "production_micro", body)
    assert parse_v4_many("production_micro", [body]).taken.tolist() == []


def test_green_button_start_of_minus_zero_is_refused():
    feed = espi_feed([(DAY_S, 900, 100), (DAY_S + 900, 900, 200)]).replace(
        f"<start>{DAY_S}</start></timePeriod>".encode(), b"<start>-0</start></timePeriod>")
    with pytest.raises(ParseError, match="outside"):  # before its block, and before 2000
        hostile("greenbutton", "espi", feed)
    unblocked = feed.replace(f"<interval><duration>1800</duration>\n      <start>{DAY_S}</start></interval>".encode(), b"")
    assert unblocked != feed
    with pytest.raises(ParseError, match="1970-01-01T00:00:00Z is outside"):
        hostile("greenbutton", "espi", unblocked)


def test_boolean_type_fields_are_refused_not_moved_to_another_channel():
    readings = ivp_readings(eids=(True, 2))  # int(True) is 1: these readings became production
    with pytest.raises(ParseError, match="boolean True"):
        hostile("enphase", "ivp_meters_readings", poll_log(IVP_CONFIG, *readings))
    bad_state = [dict(IVP_CONFIG[0], state=True), IVP_CONFIG[1]]
    with pytest.raises(ParseError, match="state True is not a string"):
        hostile("enphase", "ivp_meters_readings", poll_log(bad_state, *ivp_readings()))
    polls = json.loads(sonnen_powermeter([("2026-07-15T12:00:00+00:00", 1.0, 2.0)]))
    polls["body"][0]["direction"] = True
    with pytest.raises(ParseError, match="direction True is not a string"):
        hostile("sonnen", "powermeter", json.dumps(polls).encode())


def test_boolean_status_code_and_scale_factor_are_refused():
    bad = flow_body("2026-07-15T12:00:00+00:00", 1000.0)
    bad["Head"]["Status"]["Code"] = False  # False == 0 in Python: it read as "OK"
    with pytest.raises(ParseError, match="boolean False"):
        hostile("fronius", "GetPowerFlowRealtimeData", poll_log(bad))
    doc = json.loads(sunspec([("2026-07-15T12:00:00+00:00", 1000.0, 50)]))
    doc["models"][0]["points"]["WH_SF"] = True
    with pytest.raises(ParseError, match="boolean True"):
        hostile("sunspec", "snapshot", json.dumps(doc).encode())


# ---- item 9: conflicting duplicates are suspect, equal ones are fine ------------------------------

def test_green_button_conflicting_duplicate_is_suspect_and_an_equal_one_is_not():
    conflict = channel(hostile("greenbutton", "espi", espi_feed(
        [(DAY_S, 900, 100), (DAY_S + 900, 900, 200), (DAY_S + 900, 900, 900)])), "grid_kwh")
    assert conflict["value"].tolist() == [0.1, 0.9]
    assert conflict["quality"].tolist() == ["measured", "suspect"]
    same = channel(hostile("greenbutton", "espi", espi_feed(
        [(DAY_S, 900, 100), (DAY_S + 900, 900, 200), (DAY_S + 900, 900, 200)])), "grid_kwh")
    assert same["value"].tolist() == [0.1, 0.2] and (same["quality"] == "measured").all()


def test_solaredge_duplicated_counter_reading_is_no_measured_75_mwh_step():
    readings = [("2026-07-15 12:00:00", 1000), ("2026-07-15 12:15:00", 1500), ("2026-07-15 12:30:00", 2000),
                ("2026-07-15 12:30:00", 75_082_000), ("2026-07-15 12:45:00", 75_082_400)]
    pv = channel(hostile("solaredge", "meters", solaredge_meters(readings), tz=NY), "pv_kwh")
    assert pv["value"].tolist() == pytest.approx([0.5, 75_080.5, 0.4])  # 75,082,000 - 1,500 Wh
    assert pv["quality"].tolist() == ["measured", "suspect", "suspect"]
    same = readings[:3] + [("2026-07-15 12:30:00", 2000), ("2026-07-15 12:45:00", 2400)]
    pv = channel(hostile("solaredge", "meters", solaredge_meters(same), tz=NY), "pv_kwh")
    assert pv["value"].tolist() == pytest.approx([0.5, 0.5, 0.4]) and (pv["quality"] == "measured").all()


def test_snapshot_logs_with_conflicting_duplicates_are_suspect():
    # sonnen powermeter: two polls stamped 12:15 disagree on the production register
    pm = hostile("sonnen", "powermeter", sonnen_powermeter([
        ("2026-07-15T12:00:00+00:00", 10.0, 20.0), ("2026-07-15T12:15:00+00:00", 11.0, 21.0),
        ("2026-07-15T12:15:00+00:00", 12.0, 21.0), ("2026-07-15T12:30:00+00:00", 13.0, 22.0)]))
    assert channel(pm, "pv_kwh")["quality"].tolist() == ["suspect", "suspect"]
    assert channel(pm, "load_kwh")["quality"].tolist() == ["measured", "measured"]
    # SunSpec: two snapshots of one instant with different WH and SoC
    ss = hostile("sunspec", "snapshot", sunspec([
        ("2026-07-15T12:00:00+00:00", 1000.0, 50), ("2026-07-15T12:15:00+00:00", 1200.0, 51),
        ("2026-07-15T12:15:00+00:00", 1300.0, 58), ("2026-07-15T12:30:00+00:00", 1500.0, 52)]))
    assert channel(ss, "pv_kwh")["quality"].tolist() == ["suspect", "suspect"]
    soc = channel(ss, "soc_pct")
    assert soc.loc[soc["interval_start"] == pd.Timestamp("2026-07-15T12:00Z"), "quality"].tolist() == ["suspect"]
    # Enphase gateway: one readingTime, two whLifetime values
    gw = hostile("enphase", "production.json", production_json([
        (DAY_S, 1000.0), (DAY_S + 900, 1100.0), (DAY_S + 900, 1400.0), (DAY_S + 1800, 1500.0)]))
    assert channel(gw, "pv_kwh")["quality"].tolist() == ["suspect", "suspect"]
    # Fronius PowerFlow: one Timestamp, two E_Total values; sonnen status: one stamp, two powers
    fl = hostile("fronius", "GetPowerFlowRealtimeData", poll_log(
        flow_body("2026-07-15T12:00:00+00:00", 1000.0), flow_body("2026-07-15T12:15:00+00:00", 1100.0),
        flow_body("2026-07-15T12:15:00+00:00", 1900.0), flow_body("2026-07-15T12:30:00+00:00", 2000.0)))
    assert channel(fl, "pv_kwh")["quality"].tolist() == ["suspect", "suspect"]
    st = hostile("sonnen", "status", sonnen_status(["2026-07-15 12:00:00", "2026-07-15 12:00:00",
                                                    "2026-07-15 12:20:00"], Production_W=[100, 900, 100]), tz=ATHENS)
    assert channel(st, "pv_kwh")["quality"].tolist() == ["suspect", "estimated"]
    # the same poll logged twice is no conflict
    twice = hostile("sunspec", "snapshot", sunspec([
        ("2026-07-15T12:00:00+00:00", 1000.0, 50), ("2026-07-15T12:15:00+00:00", 1200.0, 51),
        ("2026-07-15T12:15:00+00:00", 1200.0, 51), ("2026-07-15T12:30:00+00:00", 1500.0, 52)]))
    assert (twice["quality"] == "measured").all()


# ---- item 10: each Green Button reading's own duration --------------------------------------------

def test_green_button_reading_keeps_its_own_duration():
    grid = channel(hostile("greenbutton", "espi", espi_feed(
        [(DAY_S, 900, 100), (DAY_S + 900, 900, 200), (DAY_S + 1800, 900, 300), (DAY_S + 3600, 3600, 4000)])),
        "grid_kwh")
    assert grid["interval_s"].tolist() == [900, 900, 900, 3600]
    assert grid["value"].tolist() == [0.1, 0.2, 0.3, 4.0]


def test_green_button_reading_outside_its_block_is_refused():
    feed = espi_feed([(DAY_S, 900, 100), (DAY_S + 900, 900, 200), (DAY_S + 7200, 900, 300)],
                     block=(DAY_S, 1800))
    with pytest.raises(ParseError, match=f"IntervalReading {DAY_S + 7200}\\+900 s lies outside"):
        hostile("greenbutton", "espi", feed)


def test_fronius_inverter_keys_a_second_apart_over_a_long_window_are_refused():
    # Start..End of 399 days at a 1 s "step" was 34.5 million rows of arrays (several GB)
    archive = {"Head": {"RequestArguments": {"SeriesType": "Detail"}, "Status": {"Code": 0},
                        "Timestamp": "2026-07-15T00:00:00+00:00"},
               "Body": {"Data": {"inverter/1": {
                   "Start": "2025-06-11T00:00:00+00:00", "End": "2026-07-15T00:00:00+00:00",
                   "Data": {"EnergyReal_WAC_Sum_Produced": {"Unit": "Wh", "Values": {"0": 1.0, "1": 2.0}}}}}}}
    with pytest.raises(ParseError, match="1 s apart: not a logging step"):
        hostile("fronius", "GetArchiveData", json.dumps(archive).encode())


def test_a_conflicting_duplicate_reaches_the_review_queue_on_both_fleet_day_paths():
    from der_assets.registry.demo import demo_fleet
    from der_assets.telemetry.daily import LandedPayload, normalize_day, normalize_day_reference

    fleet = demo_fleet(30)
    site = fleet.loc[fleet["telemetry_source"] == "solaredge", "site_id"].iloc[0]
    registry = fleet[fleet["site_id"] == site].assign(timezone=NY)
    readings = [("2026-07-15 12:00:00", 1000), ("2026-07-15 12:15:00", 1500), ("2026-07-15 12:30:00", 2000),
                ("2026-07-15 12:30:00", 2600), ("2026-07-15 12:45:00", 3000)]
    landed = [LandedPayload(1, "solaredge", "meters", site, RECEIVED, solaredge_meters(readings))]
    kwargs = dict(day_start=pd.Timestamp("2026-07-15T00:00Z"), believed_at=RECEIVED, sources=["solaredge"])
    for result in (normalize_day(landed, registry, **kwargs), normalize_day_reference(landed, registry, **kwargs)):
        items = result.review[result.review["issue"] == "suspect_value"]
        assert items[["channel", "n_intervals"]].values.tolist() == [["pv_kwh", 2]]
        assert items["first_interval"].iloc[0] == pd.Timestamp("2026-07-15T16:15Z")  # 12:15 EDT


def test_an_xml_declaration_naming_an_unknown_encoding_is_a_parse_error():
    # make fuzz found it: one flipped byte in encoding="UTF-8" raised LookupError out of parse_payload
    feed = b'<?xml version="1.0" encoding="rTF-8"?>' + espi_feed([(DAY_S, 900, 100)])
    with pytest.raises(ParseError, match="encoding"):
        hostile("greenbutton", "espi", feed)
