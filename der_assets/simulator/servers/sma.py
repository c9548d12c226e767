"""SMA ennexOS / Sunny Portal monitoring API (cloud, monitoring.smaapis.de shape) for the twin's SMA sites.

Why: the SMA connector must be tested against the cloud API's own shapes and time forms.
Verification status: DOC-BASED. The real captures (SolarNetwork, GPL) were held out of
shared/fixtures; shapes follow reference/vendor-formats.md section 3 and the example JSON
that SolarNetwork documents in its client.

Vendor quirks reproduced here:
- OAuth2 bearer: `Authorization: Bearer <access_token>`; a missing or wrong token answers
  401 with `WWW-Authenticate: Bearer error="invalid_token"`.
- Ids are strings ("plantId": "7190000"); plantId is the registry's vendor_ref, and the PV
  inverter's deviceId is vendor_ref + "1".
- /v1/plants -> {"plants": [{plantId, name, description, timezone}]};
  /v1/plants/{id} -> the same record; /v1/plants/{id}/devices/lean -> {"devices": [...]}.
- Measurement sets: /v1/plants/{plantId}/measurements/sets/EnergyAndPowerPv/{period} and
  /v1/devices/{deviceId}/measurements/sets/EnergyAndPowerPv/{period}, period Day (query
  Date=YYYY-MM-DD, the plant's LOCAL day) or Recent (the latest step).
  Answer {plant{plantId,name,timezone}, [device{deviceId,name,timezone}], setType,
  resolution: "FiveMinutes", set: [{time, pvGeneration}]}.
- `time` is plant-LOCAL wall time WITHOUT offset ("2025-03-28T06:50:00"); plant.timezone
  names the zone. On the fall-back day the repeated hour is listed twice, in order; on the
  spring-forward day the missing hour has no labels.
- With ReturnEnergyValues=true, pvGeneration is Wh per 5-min step; without it the entries
  carry the step's average power as pvGenerationPower (W) and no pvGeneration [A: the field
  name for the power-only form is not documented here].
- Labels are interval-END, as the real API's: SolarNetwork notes a Day answer "starts at
  00:05 and ends at next day at 00:00", and real captures agree (issue 12). `time_label="end"`
  is the default; "start" stays for tests of the old reading.
- Only elapsed steps are listed (the twin has nothing later); dropped steps simply have no
  entry.

Twin control endpoint (ours: SMA's monitoring API has no battery control):
    POST /sites/<site_id>/control with the Bearer token, body {"setpoint_kw": float|null,
    "duration_s": int}; out of limits -> 400 {"message": "Bad Request", "detail": ...}.
"""

from __future__ import annotations

import logging
from typing import Literal

import pandas as pd
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from der_assets.simulator.hub import CommandRejected, TwinHub
from der_assets.simulator.servers.common import FaultMiddleware, vendor_sites
from der_assets.simulator.servers.solaredge import parse_control_body

log = logging.getLogger(__name__)

VENDOR = "sma"
SET_TYPE = "EnergyAndPowerPv"
LABEL_FMT = "%Y-%m-%dT%H:%M:%S"
RESOLUTION = {300: "FiveMinutes", 900: "FifteenMinutes", 3600: "OneHour"}


class _Plant:
    def __init__(self, row: pd.Series, hub: TwinHub):
        self.site_id = str(row["site_id"])
        self.plant_id = str(row["vendor_ref"])
        self.device_id = f"{self.plant_id}1"
        self.tz = str(row["timezone"])
        self.name = f"Plant {self.site_id}"
        reg = hub.registry[hub.registry["site_id"] == self.site_id]
        pv = reg[reg["device_type"] == "pv_inverter"]
        self.generator_w = float(pv["rated_kw"].sum()) * 1000.0
        self.model = str(pv["model"].iloc[0]) if len(pv) else "Sunny Boy"
        self.serial = str(pv["serial"].iloc[0]) if len(pv) else self.plant_id

    def record(self) -> dict:
        return {"plantId": self.plant_id, "name": self.name, "description": f"twin site {self.site_id}",
                "timezone": self.tz}


def _flag(query, name: str) -> bool:
    return str(query.get(name, "false")).strip().lower() == "true"


