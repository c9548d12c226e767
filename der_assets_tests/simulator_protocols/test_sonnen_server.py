"""sonnen v2 twin over real loopback HTTP: fixture conformance, auth, round trip through our
parser, and a discharge setpoint that shows up in later /status readings."""

from __future__ import annotations

import json
import re

import httpx
import numpy as np
import pandas as pd
import pytest

from der_assets.simulator.servers import sonnen
from der_assets.simulator.servers.runner import serving
from der_assets.telemetry import parse_payload

from ._common import fifteen_min, make_hub, shape_diff, sonnen_mock

SITE = "S-00019"  # demo fleet: sonnen, 8 kW / 20 kWh, America/New_York
TOKEN = "twin-sonnen-token"
CHG = "mock_sonnenbatterie_v2_charging.py"


@pytest.fixture
def twin():
    hub, clock = make_hub("2026-07-15T00:00Z", advance_h=42)  # 14:00 EDT, SoC ~50 %
    app = sonnen.build_app(hub, auth_token=TOKEN)
    with serving({"sonnen": app}) as urls:
        with httpx.Client(base_url=f"{urls['sonnen']}/sites/{SITE}/api/v2", headers={"Auth-Token": TOKEN},
                          timeout=10) as client:
            yield hub, clock, client, app


def test_status_latestdata_powermeter_match_the_fixture_structure(twin):
    _hub, _clock, client, _app = twin
    status, latest, meters = (client.get(p).json() for p in ("/status", "/latestdata", "/powermeter"))
    # keys, nesting and exact value types (int W, str BackupBuffer/OperatingMode, null Sac2/3, ...)
    assert shape_diff(status, sonnen_mock(CHG, "__mock_status_charging")) == []
    assert shape_diff(latest, sonnen_mock(CHG, "__mock_latest_charging")) == []
    assert shape_diff(meters, sonnen_mock(CHG, "__mock_powermeter")) == []
    assert "UTC_Offet" in latest and latest["UTC_Offet"] == -4  # the real typo; EDT in July
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", status["Timestamp"])  # local, no offset
    assert status["Timestamp"] == "2026-07-16 14:00:00"  # 07-16 18:00Z -> 14:00 EDT
    assert re.fullmatch(r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \d{4}", latest["ic_status"]["timestamp"])
    assert [m["direction"] for m in meters] == ["production", "consumption"]
    # signs: site balance pv + discharge + import = load, with GridFeedIn_W + export
    s = status
    assert s["Production_W"] + s["Pac_total_W"] - s["GridFeedIn_W"] == pytest.approx(s["Consumption_W"], abs=3)


@pytest.mark.parametrize("headers", [{}, {"Auth-Token": "wrong"}])
def test_wrong_or_missing_token_is_401(twin, headers):
    _hub, _clock, client, _app = twin
    for method, path in (("GET", "/status"), ("GET", "/powermeter"), ("POST", "/setpoint/discharge/1000")):
        r = client.request(method, path, headers={"Auth-Token": headers.get("Auth-Token", "")})
        assert r.status_code == 401, path


def test_powermeter_poll_log_reproduces_twin_pv_and_load_exactly(twin):
    hub, clock, client, _app = twin
    polls = []
    for _ in range(13):  # 3 h of 15-min polls
        polls.append({"polled_at": hub.now().isoformat(), "body": client.get("/powermeter").json()})
        clock.advance(minutes=15)
    t0, t1 = pd.Timestamp(polls[0]["polled_at"]), pd.Timestamp(polls[-1]["polled_at"])
    payload = "\n".join(json.dumps(p) for p in polls).encode()
    df = parse_payload("sonnen", "powermeter", payload, site_id=SITE, received_at=hub.now())
    truth = hub.window(SITE, t0, t1, vendor="sonnen")
    for channel in ("pv_kwh", "load_kwh"):
        got = df[df["channel"] == channel].set_index("interval_start")["value"]
        want = fifteen_min(truth, channel)
        assert len(want) == 12
        # registers are served as full floats: only float noise separates the two (1e-9 kWh)
        np.testing.assert_allclose(got.reindex(want.index).to_numpy(), want.to_numpy(), atol=1e-9)


def test_status_integration_is_the_twin_energy_one_step_late(twin):
    """/status is instantaneous: the 5-min average stamped at its end, so integrating it lags one step."""
    hub, clock, client, _app = twin
    bodies = []
    for _ in range(36):  # 3 h of 5-min polls
        clock.advance(minutes=5)
        bodies.append(client.get("/status").json())
    df = parse_payload("sonnen", "status", "\n".join(json.dumps(b) for b in bodies).encode(), site_id=SITE,
                       tz="America/New_York", received_at=hub.now())
    stamps = pd.to_datetime([b["Timestamp"] for b in bodies]).tz_localize("America/New_York").tz_convert("UTC")
    lagged = hub.window(SITE, stamps[0] - pd.Timedelta(minutes=10), stamps[-1], vendor="sonnen")
    lagged["interval_start"] = lagged["interval_start"] + pd.Timedelta(minutes=5)
    for channel in ("pv_kwh", "load_kwh", "battery_kwh", "grid_kwh"):
        got = df[(df["channel"] == channel) & (df["interval_start"] >= stamps[0])].set_index("interval_start")
        want = fifteen_min(lagged, channel)
        common = got.index.intersection(want.index)
        assert len(common) >= 10
        assert set(got.loc[common, "quality"]) == {"estimated"}
        # integer watts: at most 0.5 W x 900 s = 1.25e-4 kWh per quarter-hour
        np.testing.assert_allclose(got.loc[common, "value"].to_numpy(), want[common].to_numpy(), atol=1.3e-4)


def test_discharge_setpoint_over_http_changes_later_status(twin):
    hub, clock, client, app = twin
    # a real unit takes setpoints only in manual mode
    r = client.post("/setpoint/discharge/3000")
    assert r.status_code == 403 and "manual" in r.json()["error"]
    r = client.put("/configurations", json={"EM_OperatingMode": "1"})
    assert r.status_code == 200 and client.get("/configurations/EM_OperatingMode").json() == {"EM_OperatingMode": "1"}
    r = client.post("/setpoint/discharge/3000")
    assert r.status_code == 201 and r.json() is True
    assert client.get("/latestdata").json()["SetPoint_W"] == 3000
    clock.advance(minutes=10)  # past the 30 s latency and 60 s ramp, then a whole 5-min step
    status = client.get("/status").json()
    assert status["Pac_total_W"] == pytest.approx(3000, abs=1)
    assert status["OperatingMode"] == "1" and status["BatteryDischarging"] is True
    # out of the battery's 8 kW rating: refused with an error body, state unchanged
    r = client.post("/setpoint/discharge/9000")
    assert r.status_code == 400 and "rejected" in r.json()["error"]
    assert client.post("/setpoint/charge/-5").status_code == 400
    # charge setpoint, then back to automatic (self-consumption)
    assert client.post("/setpoint/charge/2000").status_code == 201
    clock.advance(minutes=10)
    assert client.get("/status").json()["Pac_total_W"] == pytest.approx(-2000, abs=1)
    assert client.put("/configurations", data={"EM_OperatingMode": "2"}).status_code == 200
    log = [(e["action"], e["value"], e["status"]) for e in app.state.command_log]
    assert log == [("discharge", 3000, 403), ("configurations", {"EM_OperatingMode": "1"}, 200),
                   ("discharge", 3000, 201), ("discharge", 9000, 400), ("charge", "-5", 400),
                   ("charge", 2000, 201), ("configurations", {"EM_OperatingMode": "2"}, 200)]
