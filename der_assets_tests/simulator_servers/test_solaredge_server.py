"""SolarEdge twin over real loopback HTTP: documented shapes, parser round trip, DST, limits, control.

No real SolarEdge capture is in shared/fixtures (the SolarNetwork ones are GPL and were held out),
so conformance here is against the documented shapes in reference/vendor-formats.md section 1.
Round-trip precision: energyDetails carries Wh to 3 decimals with the remainder carried, so a
parsed window sums to the twin within 1e-6 kWh.
"""

from __future__ import annotations

import re
import threading

import httpx
import pandas as pd
import pytest

from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.servers import solaredge
from der_assets.simulator.servers.runner import serving
from der_assets.telemetry import parse_payload

from ._shape import assert_same_shape, make_hub

KEY = "se-test-key"
SITE, REF, TZ = "S-00002", "3996964", "America/Chicago"  # export allowed, so a discharge command shows
NY_SITE, NY_REF = "S-00014", "5678962"
LOCAL_RE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")

# documented shapes (vendor-formats.md section 1); batteryCount and the meter model are from the PDF [A]
DOC_ENERGY = {"energyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh",
                                "meters": [{"type": "Production", "values": [{"date": "2026-07-15 00:00:00", "value": 1.0}]}]}}
DOC_POWER = {"powerDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "W",
                              "meters": [{"type": "Production", "values": [{"date": "2026-07-15 00:00:00", "value": 1.0}]}]}}
DOC_METERS = {"meterEnergyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh", "meters": [
    {"meterSerialNumber": "606", "connectedSolaredgeDeviceSN": "7F1", "model": "SE-RGMTR", "meterType": "Production",
     "values": [{"date": "2026-07-15 16:19:30", "value": 3.7539808e7}]}]}}
DOC_STORAGE = {"storageData": {"batteryCount": 1, "batteries": [
    {"nameplate": 20000.0, "serialNumber": "B", "modelNumber": "M", "telemetryCount": 1, "telemetries": [
        {"timeStamp": "2026-07-15 16:19:30", "power": 0.0, "batteryState": 3, "lifeTimeEnergyCharged": 1.0,
         "lifeTimeEnergyDischarged": 1.0, "batteryPercentageState": 50.0, "fullPackEnergyAvailable": 1.0,
         "internalTemp": 25.0, "ACGridCharging": 0.0}]}]}}


def _get(client, base, path, **params):
    return client.get(base + path, params={"api_key": KEY, **params})


def _day(unit="QUARTER_OF_AN_HOUR", start="2026-07-15 00:00:00", end="2026-07-16 00:00:00"):
    return {"startTime": start, "endTime": end, "timeUnit": unit}


@pytest.fixture(scope="module")
def served():
    hub, clock = make_hub(hours=20)
    with serving({"se": solaredge.build_app(hub, api_key=KEY)}) as urls, httpx.Client(timeout=10) as client:
        yield hub, clock, urls["se"], client