def measurement_set(hub: TwinHub, plant: _Plant, period: str, query, *, device: bool,
                    time_label: str = "end") -> tuple[int, dict]:
    """(HTTP status, body) of an EnergyAndPowerPv measurement set for one plant or its inverter."""
    energy = _flag(query, "ReturnEnergyValues")
    if period == "Day":
        try:
            day = pd.Timestamp(query["Date"])
        except (KeyError, ValueError):
            return 400, {"message": "query parameter Date=YYYY-MM-DD is required for period Day"}
        start = day.normalize().tz_localize(plant.tz, nonexistent="shift_forward").tz_convert("UTC")
        end = (day.normalize() + pd.Timedelta(days=1)).tz_localize(plant.tz, nonexistent="shift_forward").tz_convert("UTC")
        frame = hub.window(plant.site_id, start, end, vendor=VENDOR)
    elif period == "Recent":
        now = hub.sync()
        frame = hub.window(plant.site_id, now - pd.Timedelta(seconds=hub.interval_s), now, vendor=VENDOR)
    else:
        return 400, {"message": f"period {period!r} not served by the twin (Day, Recent)"}
    step_s = int(hub.interval_s)
    if frame.empty:  # before the first step has elapsed: the real API's empty set, not a 500
        labels, wh = [], []
    else:
        stamps = frame["interval_start"] + (pd.Timedelta(seconds=step_s) if time_label == "end" else pd.Timedelta(0))
        labels = pd.to_datetime(stamps, utc=True).dt.tz_convert(plant.tz).dt.strftime(LABEL_FMT).tolist()
        wh = (frame["pv_kwh"] * 1000.0).round(3).tolist()
    if energy:
        entries = [{"time": t, "pvGeneration": v} for t, v in zip(labels, wh, strict=True)]
    else:
        entries = [{"time": t, "pvGenerationPower": round(v * 3600.0 / step_s, 1)}
                   for t, v in zip(labels, wh, strict=True)]
    body = {"plant": {"plantId": plant.plant_id, "name": plant.name, "timezone": plant.tz}}
    if device:
        body["device"] = {"deviceId": plant.device_id, "name": f"{plant.model} SN:{plant.serial}",
                          "timezone": plant.tz}
    body.update({"setType": SET_TYPE, "resolution": RESOLUTION.get(step_s, "FiveMinutes"), "set": entries})
    return 200, body


def build_app(hub: TwinHub, *, access_token: str, time_label: Literal["start", "end"] = "end") -> Starlette:
    """A Starlette app serving the SMA monitoring API for every SMA plant in the hub."""
    if time_label not in ("start", "end"):
        raise ValueError(f"time_label must be 'start' or 'end', got {time_label!r}")
    plants = {p.plant_id: p for p in (_Plant(r, hub) for _, r in vendor_sites(hub, VENDOR).iterrows())}
    by_device = {p.device_id: p for p in plants.values()}
    by_id = {**{k: p.site_id for k, p in plants.items()}, **{k: p.site_id for k, p in by_device.items()}}

    def site_of(request: Request) -> str:
        parts = request.url.path.strip("/").split("/")
        return by_id.get(parts[2], "*") if len(parts) > 2 and parts[1] in ("plants", "devices") else "*"

    def denied(request: Request) -> JSONResponse | None:
        if request.headers.get("Authorization") == f"Bearer {access_token}":
            return None
        return JSONResponse({"message": "Unauthorized"}, status_code=401,
                            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def not_found(what: str) -> JSONResponse:
        return JSONResponse({"message": f"{what} not found"}, status_code=404)

    async def list_plants(request: Request):
        return denied(request) or JSONResponse({"plants": [p.record() for p in plants.values()]})

    async def plant(request: Request):
        if (resp := denied(request)) is not None:
            return resp
        p = plants.get(request.path_params["plant_id"])
        return JSONResponse(p.record()) if p else not_found("plant")

    async def devices(request: Request):
        if (resp := denied(request)) is not None:
            return resp
        p = plants.get(request.path_params["plant_id"])
        if p is None:
            return not_found("plant")
        return JSONResponse({"devices": [{
            "deviceId": p.device_id, "name": f"{p.model} SN:{p.serial}", "type": "Solar Inverters",
            "product": p.model, "serial": p.serial, "vendor": "SMA Solar Technology AG",
            "generatorPower": p.generator_w, "isActive": True}]})

    async def sets(request: Request):
        if (resp := denied(request)) is not None:
            return resp
        device = "device_id" in request.path_params
        p = by_device.get(request.path_params["device_id"]) if device else plants.get(request.path_params["plant_id"])
        if p is None:
            return not_found("device" if device else "plant")
        if request.path_params["set_type"] != SET_TYPE:
            return JSONResponse({"message": f"measurement set {request.path_params['set_type']!r} "
                                            f"not served by the twin ({SET_TYPE})"}, status_code=400)
        status, body = measurement_set(hub, p, request.path_params["period"], request.query_params,
                                       device=device, time_label=time_label)
        return JSONResponse(body, status_code=status)

    async def control(request: Request):
        """The twin's battery control (SMA's cloud API has none): {"setpoint_kw", "duration_s"}."""
        if (refused := denied(request)) is not None:
            return refused
        site_id = request.path_params["site_id"]
        if site_id not in {p.site_id for p in plants.values()}:
            return not_found(f"site {site_id}")
        try:
            setpoint_kw, duration_s = parse_control_body(await request.body())
            hub.command(site_id, setpoint_kw, duration_s if setpoint_kw is not None else 1)
        except (ValueError, CommandRejected) as exc:
            log.warning("sma control rejected: site=%s: %s", site_id, exc)
            return JSONResponse({"message": "Bad Request", "detail": str(exc)}, status_code=400)
        log.info("sma control: site=%s setpoint_kw=%s duration_s=%s", site_id, setpoint_kw, duration_s)
        return JSONResponse({"accepted": True, "setpoint_kw": setpoint_kw, "duration_s": duration_s})

    routes = [
        Route("/sites/{site_id}/control", control, methods=["POST"]),
        Route("/v1/plants", list_plants),
        Route("/v1/plants/{plant_id}", plant),
        Route("/v1/plants/{plant_id}/devices/lean", devices),
        Route("/v1/plants/{plant_id}/measurements/sets/{set_type}/{period}", sets),
        Route("/v1/devices/{device_id}/measurements/sets/{set_type}/{period}", sets),
    ]
    return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, hub=hub, vendor=VENDOR, site_of=site_of)])
