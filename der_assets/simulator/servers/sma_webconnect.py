"""SMA WebConnect, the inverter's local JSON API, for every SMA site under /sites/<site_id>/dyn/...

Quirks a connector must know (modelled on the payloads pysma's tests use):
- Everything is a POST with a JSON body, and every call but login carries `?sid=<session>`.
  A bad password or session answers HTTP 200 with `{"err": 401}`, not an HTTP error.
- Values are keyed by the device serial, then SMA object keys such as `6100_40263F00`
  (AC power, W) and `6400_00260100` (total yield, Wh; pysma divides by 1000 for kWh), then a
  channel "1" holding `[{"val": ...}]`. A value the inverter cannot give is `{"val": null}`
  (PV power at night is 0, not null).
- getLogger returns lifetime Wh counters `[{"t": epoch_s, "v": Wh}]` for a logger key: 28672
  = yield every 5 minutes, 28704 = yield once a day (local midnight), 28736 = energy drawn in,
  5-minute. `t` is the end of the period the counter closes.
- getDashLogger returns the dashboard's "7000" (5-minute) and "7020" (daily) yield series.
"""

from __future__ import annotations

import logging
import secrets

import pandas as pd
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from der_assets.simulator.hub import TwinHub
from der_assets.simulator.servers.common import FaultMiddleware, site_from_path, vendor_sites

log = logging.getLogger(__name__)
VENDOR = "sma"
LOGGER_COUNTERS = {28672: ("pv_wh", "5min"), 28704: ("pv_wh", "daily"), 28736: ("grid_import_wh", "5min")}


def serial_of(site_id: str) -> str:
    """A stable WebConnect-style device key for a site: susy id 0199, then a serial."""
    import hashlib

    return f"0199-{int(hashlib.sha256(site_id.encode()).hexdigest()[:8], 16) % 10**9:09d}"


def build_app(hub: TwinHub, *, password: str) -> Starlette:
    sites = set(vendor_sites(hub, VENDOR)["site_id"])
    sessions: dict[str, str] = {}  # sid -> site_id

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def site_or_none(request: Request) -> str | None:
        site_id = request.path_params["site_id"]
        return site_id if site_id in sites else None

    def authorized(request: Request, site_id: str) -> bool:
        return sessions.get(request.query_params.get("sid", "")) == site_id

    async def login(request: Request):
        site_id = site_or_none(request)
        if site_id is None:
            return JSONResponse({"err": 404}, status_code=404)
        data = await body(request)
        if data.get("right") not in ("usr", "istl") or data.get("pass") != password:
            log.info("sma webconnect %s: login refused", site_id)
            return JSONResponse({"err": 401})
        sid = secrets.token_hex(8)
        sessions[sid] = site_id
        return JSONResponse({"result": {"sid": sid}})

    async def logout(request: Request):
        sessions.pop(request.query_params.get("sid", ""), None)
        return JSONResponse({})

    async def get_values(request: Request):
        site_id = site_or_none(request)
        if site_id is None or not authorized(request, site_id):
            return JSONResponse({"err": 401})
        now = hub.latest(site_id, vendor=VENDOR)
        known = {
            "6100_40263F00": round(now["pv_kw"] * 1000),  # AC power out of the inverter, W
            "6100_0046C200": round(now["pv_kw"] * 1000 / 0.97),  # DC power from the array, W
            "6400_00260100": round(now["pv_wh"]),  # total yield, Wh
            "6100_00465700": 6000,  # grid frequency 60.00 Hz, factor 100
        }
        keys = (await body(request)).get("keys") or list(known)
        values = {k: {"1": [{"val": known.get(k)}]} for k in keys}
        return JSONResponse({"result": {serial_of(site_id): values}})

    def counters(site_id: str, name: str, t_start: int, t_end: int, period: str) -> list[dict[str, int]]:
        window = hub.window(site_id, pd.Timestamp(t_start, unit="s", tz="UTC") - pd.Timedelta(minutes=5),
                            pd.Timestamp(t_end, unit="s", tz="UTC"), vendor=VENDOR)
        if window.empty:
            return []
        ends = window["interval_start"] + pd.to_timedelta(window["interval_s"], unit="s")
        if period == "daily":
            tz = hub.sites.loc[site_id, "timezone"]
            local_end = ends.dt.tz_convert(tz)
            keep = (local_end.dt.hour == 0) & (local_end.dt.minute == 0)
            window, ends = window[keep], ends[keep]
        keep = (ends >= pd.Timestamp(t_start, unit="s", tz="UTC")) & (ends <= pd.Timestamp(t_end, unit="s", tz="UTC"))
        return [{"t": int(t.timestamp()), "v": int(round(v))} for t, v in zip(ends[keep], window.loc[keep, name], strict=True)]

    async def get_logger(request: Request):
        site_id = site_or_none(request)
        if site_id is None or not authorized(request, site_id):
            return JSONResponse({"err": 401})
        data = await body(request)
        try:
            key, t_start, t_end = int(data["key"]), int(data["tStart"]), int(data["tEnd"])
        except (KeyError, TypeError, ValueError):
            return JSONResponse({"err": 400})
        if key not in LOGGER_COUNTERS:
            return JSONResponse({"result": {serial_of(site_id): []}})
        name, period = LOGGER_COUNTERS[key]
        return JSONResponse({"result": {serial_of(site_id): counters(site_id, name, t_start, t_end, period)}})

    async def get_dash_logger(request: Request):
        site_id = site_or_none(request)
        if site_id is None or not authorized(request, site_id):
            return JSONResponse({"err": 401})
        end = int(hub.now().timestamp())
        return JSONResponse({"result": {serial_of(site_id): {
            "7000": {"1": counters(site_id, "pv_wh", end - 3600, end, "5min")},
            "7020": {"1": counters(site_id, "pv_wh", end - 7 * 86400, end, "daily")},
        }}})

    base = "/sites/{site_id}/dyn"
    routes = [
        Route(f"{base}/login.json", login, methods=["POST"]),
        Route(f"{base}/logout.json", logout, methods=["POST", "GET"]),
        Route(f"{base}/getValues.json", get_values, methods=["POST"]),
        Route(f"{base}/getLogger.json", get_logger, methods=["POST"]),
        Route(f"{base}/getDashLogger.json", get_dash_logger, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[
        Middleware(FaultMiddleware, hub=hub, vendor=VENDOR, site_of=site_from_path)])
