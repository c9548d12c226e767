"""SMA WebConnect (local) conformance: the twin answers in the shape of the payloads pysma is tested on.

The real payloads are the dict literals in pysma's own test file (copied into fixtures); they are
read with `ast`, never executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import httpx
import pandas as pd
import pytest

from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.servers.sma_webconnect import build_app, serial_of

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "sma_local_webconnect" / "pysma" / "test_sma_webconnect.py"


def real_payloads() -> dict[str, list]:
    """URL suffix -> payload dicts passed to mock_aioresponse.post(...) in pysma's tests."""
    found: dict[str, list] = {}
    for node in ast.walk(ast.parse(FIXTURE.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "post":
            url = node.args[0] if node.args else None
            payload = next((k.value for k in node.keywords if k.arg == "payload"), None)
            if isinstance(url, ast.JoinedStr) and payload is not None:
                tail = "".join(v.value for v in url.values if isinstance(v, ast.Constant))
                try:
                    found.setdefault(tail.split("?")[0], []).append(ast.literal_eval(payload))
                except ValueError:
                    pass
    return found


def shape(value):
    """Structure with values abstracted: dict keys kept except device serials, lists by element shape."""
    if isinstance(value, dict):
        return {("<serial>" if k.startswith("0199-") else k): shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


@pytest.fixture
def webconnect():
    fleet = demo_fleet(40)
    clock = ManualClock(pd.Timestamp("2026-07-15T12:00Z"))
    hub = TwinHub(fleet, start=pd.Timestamp("2026-07-13T00:00Z"), clock=clock)
    site = fleet.loc[fleet.telemetry_source == "sma", "site_id"].iloc[0]
    with serving({"sma": build_app(hub, password="secret")}) as urls:
        yield hub, f"{urls['sma']}/sites/{site}", site


def _login(base: str, password: str = "secret") -> dict:
    return httpx.post(f"{base}/dyn/login.json", json={"right": "usr", "pass": password}).json()


def test_login_and_bad_password(webconnect):
    _, base, _ = webconnect
    real = real_payloads()["/dyn/login.json"]
    ok = _login(base)
    assert shape(ok) == shape(next(p for p in real if "result" in p and p["result"]))
    refused = _login(base, "wrong")
    assert refused == {"err": 401}
    assert shape(refused) in [shape(p) for p in real if isinstance(p.get("err"), int)]


def test_logger_matches_real_shape_and_twin_counters(webconnect):
    hub, base, site = webconnect
    sid = _login(base)["result"]["sid"]
    t_start = int(pd.Timestamp("2026-07-14T00:00Z").timestamp())
    t_end = int(pd.Timestamp("2026-07-14T01:00Z").timestamp())
    body = httpx.post(f"{base}/dyn/getLogger.json?sid={sid}",
                      json={"destDev": [], "key": 28672, "tStart": t_start, "tEnd": t_end}).json()
    real = next(p for p in real_payloads()["/dyn/getLogger.json"] if isinstance(next(iter(p["result"].values())), list))
    assert shape(body) == shape(real)
    rows = body["result"][serial_of(site)]
    assert len(rows) == 13  # 00:00 to 01:00 inclusive, every 5 minutes
    window = hub.window(site, pd.Timestamp("2026-07-13T23:55Z"), pd.Timestamp("2026-07-14T01:00Z"), vendor="sma")
    assert [r["v"] for r in rows] == [int(round(v)) for v in window["pv_wh"]]
    assert rows[0]["t"] == t_start


def test_values_and_dash_logger_shapes(webconnect):
    hub, base, site = webconnect
    sid = _login(base)["result"]["sid"]
    values = httpx.post(f"{base}/dyn/getValues.json?sid={sid}", json={"destDev": [], "keys": ["6400_00260100"]}).json()
    assert values["result"][serial_of(site)]["6400_00260100"]["1"][0]["val"] == round(hub.latest(site, vendor="sma")["pv_wh"])
    dash = httpx.post(f"{base}/dyn/getDashLogger.json?sid={sid}", json={}).json()
    assert shape(dash) == shape(real_payloads()["/dyn/getDashLogger.json"][0])
    assert httpx.post(f"{base}/dyn/getValues.json?sid=bogus", json={}).json() == {"err": 401}
