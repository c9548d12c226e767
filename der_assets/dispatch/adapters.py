"""Device command adapters: one setpoint to one battery, over the vendor's own control path.

- SunSpec Modbus (Generac PWRcell, Fronius and ABB storage): model 124 writes, with the
  device's own revert timer set, so a battery falls back to self-consumption by itself if no
  newer command arrives (a dead run can never leave it discharging).
- sonnen: the v2 local API, manual operating mode then a charge/discharge setpoint in W;
  None returns the unit to automatic (self-consumption).
- SolarEdge, Enphase, SMA clouds: no public battery-control API exists, so the twin's control
  endpoint `POST /sites/<site_id>/control` stands in (documented in each twin server module);
  production deployments replace these three with the installer's control channel.
Every adapter returns an Ack; it never raises for a device's refusal, so one bad battery
cannot stop the rest of the fleet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import httpx

from der_assets.connectors import sunspec
from der_assets.connectors.http import ConnectorError
from der_assets.connectors.settings import SettingsError, sunspec_devices, vendor_settings

TIMEOUT_S = 10.0
# Cloud control calls share the vendor's concurrency limit (SolarEdge: 3 at a time per key).
CONCURRENCY = {"solaredge": 3, "enphase": 5, "sma": 2}
RETRY_STATUSES = {429, 503}
ATTEMPTS = 3
_gates: dict[tuple[int, str], asyncio.Semaphore] = {}


def _gate(source: str) -> asyncio.Semaphore:
    """One semaphore per vendor and event loop (a semaphore belongs to the loop that uses it)."""
    key = (id(asyncio.get_running_loop()), source)
    if key not in _gates:
        _gates[key] = asyncio.Semaphore(CONCURRENCY.get(source, 4))
    return _gates[key]


@dataclass(frozen=True)
class Ack:
    battery_id: str
    site_id: str
    source: str
    setpoint_kw: float | None
    ok: bool
    detail: str
    at: dt.datetime


def _ack(battery_id, site_id, source, setpoint_kw, ok, detail) -> Ack:
    return Ack(battery_id, site_id, source, setpoint_kw, ok, detail[:300], dt.datetime.now(dt.UTC))


async def send_setpoint(battery_id: str, site_id: str, source: str, setpoint_kw: float | None,
                        duration_s: int) -> Ack:
    """Command one battery: + discharge, - charge, None = back to self-consumption."""
    try:
        if source in ("sunspec", "generac"):
            return await _sunspec(battery_id, site_id, source, setpoint_kw, duration_s)
        if source == "sonnen":
            return await _sonnen(battery_id, site_id, setpoint_kw)
        if source in ("solaredge", "enphase", "sma"):
            return await _cloud(battery_id, site_id, source, setpoint_kw, duration_s)
        return _ack(battery_id, site_id, source, setpoint_kw, False, f"no control path for source {source!r}")
    except (ConnectorError, SettingsError, httpx.HTTPError, OSError, ValueError) as exc:
        return _ack(battery_id, site_id, source, setpoint_kw, False, f"{type(exc).__name__}: {exc}")


async def _sunspec(battery_id, site_id, source, setpoint_kw, duration_s) -> Ack:
    device = next((d for d in sunspec_devices() if d["site_id"] == site_id), None)
    if device is None:
        return _ack(battery_id, site_id, source, setpoint_kw, False, "no SunSpec device listed for the site")
    async with sunspec.SunSpecClient(sunspec.SunSpecDevice.from_dict(device)) as client:
        written = await sunspec.write_storage_setpoint(client, setpoint_kw, revert_s=int(duration_s))
    return _ack(battery_id, site_id, source, setpoint_kw, True, f"model 124 written: {written}")


async def _sonnen(battery_id, site_id, setpoint_kw) -> Ack:
    s = vendor_settings("sonnen")
    headers = {"Auth-Token": s.need("auth_token")}
    async with httpx.AsyncClient(base_url=s.url_for(site_id), headers=headers, timeout=TIMEOUT_S) as http:
        mode = "2" if setpoint_kw is None else "1"  # 2 automatic (self-consumption), 1 manual
        r = await http.put("/api/v2/configurations", json={"EM_OperatingMode": mode})
        if r.status_code >= 400:
            return _ack(battery_id, site_id, "sonnen", setpoint_kw, False, f"mode {mode}: HTTP {r.status_code} {r.text}")
        if setpoint_kw is None:
            return _ack(battery_id, site_id, "sonnen", None, True, "automatic mode")
        direction = "discharge" if setpoint_kw >= 0 else "charge"
        r = await http.post(f"/api/v2/setpoint/{direction}/{round(abs(setpoint_kw) * 1000)}")
    ok = r.status_code < 400
    return _ack(battery_id, site_id, "sonnen", setpoint_kw, ok, f"HTTP {r.status_code} {r.text}")


async def _cloud(battery_id, site_id, source, setpoint_kw, duration_s) -> Ack:
    s = vendor_settings(source)
    params, headers = {}, {}
    if source == "solaredge":
        params["api_key"] = s.need("api_key")
    elif source == "enphase":
        params["key"] = s.need("api_key")
        headers["Authorization"] = f"Bearer {s.need('access_token')}"
    else:
        headers["Authorization"] = f"Bearer {s.need('access_token')}"
    body = {"setpoint_kw": setpoint_kw, "duration_s": int(max(duration_s, 1))}
    async with _gate(source), httpx.AsyncClient(base_url=s.base_url, timeout=TIMEOUT_S) as http:
        for attempt in range(ATTEMPTS):
            r = await http.post(f"/sites/{site_id}/control", params=params, headers=headers, json=body)
            if r.status_code not in RETRY_STATUSES or attempt == ATTEMPTS - 1:
                break
            await asyncio.sleep(min(float(r.headers.get("Retry-After", 1) or 1), 5.0))
    return _ack(battery_id, site_id, source, setpoint_kw, r.status_code < 400, f"HTTP {r.status_code} {r.text}")