def test_documented_shapes_local_timestamps_and_units(served):
    hub, _, base, client = served
    for path, doc, params in (("energyDetails", DOC_ENERGY, _day()), ("powerDetails", DOC_POWER, _day()),
                              ("meters", DOC_METERS, _day()), ("storageData", DOC_STORAGE, _day())):
        r = _get(client, base, f"/site/{REF}/{path}", **params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert_same_shape(body, doc, int_keys=frozenset({"batteryCount", "telemetryCount", "batteryState"}))
        stamps = re.findall(r'"(?:date|timeStamp)":"([^"]+)"', r.text)
        assert stamps and all(LOCAL_RE.match(s) for s in stamps), "site-local, no offset, no 'T'"
    # site-local labels: the first 15-min label is the requested local midnight, not UTC
    energy = _get(client, base, f"/site/{REF}/energyDetails", **_day()).json()["energyDetails"]
    assert [m["type"] for m in energy["meters"]] == list(solaredge.METER_TYPES)
    assert energy["meters"][0]["values"][0]["date"] == "2026-07-15 00:00:00"
    # only slots that have begun: now is 20:00Z = 15:00 CDT
    assert energy["meters"][0]["values"][-1]["date"] == "2026-07-15 14:45:00"
    details = _get(client, base, f"/site/{REF}/details").json()["details"]
    assert details["id"] == int(REF) and details["location"]["timeZone"] == TZ
    assert {"peakPower", "installationDate", "status", "name"} <= set(details)
    listed = _get(client, base, "/sites/list").json()["sites"]
    solaredge_refs = set(hub.registry.loc[hub.registry["telemetry_source"] == "solaredge", "vendor_ref"])
    assert {str(s["id"]) for s in listed["site"]} == solaredge_refs and listed["count"] == len(solaredge_refs)
    # registers are the hub's lifetime counters (Wh), stamped at their reading time
    meters = _get(client, base, f"/site/{REF}/meters", **_day()).json()["meterEnergyDetails"]["meters"]
    prod = next(m for m in meters if m["meterType"] == "Production")
    first = prod["values"][0]
    at = pd.Timestamp(first["date"]).tz_localize(TZ).tz_convert("UTC")
    w = hub.window(SITE, at - pd.Timedelta(minutes=5), at, vendor="solaredge")
    assert first["value"] == round(w["pv_wh"].iloc[-1])


def test_parser_round_trip_reproduces_twin_energy(served):
    hub, _, base, client = served
    r = _get(client, base, f"/site/{REF}/energyDetails", **_day())
    rows = parse_payload("solaredge", "energyDetails", r.content, site_id=SITE, tz=TZ, received_at=hub.now())
    start = pd.Timestamp("2026-07-15 00:00", tz=TZ).tz_convert("UTC")
    twin = hub.window(SITE, start, hub.now(), vendor="solaredge")
    assert len(twin) == 15 * 12
    for channel in ("pv_kwh", "load_kwh", "grid_kwh"):
        got = rows[rows["channel"] == channel]
        assert (got["quality"] == "measured").all() and len(got) == 60
        assert abs(got["value"].sum() - twin[channel].sum()) < 1e-6, channel
    assert twin["pv_kwh"].sum() > 1.0  # a July day: there is something to compare
    # hourly slots and powerDetails (avg W) tell the same story
    hourly = parse_payload("solaredge", "energyDetails", _get(client, base, f"/site/{REF}/energyDetails",
                                                              **_day("HOUR")).content,
                           site_id=SITE, tz=TZ, received_at=hub.now())
    assert abs(hourly.loc[hourly["channel"] == "pv_kwh", "value"].sum() - twin["pv_kwh"].sum()) < 1e-6
    power = parse_payload("solaredge", "powerDetails", _get(client, base, f"/site/{REF}/powerDetails", **_day()).content,
                          site_id=SITE, tz=TZ, received_at=hub.now())
    assert abs(power.loc[power["channel"] == "pv_kwh", "value"].sum() - twin["pv_kwh"].sum()) < 1e-5
    # storageData registers difference back to the twin's battery energy
    storage = parse_payload("solaredge", "storageData", _get(client, base, f"/site/{REF}/storageData", **_day()).content,
                            site_id=SITE, tz=TZ, received_at=hub.now())
    bat = storage[storage["channel"] == "battery_kwh"]
    assert abs(bat["value"].sum() - twin["battery_kwh"].sum()) < 0.01  # registers are whole Wh


def test_dropout_is_a_slot_without_value_never_zero():
    plan = FaultPlan.from_dict({"rules": [{"kind": "dropout", "vendor": "solaredge", "sites": [SITE],
                                           "start": "2026-07-15T17:00Z", "end": "2026-07-15T17:15Z"}]})
    hub, _ = make_hub(hours=20, faults=plan)
    with serving({"se": solaredge.build_app(hub, api_key=KEY)}) as urls, httpx.Client() as client:
        values = _get(client, urls["se"], f"/site/{REF}/energyDetails", **_day()).json()["energyDetails"]["meters"][0]["values"]
    gap = next(v for v in values if v["date"] == "2026-07-15 12:00:00")  # 17:00Z in CDT
    assert "value" not in gap
    assert all("value" in v for v in values if v["date"] != "2026-07-15 12:00:00")


def test_dst_fall_back_sums_the_repeated_hour_and_spring_forward_leaves_empty_slots():
    hub, _ = make_hub(start=pd.Timestamp("2026-11-01T03:00Z"), hours=7)
    with serving({"se": solaredge.build_app(hub, api_key=KEY)}) as urls, httpx.Client() as client:
        r = _get(client, urls["se"], f"/site/{NY_REF}/energyDetails",
                 **_day(start="2026-11-01 00:00:00", end="2026-11-01 04:00:00"))
    load = next(m for m in r.json()["energyDetails"]["meters"] if m["type"] == "Consumption")["values"]
    dates = [v["date"] for v in load]
    assert len(dates) == 16 and len(set(dates)) == 16  # 01:00-01:45 listed once
    twin = hub.window(NY_SITE, pd.Timestamp("2026-11-01T04:00Z"), pd.Timestamp("2026-11-01T09:00Z"), vendor="solaredge")
    both = twin[twin["interval_start"].isin([pd.Timestamp("2026-11-01T05:00Z") + pd.Timedelta(minutes=m)
                                             for m in (0, 5, 10, 60, 65, 70)])]
    slot = next(v for v in load if v["date"] == "2026-11-01 01:00:00")
    assert slot["value"] == pytest.approx(both["load_kwh"].sum() * 1000.0, abs=1e-3)  # EDT pass + EST pass
    rows = parse_payload("solaredge", "energyDetails", r.content, site_id=NY_SITE, tz="America/New_York",
                         received_at=hub.now())
    got = rows[rows["channel"] == "load_kwh"]
    assert len(got) == 20 and (got["quality"] == "estimated").sum() == 8  # 4 summed slots split over 2 passes
    assert abs(got["value"].sum() - twin["load_kwh"].sum()) < 1e-6

    hub, _ = make_hub(start=pd.Timestamp("2026-03-08T04:00Z"), hours=6)
    with serving({"se": solaredge.build_app(hub, api_key=KEY)}) as urls, httpx.Client() as client:
        r = _get(client, urls["se"], f"/site/{NY_REF}/energyDetails",
                 **_day(start="2026-03-08 00:00:00", end="2026-03-08 05:00:00"))
    load = next(m for m in r.json()["energyDetails"]["meters"] if m["type"] == "Consumption")["values"]
    empty = [v["date"][11:16] for v in load if "value" not in v]
    assert empty == ["02:00", "02:15", "02:30", "02:45"]  # the hour that does not exist
    rows = parse_payload("solaredge", "energyDetails", r.content, site_id=NY_SITE, tz="America/New_York",
                         received_at=hub.now())
    twin = hub.window(NY_SITE, pd.Timestamp("2026-03-08T05:00Z"), pd.Timestamp("2026-03-08T09:00Z"), vendor="solaredge")
    got = rows[rows["channel"] == "load_kwh"]
    assert len(got) == 16 and abs(got["value"].sum() - twin["load_kwh"].sum()) < 1e-6


def test_credentials_and_unknown_sites_are_403(served):
    _, _, base, client = served
    assert client.get(base + f"/site/{REF}/details").status_code == 403
    bad = client.get(base + f"/site/{REF}/details", params={"api_key": "wrong"})
    assert bad.status_code == 403 and "String" in bad.json()
    assert _get(client, base, "/site/1/details").status_code == 403
    enphase_ref = "6698910"  # an Enphase system is not on this account
    assert _get(client, base, f"/site/{enphase_ref}/details").status_code == 403


def test_too_long_windows_are_403(served):
    _, _, base, client = served
    long_qh = _day(start="2026-06-01 00:00:00", end="2026-07-15 00:00:00")
    assert _get(client, base, f"/site/{REF}/energyDetails", **long_qh).status_code == 403
    assert _get(client, base, f"/site/{REF}/powerDetails", **long_qh).status_code == 403
    assert _get(client, base, f"/site/{REF}/energyDetails", **{**long_qh, "timeUnit": "DAY"}).status_code == 200
    week_plus = _day(start="2026-07-07 00:00:00", end="2026-07-15 00:00:00")
    r = _get(client, base, f"/site/{REF}/storageData", **week_plus)
    assert r.status_code == 403 and "String" in r.json()
    assert _get(client, base, f"/site/{REF}/energyDetails", startTime="2026-07-15T00:00:00Z",
                endTime="2026-07-16 00:00:00").status_code == 400


def test_daily_limit_per_site_then_429_until_the_next_day():
    # the real budget is 300/site/day (the default); 5 keeps this fast while the runner pays ~40 ms
    # per loopback request (Nagle + delayed ACK, see the report)
    assert solaredge.DAILY_LIMIT == 300 and solaredge.MAX_CONCURRENT == 3
    hub, clock = make_hub(hours=2)
    with serving({"se": solaredge.build_app(hub, api_key=KEY, daily_limit=5)}) as urls, httpx.Client() as client:
        base = urls["se"]
        assert [_get(client, base, f"/site/{REF}/details").status_code for _ in range(5)] == [200] * 5
        r = _get(client, base, f"/site/{REF}/details")
        assert r.status_code == 429 and "String" in r.json()
        assert _get(client, base, f"/site/{NY_REF}/details").status_code == 200  # other sites keep their budget
        assert client.post(f"{base}/sites/{SITE}/control", params={"api_key": KEY},
                           json={"setpoint_kw": None, "duration_s": 60}).status_code == 200  # ours, not metered
        clock.advance(days=1)
        assert _get(client, base, f"/site/{REF}/details").status_code == 200


def test_more_than_three_concurrent_calls_get_429():
    stall = FaultPlan.from_dict({"rules": [{"kind": "timeout", "vendor": "solaredge", "delay_s": 0.6}]})
    hub, _ = make_hub(hours=2, faults=stall)
    with serving({"se": solaredge.build_app(hub, api_key=KEY)}) as urls:
        barrier = threading.Barrier(5)
        codes = []

        def call():
            with httpx.Client(timeout=10) as client:
                barrier.wait()
                codes.append(_get(client, urls["se"], f"/site/{REF}/details").status_code)

        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(codes) == [200, 200, 200, 429, 429]


def test_control_discharge_shows_in_storage_data_and_bad_commands_are_400():
    hub, clock = make_hub(hours=21)
    with serving({"se": solaredge.build_app(hub, api_key=KEY)}) as urls, httpx.Client() as client:
        base = urls["se"]
        before = hub.latest(SITE, vendor="solaredge")
        assert before["soc_pct"] > 50
        r = client.post(f"{base}/sites/{SITE}/control", params={"api_key": KEY},
                        json={"setpoint_kw": 5.0, "duration_s": 3600})
        assert r.status_code == 200, r.text
        clock.advance(hours=1)
        storage = _get(client, base, f"/site/{REF}/storageData",
                       **_day(start="2026-07-15 16:00:00", end="2026-07-15 17:00:00")).json()
        tel = storage["storageData"]["batteries"][0]["telemetries"]
        assert len(tel) == 12
        discharged_wh = tel[-1]["lifeTimeEnergyDischarged"] - before["battery_discharge_wh"]
        assert discharged_wh > 4000  # ~5 kW for most of the hour
        assert all(t["power"] < -4000 for t in tel[2:])  # negative power = discharging
        assert tel[-1]["batteryPercentageState"] < before["soc_pct"] - 15
        # the vendor ref works as the site key too; null releases the battery
        assert client.post(f"{base}/sites/{REF}/control", params={"api_key": KEY},
                           json={"setpoint_kw": None, "duration_s": 60}).status_code == 200
        too_big = client.post(f"{base}/sites/{SITE}/control", params={"api_key": KEY},
                              json={"setpoint_kw": 50.0, "duration_s": 600})
        assert too_big.status_code == 400 and "outside" in too_big.json()["String"]
        assert client.post(f"{base}/sites/{SITE}/control", params={"api_key": KEY},
                           json={"setpoint_kw": 1.0}).status_code == 400
        assert client.post(f"{base}/sites/{SITE}/control", params={"api_key": KEY},
                           json={"setpoint_kw": 1.0, "duration_s": 0}).status_code == 400
        assert client.post(f"{base}/sites/{SITE}/control", json={"setpoint_kw": 1.0, "duration_s": 60}).status_code == 403
