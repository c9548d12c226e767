"""SMA ennexOS monitoring twin over real loopback HTTP (DOC-BASED: the real captures are GPL and
held out, so structure is checked against reference/vendor-formats.md section 3), bearer
auth, local-time DST days and a round trip through our parser."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pandas as pd
import pytest

from der_assets.simulator.servers import sma
from der_assets.simulator.servers.runner import serving
from der_assets.telemetry import ParseError, parse_payload

from ._common import make_hub

TOKEN = "twin-sma-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOCAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")  # no offset, no Z


@pytest.fixture(scope="module")
def twin():
    # 2026-11-01 is the US fall-back day
    hub, clock = make_hub("2026-10-30T00:00Z", advance_h=24 * 4)
    apps = {"start": sma.build_app(hub, access_token=TOKEN), "end": sma.build_app(hub, access_token=TOKEN,
                                                                                 time_label="end")}
    with serving(apps) as urls:
        with httpx.Client(base_url=urls["start"], timeout=10) as client, \
                httpx.Client(base_url=urls["end"], timeout=10) as end_client:
            yield hub, client, end_client


def _plant(client) -> dict:
    plants = client.get("/v1/plants", headers=AUTH).json()["plants"]
    return next(p for p in plants if p["timezone"] == "America/New_York")


def _day(client, path: str, date: str, energy: bool = True):
    params = {"Date": date, **({"ReturnEnergyValues": "true"} if energy else {})}
    return client.get(path, params=params, headers=AUTH)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}])
def test_bad_or_missing_bearer_is_401(twin, headers):
    _hub, client, _ = twin
    for path in ("/v1/plants", "/v1/plants/1/measurements/sets/EnergyAndPowerPv/Day?Date=2026-11-01"):
        r = client.get(path, headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


def test_plants_devices_and_measurement_set_have_the_documented_shape(twin):
    hub, client, _ = twin
    plants = client.get("/v1/plants", headers=AUTH).json()
    assert set(plants) == {"plants"} and len(plants["plants"]) == 8  # demo fleet: 8 SMA sites
    for p in plants["plants"]:
        assert set(p) >= {"plantId", "name", "timezone"} and all(isinstance(p[k], str) for k in p)
    plant = _plant(client)
    devices = client.get(f"/v1/plants/{plant['plantId']}/devices/lean", headers=AUTH).json()["devices"]
    device_id = devices[0]["deviceId"]
    assert isinstance(device_id, str) and isinstance(devices[0]["generatorPower"], float)
    for path, keys in ((f"/v1/plants/{plant['plantId']}", {"plant", "setType", "resolution", "set"}),
                       (f"/v1/devices/{device_id}", {"plant", "device", "setType", "resolution", "set"})):
        body = _day(client, f"{path}/measurements/sets/EnergyAndPowerPv/Day", "2026-10-31").json()
        assert set(body) == keys
        assert body["plant"] == {"plantId": plant["plantId"], "name": plant["name"], "timezone": "America/New_York"}
        if "device" in body:
            assert set(body["device"]) == {"deviceId", "name", "timezone"}
        assert body["setType"] == "EnergyAndPowerPv" and body["resolution"] == "FiveMinutes"
        assert len(body["set"]) == 288
        for e in body["set"]:
            assert set(e) == {"time", "pvGeneration"} and LOCAL.match(e["time"])
            assert isinstance(e["pvGeneration"], float) and e["pvGeneration"] >= 0
        assert body["set"][0]["time"] == "2026-10-31T00:05:00" and body["set"][-1]["time"] == "2026-11-01T00:00:00"
    recent = client.get(f"/v1/plants/{plant['plantId']}/measurements/sets/EnergyAndPowerPv/Recent",
                        params={"ReturnEnergyValues": "true"}, headers=AUTH).json()
    assert len(recent["set"]) == 1
    bad = client.get(f"/v1/plants/{plant['plantId']}/measurements/sets/PowerAc/Day", headers=AUTH)
    assert bad.status_code == 400


def test_day_round_trip_reproduces_twin_pv_energy_on_the_fall_back_day(twin):
    hub, client, _ = twin
    plant = _plant(client)
    r = _day(client, f"/v1/plants/{plant['plantId']}/measurements/sets/EnergyAndPowerPv/Day", "2026-11-01")
    labels = [e["time"] for e in r.json()["set"]]
    assert len(labels) == 300 and labels.count("2026-11-01T01:00:00") == 2  # 01:xx listed twice, in order
    site_id = hub.registry.loc[hub.registry["vendor_ref"] == plant["plantId"], "site_id"].iloc[0]
    df = parse_payload("sma", "measurements", r.content, site_id=site_id, tz="America/New_York",
                       received_at=hub.now())
    truth = hub.window(site_id, pd.Timestamp("2026-11-01T04:00Z"), pd.Timestamp("2026-11-02T05:00Z"), vendor="sma")
    pv = df[df["channel"] == "pv_kwh"].reset_index(drop=True)
    assert (pv["interval_start"] == truth["interval_start"]).all() and set(pv["quality"]) == {"measured"}
    # Wh served with 3 decimals: per step within 5e-7 kWh
    np.testing.assert_allclose(pv["value"].to_numpy(), truth["pv_kwh"].to_numpy(), atol=6e-7)
    assert truth["pv_kwh"].sum() > 1.0


def test_spring_forward_has_no_labels_in_the_missing_hour():
    hub, clock = make_hub("2026-03-07T00:00Z", advance_h=72)
    with serving({"sma": sma.build_app(hub, access_token=TOKEN)}) as urls, httpx.Client(base_url=urls["sma"]) as c:
        plant = _plant(c)
        body = _day(c, f"/v1/plants/{plant['plantId']}/measurements/sets/EnergyAndPowerPv/Day", "2026-03-08").json()
    labels = [e["time"] for e in body["set"]]
    assert len(labels) == 276 and not any(t.startswith("2026-03-08T02:") for t in labels)


def test_interval_end_labels_and_power_only_sets(twin):
    """time_label='end' serves SolarNetwork's reading (00:05 .. next 00:00); without energy
    values the set carries power only and our parser refuses it instead of guessing."""
    hub, client, end_client = twin
    plant = _plant(client)
    path = f"/v1/plants/{plant['plantId']}/measurements/sets/EnergyAndPowerPv/Day"
    labels = [e["time"] for e in _day(end_client, path, "2026-10-31").json()["set"]]
    assert labels[0] == "2026-10-31T00:05:00" and labels[-1] == "2026-11-01T00:00:00"
    power = _day(client, path, "2026-10-31", energy=False)
    assert all(set(e) == {"time", "pvGenerationPower"} for e in power.json()["set"])
    with pytest.raises(ParseError):
        parse_payload("sma", "measurements", power.content, site_id="x", tz="America/New_York", received_at=hub.now())
