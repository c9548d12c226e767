"""Enphase twin over real loopback HTTP: v4 cloud and IQ Gateway local API.

Gateway conformance is against real captures (pyenphase fixtures, MIT, copied under
der_assets_tests/fixtures/enphase_envoy_local/ with SOURCE.md); the v4 cloud captures are GPL and
held out, so the cloud is checked against the documented shapes (vendor-formats.md section 2a).
Round-trip precision: cloud Wh fields are integers with the remainder carried, so a served window
sums to the twin within 0.5 Wh (5e-4 kWh) per field; gateway counters have 3 decimals of Wh (1e-6 kWh).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest

from der_assets.simulator.servers import enphase
from der_assets.simulator.servers.runner import serving
from der_assets.telemetry import parse_payload

from ._shape import assert_same_shape, make_hub

KEY, TOKEN, JWT = "en-key", "en-oauth-token", "gw-jwt"
SITE, SYSTEM, TZ = "S-00011", "6561207", "America/New_York"  # export allowed, so a discharge command shows
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "enphase_envoy_local"
INT_KEYS = frozenset({"eid", "timestamp", "readingTime", "activeCount", "phaseCount"})

DOC_MICRO = {"system_id": 1, "granularity": "day", "total_devices": 1, "start_at": 1, "end_at": 1, "items": "intervals",
             "intervals": [{"end_at": 1, "devices_reporting": 1, "powr": 744, "enwh": 62}],
             "meta": {"status": "normal", "last_report_at": 1, "last_energy_at": 1, "operational_at": 1}}
DOC_METER = {**DOC_MICRO, "intervals": [{"end_at": 1, "devices_reporting": 1, "wh_del": 1}]}
DOC_CONSUMPTION = {**DOC_MICRO, "intervals": [{"end_at": 1, "devices_reporting": 1, "enwh": 1}]}
DOC_BATTERY = {k: v for k, v in DOC_MICRO.items() if k != "meta"} | {
    "intervals": [{"end_at": 1, "charge": {"enwh": 40, "devices_reporting": 1}, "discharge": {"enwh": 0, "devices_reporting": 4},
                   "soc": {"percent": 25, "devices_reporting": 4}}],
    "last_reported_aggregate_soc": "97%"}
CLOUD_INTS = frozenset({"system_id", "total_devices", "start_at", "end_at", "devices_reporting", "powr", "enwh", "wh_del",
                        "percent"})


def _fixture(rel: str):
    return json.loads((FIXTURES / rel).read_text())


def _match_block(path, item, real):
    """production.json lists hold different blocks; compare like with like."""
    for ref in real:
        if isinstance(item, dict) and isinstance(ref, dict) and item.get("type") == ref.get("type") \
                and item.get("measurementType") == ref.get("measurementType"):
            return ref
    return real[0]


@pytest.fixture(scope="module")
def served():
    hub, clock = make_hub(hours=20)
    apps = {"cloud": enphase.build_app(hub, api_key=KEY, access_token=TOKEN),
            "gw": enphase.build_gateway_app(hub, token=JWT)}
    with serving(apps) as urls, httpx.Client(timeout=10) as client:
        yield hub, clock, urls, client


def _cloud(client, urls, path, **params):
    return client.get(urls["cloud"] + path, params={"key": KEY, **params}, headers={"Authorization": f"Bearer {TOKEN}"})


def _gw(client, urls, path, site=SITE):
    return client.get(f"{urls['gw']}/sites/{site}/{path}", headers={"Authorization": f"Bearer {JWT}"})


@pytest.mark.parametrize("fixture", ["docs_json_data/production.json", "7.6.185_with_cts_and_battery_3t/production.json",
                                     "8.3.5433_tot_is_net_cons/production.json"])
def test_gateway_production_json_has_the_real_structure(served, fixture):
    hub, _, urls, client = served
    body = _gw(client, urls, "production.json").json()
    real = _fixture(fixture)
    real = {k: [{kk: vv for kk, vv in b.items() if kk != "lines"} for b in v] for k, v in real.items()}
    assert_same_shape(body, real, match=_match_block, int_keys=INT_KEYS)
    latest = hub.latest(SITE, vendor=enphase.GATEWAY_VENDOR)
    eim = next(b for b in body["production"] if b["type"] == "eim")
    assert eim["whLifetime"] == pytest.approx(latest["pv_wh"], abs=1e-3)  # Wh, not kWh
    assert eim["readingTime"] == int(latest["timestamp"].timestamp())  # epoch seconds
    net = next(b for b in body["consumption"] if b["measurementType"] == "net-consumption")
    assert net["whToday"] == 0 and net["whLifetime"] == pytest.approx(latest["grid_import_wh"] - latest["grid_export_wh"],
                                                                       abs=1e-3)


def test_gateway_details_and_meters_have_the_real_structure(served):
    _, _, urls, client = served
    details = _gw(client, urls, "production.json?details=1").json()
    assert_same_shape(details, _fixture("docs_json_data/production_details.json"), match=_match_block, int_keys=INT_KEYS)
    meters = _gw(client, urls, "ivp/meters").json()
    assert_same_shape(meters, _fixture("docs_json_data/ivp_meters.json"), int_keys=INT_KEYS)
    assert [m["measurementType"] for m in meters] == ["production", "net-consumption", "storage"]
    readings = _gw(client, urls, "ivp/meters/readings").json()
    real = _fixture("docs_json_data/ivp_meters_readings.json")
    assert_same_shape(readings, real, int_keys=INT_KEYS)
    assert [r["eid"] for r in readings] == [r["eid"] for r in real]
    assert [c["eid"] for c in readings[0]["channels"]] == [c["eid"] for c in real[0]["channels"]]
    for other in ("7.6.185_with_cts_and_battery_3t/ivp_meters_readings", "8.3.5433_tot_is_net_cons/ivp_meters_readings"):
        assert_same_shape(readings, _fixture(other), int_keys=INT_KEYS)


def test_cloud_documented_shapes(served):
    hub, _, urls, client = served
    systems = _cloud(client, urls, "/api/v4/systems").json()
    enphase_refs = set(hub.registry.loc[hub.registry["telemetry_source"] == "enphase", "vendor_ref"])
    assert systems["items"] == "systems" and {str(s["system_id"]) for s in systems["systems"]} == enphase_refs
    assert next(s for s in systems["systems"] if str(s["system_id"]) == SYSTEM)["timezone"] == TZ
    for kind, doc, interval_s in (("production_micro", DOC_MICRO, 300), ("production_meter", DOC_METER, 900),
                                  ("consumption_meter", DOC_CONSUMPTION, 900), ("battery", DOC_BATTERY, 900)):
        body = _cloud(client, urls, f"/api/v4/systems/{SYSTEM}/telemetry/{kind}").json()
        assert_same_shape(body, doc, int_keys=CLOUD_INTS)
        ends = [i["end_at"] for i in body["intervals"]]
        assert all(e % interval_s == 0 for e in ends) and ends == sorted(ends)
        # default window: midnight today in the system tz; end_at labels the interval END
        midnight = pd.Timestamp("2026-07-15 00:00", tz=TZ).tz_convert("UTC")
        assert body["start_at"] == int(midnight.timestamp()) and ends[0] == body["start_at"] + interval_s
        assert ends[-1] <= int(hub.now().timestamp())
    assert _cloud(client, urls, f"/api/v4/systems/{SYSTEM}/telemetry/battery").json()["last_reported_aggregate_soc"].endswith("%")


def test_cloud_round_trip_reproduces_twin_energy(served):
    hub, _, urls, client = served
    start = pd.Timestamp("2026-07-15 00:00", tz=TZ).tz_convert("UTC")
    twin = hub.window(SITE, start, hub.now(), vendor="enphase")
    assert twin["pv_kwh"].sum() > 1.0
    for kind, channel in (("production_micro", "pv_kwh"), ("production_meter", "pv_kwh"),
                          ("consumption_meter", "load_kwh"), ("battery", "battery_kwh")):
        r = _cloud(client, urls, f"/api/v4/systems/{SYSTEM}/telemetry/{kind}", start_at=int(start.timestamp()))
        rows = parse_payload("enphase", kind, r.content, site_id=SITE, received_at=hub.now())
        got = rows[rows["channel"] == channel]
        assert (got["quality"] == "measured").all()
        tolerance = 1e-3 if kind == "battery" else 5e-4  # battery = discharge - charge, two rounded series
        assert abs(got["value"].sum() - twin[channel].sum()) <= tolerance, kind
        assert got["interval_start"].min() == start


def test_gateway_poll_log_round_trip(served):
    hub, clock, urls, client = served
    log = [_gw(client, urls, "ivp/meters").text]
    prod_log = []
    t0 = hub.now()
    for _ in range(5):
        log.append(_gw(client, urls, "ivp/meters/readings").text)
        prod_log.append(_gw(client, urls, "production.json").text)
        clock.advance(minutes=15)
    t1 = t0 + pd.Timedelta(minutes=60)
    twin = hub.window(SITE, t0, t1, vendor=enphase.GATEWAY_VENDOR)
    rows = parse_payload("enphase", "ivp_meters_readings", "\n".join(log).encode(), site_id=SITE, received_at=hub.now())
    for channel in ("pv_kwh", "grid_kwh", "battery_kwh"):
        got = rows[rows["channel"] == channel]
        assert len(got) == 4 and abs(got["value"].sum() - twin[channel].sum()) < 2e-6, channel
    rows = parse_payload("enphase", "production.json", "\n".join(prod_log).encode(), site_id=SITE, received_at=hub.now())
    for channel in ("pv_kwh", "load_kwh", "grid_kwh"):
        got = rows[rows["channel"] == channel]
        assert len(got) == 4 and abs(got["value"].sum() - twin[channel].sum()) < 2e-6, channel


def test_credentials(served):
    _, _, urls, client = served
    path = urls["cloud"] + f"/api/v4/systems/{SYSTEM}/telemetry/production_meter"
    assert client.get(path, params={"key": KEY}).status_code == 401  # no bearer
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401  # no key
    r = client.get(path, params={"key": "nope"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 401 and r.json()["code"] == 401
    assert client.get(path, params={"key": KEY}, headers={"Authorization": "Bearer stale"}).status_code == 401
    gw = f"{urls['gw']}/sites/{SITE}/production.json"
    assert client.get(gw).status_code == 401
    assert client.get(gw, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert _gw(client, urls, "production.json", site="S-00002").status_code == 404  # a SolarEdge site has no gateway
    assert _cloud(client, urls, "/api/v4/systems/3996964/telemetry/battery").status_code == 404
    future = int((pd.Timestamp("2026-07-17T00:00Z")).timestamp())
    assert _cloud(client, urls, f"/api/v4/systems/{SYSTEM}/telemetry/battery", start_at=future).status_code == 422


def test_per_minute_plan_limit_is_429():
    # the default plan is Kilowatt, 50/min; Watt (10/min) exercises the same code with fewer round trips
    assert enphase.DEFAULT_PLAN == "Kilowatt" and enphase.PLAN_LIMITS["Kilowatt"] == (50, 50_000)
    hub, clock = make_hub(hours=2)
    with serving({"cloud": enphase.build_app(hub, api_key=KEY, access_token=TOKEN, plan="Watt", rate_clock=hub.now)}) as urls, \
            httpx.Client() as client:
        codes = [_cloud(client, urls, "/api/v4/systems").status_code for _ in range(10)]
        assert codes == [200] * 10
        r = _cloud(client, urls, "/api/v4/systems")
        assert r.status_code == 429 and "retry-after" not in r.headers
        body = r.json()
        assert body["code"] == 429 and body["period"] == "minute" and body["details"].endswith("plan Watt")
        assert body["period_end"] - body["period_start"] == 60
        clock.advance(minutes=1)
        assert _cloud(client, urls, "/api/v4/systems").status_code == 200


def test_control_discharge_shows_in_battery_telemetry_and_bad_commands_are_400():
    hub, clock = make_hub(hours=21)
    with serving({"cloud": enphase.build_app(hub, api_key=KEY, access_token=TOKEN)}) as urls, httpx.Client() as client:
        post = dict(params={"key": KEY}, headers={"Authorization": f"Bearer {TOKEN}"})
        r = client.post(f"{urls['cloud']}/sites/{SITE}/control", json={"setpoint_kw": 5.0, "duration_s": 3600}, **post)
        assert r.status_code == 200, r.text
        start = hub.now()
        clock.advance(hours=1)
        body = _cloud(client, urls, f"/api/v4/systems/{SYSTEM}/telemetry/battery", start_at=int(start.timestamp()),
                      granularity="15mins").json()
        assert len(body["intervals"]) == 1 and body["intervals"][0]["discharge"]["enwh"] > 1000  # ~5 kW x 15 min
        day = _cloud(client, urls, f"/api/v4/systems/{SYSTEM}/telemetry/battery", start_at=int(start.timestamp())).json()
        assert sum(i["discharge"]["enwh"] for i in day["intervals"]) > 4000
        assert day["intervals"][-1]["soc"]["percent"] < day["intervals"][0]["soc"]["percent"] - 15
        bad = client.post(f"{urls['cloud']}/sites/{SYSTEM}/control", json={"setpoint_kw": -99.0, "duration_s": 60}, **post)
        assert bad.status_code == 400 and bad.json()["code"] == 400 and "outside" in bad.json()["details"]
        assert client.post(f"{urls['cloud']}/sites/{SITE}/control", content=b"{", **post).status_code == 400
        assert client.post(f"{urls['cloud']}/sites/{SITE}/control", json={"setpoint_kw": 1.0, "duration_s": 60},
                           params={"key": KEY}).status_code == 401
