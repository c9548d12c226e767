"""Fronius Solar API v1 twin over real loopback HTTP: conformance with the akleber and
pyfronius captures, the 16-day limit, a DST archive day, and a round trip through our parser."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pandas as pd
import pytest

from der_assets.simulator.servers import fronius
from der_assets.simulator.servers.runner import serving
from der_assets.telemetry import parse_payload

from ._common import fixture_json, json_kind, make_hub

SITE = "S-00008"  # demo fleet: Fronius, America/New_York
AKLEBER = ("fronius_solar_api_v1_local", "akleber_fronius-json-tools")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
DAY_ARGS = [("Scope", "System"), ("StartDate", "1.11.2026"), ("EndDate", "1.11.2026"),
            ("Channel", fronius.PLUS), ("Channel", fronius.MINUS)]


@pytest.fixture(scope="module")
def twin():
    # covers the 2026-11-01 fall-back day (25 h) in New York
    hub, clock = make_hub("2026-10-30T00:00Z", advance_h=24 * 4)
    with serving({"fronius": fronius.build_app(hub)}) as urls:
        with httpx.Client(base_url=f"{urls['fronius']}/sites/{SITE}/solar_api/v1", timeout=10) as client:
            yield hub, client


def test_power_flow_matches_the_real_captures(twin):
    _hub, client = twin
    r = client.get("/GetPowerFlowRealtimeData.fcgi")  # no credentials: the real API has none
    assert r.status_code == 200
    ours = r.json()
    real = [fixture_json(*AKLEBER, "json__1.23.2-1__GetPowerFlowRealtimeData.json"),
            fixture_json("fronius_solar_api_v1_local", "pyfronius", "v1__solar_api__v1__GetPowerFlowRealtimeData.fcgi")]
    assert set(ours) == {"Body", "Head"} and set(ours["Head"]) == set(real[0]["Head"])
    assert set(ours["Head"]["Status"]) == set(real[0]["Head"]["Status"]) and ours["Head"]["Status"]["Code"] == 0
    assert RFC3339.match(ours["Head"]["Timestamp"])
    data = ours["Body"]["Data"]
    for node in ("Site", "Inverters"):
        allowed: dict[str, set] = {}
        for doc in real:
            items = doc["Body"]["Data"][node] if node == "Site" else doc["Body"]["Data"][node]["1"]
            for k, v in items.items():
                allowed.setdefault(k, set()).add(json_kind(v))
        ours_node = data[node] if node == "Site" else data[node]["1"]
        assert set(ours_node) <= set(allowed), set(ours_node) - set(allowed)
        for k, v in ours_node.items():
            # rel_* are null when there is nothing to relate (no PV at night), as on real units
            assert json_kind(v) in allowed[k] | ({"null"} if k.startswith("rel_") else set()), (k, v)
    assert data["Version"] == real[0]["Body"]["Data"]["Version"] and isinstance(data["Version"], str)
    site = data["Site"]
    assert site["P_Load"] <= 0  # consumption is negative, as in both captures
    assert site["P_PV"] + (site["P_Akku"] or 0) + site["P_Grid"] == pytest.approx(-site["P_Load"], abs=0.05)


def test_archive_day_matches_the_real_capture(twin):
    _hub, client = twin
    ours = client.get("/GetArchiveData.cgi", params=DAY_ARGS).json()
    real = fixture_json(*AKLEBER, "archivedata_day_2017-08-30.json")
    assert set(ours["Head"]) == set(real["Head"]) and set(ours["Head"]["Status"]) == set(real["Head"]["Status"])
    assert set(real["Head"]["RequestArguments"]) <= set(ours["Head"]["RequestArguments"])
    (key, node), = ours["Body"]["Data"].items()
    (real_key, real_node), = real["Body"]["Data"].items()
    assert re.fullmatch(r"meter:\d+", key) and re.fullmatch(r"meter:\d+", real_key)
    assert set(node) == set(real_node) == {"Data", "End", "Start"}
    assert set(node["Data"]) == set(real_node["Data"])
    assert node["Start"] == "2026-11-01T00:00:00-04:00" and node["End"] == "2026-11-01T23:59:59-05:00"
    for name, channel in node["Data"].items():
        want = real_node["Data"][name]
        assert set(channel) == set(want) and channel["Unit"] == want["Unit"] == "Wh"
        assert channel["_comment"] == want["_comment"]
        secs = sorted(int(k) for k in channel["Values"])
        assert all(isinstance(v, int) for v in channel["Values"].values())  # whole-Wh registers, like the capture
        assert all(isinstance(v, int) for v in want["Values"].values())
        # fall-back day: 25 h of 300 s steps, keyed by elapsed seconds (the capture's normal day has 288)
        assert secs == list(range(0, 90000, 300)) and len(want["Values"]) == 288


def test_archive_round_trip_reproduces_twin_grid_energy(twin):
    hub, client = twin
    r = client.get("/GetArchiveData.cgi", params=DAY_ARGS)
    df = parse_payload("fronius", "GetArchiveData", r.content, site_id=SITE, received_at=hub.now())
    grid = df[df["channel"] == "grid_kwh"].set_index("interval_start")
    start, end = pd.Timestamp("2026-11-01T04:00Z"), pd.Timestamp("2026-11-02T05:00Z")
    truth = hub.window(SITE, start, end, vendor="fronius").set_index("interval_start")["grid_kwh"]
    measured = grid[grid["quality"] == "measured"]
    assert len(measured) == 299 and grid.loc[end - pd.Timedelta(minutes=5), "quality"] == "missing"
    # registers are whole Wh: each step within 2 Wh (two floored registers), the day within 2 Wh
    diff = measured["value"] - truth.reindex(measured.index)
    assert np.abs(diff).max() < 2e-3 and abs(diff.sum()) < 2e-3
    assert truth.abs().sum() > 1.0  # the day really moved energy through the meter


def test_archive_limits_and_argument_errors_use_the_vendor_body(twin):
    _hub, client = twin
    too_long = client.get("/GetArchiveData.cgi", params=[("Scope", "System"), ("StartDate", "2026-10-01"),
                                                          ("EndDate", "2026-10-29"), ("Channel", fronius.PLUS)])
    assert too_long.status_code == 200
    body = too_long.json()
    assert body["Body"] == {"Data": {}}
    assert body["Head"]["Status"] == {"Code": 255, "ErrorDetail": {"Nodes": []},
                                      "Reason": "Query interval is restricted to 16 days", "UserMessage": ""}
    assert body["Head"]["RequestArguments"]["Channel"] == fronius.PLUS  # one channel echoes as a string
    missing = client.get("/GetArchiveData.cgi", params={"Scope": "System", "Channel": fronius.PLUS}).json()
    assert missing["Head"]["Status"]["Code"] == 6
    ok = client.get("/GetArchiveData.cgi", params=[("Scope", "System"), ("StartDate", "2026-10-30T00:00:00Z"),
                                                    ("EndDate", "2026-10-31T00:00:00Z"), ("Channel", fronius.PRODUCED)])
    node = ok.json()["Body"]["Data"]["inverter/1"]
    assert node["Start"] == "2026-10-29T20:00:00-04:00" and len(node["Data"][fronius.PRODUCED]["Values"]) == 288
