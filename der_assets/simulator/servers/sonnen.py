"""sonnenBatterie local API v2 for every sonnen site of the twin, under /sites/<site_id>/api/v2/...

Why: the sonnen connector and the dispatch command adapter must be tested against the
vendor's own wire format (fields, types, signs, local timestamps), not a mock of our client.
Shapes follow the MarkusBiggus/sonnen_api_v2 mock responses (modelled on a real
sonnenBatterie 10) and reference/vendor-formats.md section 4.

Vendor quirks reproduced here:
- Header `Auth-Token: <token>`; a missing or wrong token answers 401 with an empty body, as
  the fixture's auth mock does. (Some firmware serves /status without a token; the twin
  always asks for one, the stricter case.)
- /status is instantaneous. Power fields are integers in W. GridFeedIn_W is + export /
  - import (the opposite of our grid sign); Pac_total_W is + discharge / - charge.
  BackupBuffer and OperatingMode are STRINGS ('20', '2'); Sac2/Sac3 are null.
- Timestamp is site LOCAL wall time without offset, "YYYY-MM-DD HH:MM:SS".
  /latestdata adds `UTC_Offet` (sic, the typo is the real key) as whole hours, and an
  ic_status block whose own `timestamp` is ctime-style ("Mon Nov 20 17:00:55 2023").
- /powermeter is a list of two meters (direction production | consumption) with LIFETIME
  kWh registers (kwh_imported) and no timestamp; unused phases are integer 0.
- USOC is the usable SoC our reserve floors refer to; RSOC (raw cell SoC) is derived from
  it with a fixed 7 % unusable band (the fixtures only show the two move together).

How the twin fills them: values come from `hub.latest(site, vendor="sonnen")`, i.e. the
average of the last completed twin step (5 min), stamped with that step's END. So a
poller integrating /status sees the twin's energy one step late; /powermeter registers
are exact at their poll time.

Control (reference/vendor-formats.md names the endpoints; the mode handshake is from the
sonnen API documentation as summarised by integrators, marked [A] where we chose):
- PUT /api/v2/configurations with EM_OperatingMode = "1" (manual) or "2" (automatic,
  self-consumption), as JSON or form data; GET /api/v2/configurations[/<name>] reads them.
- POST /api/v2/setpoint/discharge/<watts> and /setpoint/charge/<watts> act only in manual
  mode; otherwise 403 {"error": ...} [A]. A setpoint holds until the next one or until the
  mode returns to automatic (which releases the battery to self-consumption). Watts must be a
  non-negative integer; above the battery's rating -> 400 {"error": ...} [A]. Success is
  201 `true` [A]. The twin acts after the site's command latency and ramp, like any command.
- Every control request is logged (logger `der_assets.simulator.servers.sonnen`) and kept
  in `app.state.command_log`.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

import pandas as pd
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from der_assets.simulator.hub import CommandRejected, TwinHub
from der_assets.simulator.servers.common import FaultMiddleware, site_from_path, vendor_sites

VENDOR = "sonnen"
LABEL_FMT = "%Y-%m-%d %H:%M:%S"
IC_TIME_FMT = "%a %b %d %H:%M:%S %Y"
MANUAL, AUTOMATIC = "1", "2"
SETPOINT_HOLD_S = 7 * 24 * 3600.0  # "until changed": the twin needs a finite duration
UNUSABLE_FRACTION = 0.07
log = logging.getLogger(__name__)

_DC_SHUTDOWN = [
    "Critical BMS Alarm", "Electrolyte Leakage", "Error condition in BMS initialization", "HW_Shutdown",
    "HardWire Over Voltage", "HardWired Dry Signal A", "HardWired Under Voltage", "Holding Circuit Error",
    "Initialization Timeout", "Initialization of AC contactor failed", "Initialization of BMS hardware failed",
    "Initialization of DC contactor failed", "Initialization of Inverter failed",
    "Invalid or no SystemType was set", "Inverter Over Temperature", "Inverter Under Voltage",
    "Inverter Version Too Low For Dc-Module", "Manual shutdown by user", "Minimum rSOC of System reached",
    "Modules voltage out of range", "No Setpoint received by HC", "Odd number of battery modules",
    "One single module detected and module voltage is out of range", "Only one single module detected",
    "Shutdown Timer started", "System Validation failed", "Voltage Monitor Changed",
]
_LED = [
    "Blinking Green", "Blinking Red", "Blinking blue", "Blinking sonnenGradient", "Pulsing Green",
    "Pulsing Orange", "Pulsing Red", "Pulsing White", "Pulsing blue", "Rotating sonnenGradient",
    "Solid Red", "Solid blue", "Solid sonnenGradient",
]
_MISC = ["Discharge not allowed", "F1 open", "Min System SOC", "Min User SOC", "Setpoint Timeout"]
_MICROGRID = [
    "Continious Power Violation", "Discharge Current Limit Violation", "Low Temperature", "Max System SOC",
    "Max User SOC", "Microgrid Enabled", "Min System SOC", "Min User SOC", "Over Charge Current",
    "Over Discharge Current", "Peak Power Violation", "Protect is activated", "Transition to Ongrid Pending",
]
_PRIORITY = ["BMS", "Energy Manager", "Full Charge Request", "Inverter", "Min User SOC", "Trickle Charge"]
_VALIDATION = [
    "Country Code Set status flag 1", "Country Code Set status flag 2", "Self test Error DC Wiring",
    "Self test Postponed", "Self test Precondition not met", "Self test Running",
    "Self test successful finished",
]


class _Site:
    """Per-unit state the real device keeps: operating mode and the manual setpoint."""

    def __init__(self, row: pd.Series, hub: TwinHub):
        self.site_id = str(row["site_id"])
        self.tz = str(row["timezone"])
        self.serial = str(row["vendor_ref"])
        reg = hub.registry[hub.registry["site_id"] == self.site_id]
        bat = reg[reg["device_type"] == "battery"]
        self.capacity_wh = float(bat["capacity_kwh"].sum()) * 1000.0
        self.rated_w = float(bat["rated_kw"].sum()) * 1000.0
        self.reserve_pct = float(row.get("reserve_floor_pct", 20.0) or 0.0)
        self.mode = AUTOMATIC
        self.setpoint_w = 0


def _int(x: float) -> int:
    return int(round(float(x)))


def _local(ts: pd.Timestamp, tz: str) -> pd.Timestamp:
    return pd.Timestamp(ts).tz_convert(tz)


def _reading(hub: TwinHub, site: _Site) -> dict:
    """One snapshot in sonnen's units and signs (W, +discharge, +feed-in) from the twin."""
    r = hub.latest(site.site_id, vendor=VENDOR)
    pv_w, load_w = max(0.0, r["pv_kw"] * 1000.0), max(0.0, r["load_kw"] * 1000.0)
    bat_w, grid_w = r["battery_kw"] * 1000.0, r["grid_kw"] * 1000.0
    usoc = min(100.0, max(0.0, float(r["soc_pct"])))
    return {
        "pv_w": pv_w, "load_w": load_w, "bat_w": bat_w, "feed_in_w": -grid_w, "usoc": usoc,
        "rsoc": UNUSABLE_FRACTION * 100.0 + (1.0 - UNUSABLE_FRACTION) * usoc,
        "local": _local(r["timestamp"], site.tz), "pv_wh": r["pv_wh"], "load_wh": r["load_wh"],
    }


def status_body(hub: TwinHub, site: _Site) -> dict:
    """GET /api/v2/status: keys, order and types as the fixture's status mock."""
    s = _reading(hub, site)
    pac, feed = _int(s["bat_w"]), _int(s["feed_in_w"])
    pv, load = _int(s["pv_w"]), _int(s["load_w"])
    return {
        "Apparent_output": abs(pac),
        "BackupBuffer": str(_int(site.reserve_pct)),
        "BatteryCharging": pac < 0,
        "BatteryDischarging": pac > 0,
        "Consumption_Avg": load,
        "Consumption_W": load,
        "Fac": 60.0,
        "FlowConsumptionBattery": pac > 0 and load > 0,
        "FlowConsumptionGrid": feed < 0 and load > 0,
        "FlowConsumptionProduction": pv > 0 and load > 0,
        "FlowGridBattery": pac < 0 and feed < 0,
        "FlowProductionBattery": pac < 0 and pv > 0,
        "FlowProductionGrid": feed > 0,
        "GridFeedIn_W": feed,
        "IsSystemInstalled": 1,
        "OperatingMode": site.mode,
        "Pac_total_W": pac,
        "Production_W": pv,
        "RSOC": _int(s["rsoc"]),
        "RemainingCapacity_Wh": _int(s["usoc"] / 100.0 * site.capacity_wh),
        "Sac1": abs(pac),
        "Sac2": None,
        "Sac3": None,
        "SystemStatus": "OnGrid",
        "Timestamp": s["local"].strftime(LABEL_FMT),
        "USOC": _int(s["usoc"]),
        "Uac": 240,
        "Ubat": 211,
        "dischargeNotAllowed": False,
        "generator_autostart": False,
    }


def latest_body(hub: TwinHub, site: _Site) -> dict:
    """GET /api/v2/latestdata, with the real `UTC_Offet` typo and the ic_status tree."""
    s = _reading(hub, site)
    pac = _int(s["bat_w"])
    offset_h = int(s["local"].utcoffset().total_seconds() // 3600)
    setpoint = site.setpoint_w if site.mode == MANUAL else pac
    return {
        "FullChargeCapacity": round(site.capacity_wh, 3),
        "GridFeedIn_W": _int(s["feed_in_w"]),
        "Production_W": _int(s["pv_w"]),
        "Consumption_W": _int(s["load_w"]),
        "Pac_total_W": pac,
        "RSOC": _int(s["rsoc"]),
        "SetPoint_W": int(setpoint),
        "Timestamp": s["local"].strftime(LABEL_FMT),
        "USOC": _int(s["usoc"]),
        "UTC_Offet": offset_h,
        "ic_status": {
            "DC Shutdown Reason": {k: False for k in _DC_SHUTDOWN},
            "Eclipse Led": {**{k: k == "Pulsing White" for k in _LED}, "Brightness": 100,
                            "Eclipse Status": "0x01 - ONGRID_READY"},
            "MISC Status Bits": {k: (k == "Min User SOC" and s["usoc"] <= site.reserve_pct) for k in _MISC},
            "Microgrid Status": {k: False for k in _MICROGRID},
            "Setpoint Priority": {k: k == "Energy Manager" for k in _PRIORITY},
            "System Validation": {k: False for k in _VALIDATION},
            "nrbatterymodules": max(1, _int(site.capacity_wh / 5000.0)),
            "secondssincefullcharge": 3600,
            "statebms": "ready",
            "statecorecontrolmodule": "ongrid",
            "stateinverter": "running",
            "timestamp": s["local"].strftime(IC_TIME_FMT),
        },
    }


def powermeter_body(hub: TwinHub, site: _Site) -> list:
    """GET /api/v2/powermeter: production and consumption meters with lifetime kWh registers."""
    s = _reading(hub, site)

    def meter(channel: int, direction: str, w: float, kwh: float) -> dict:
        v = 240.0
        # as in the fixture: the production meter reports no reactive power (integer 0),
        # the consumption meter a float
        var = 0 if direction == "production" else round(-0.3 * float(w), 1)
        return {
            "a_l1": round(w / v, 3), "a_l2": 0, "a_l3": 0, "channel": channel, "deviceid": 4,
            "direction": direction, "error": 0, "kwh_exported": 0, "kwh_imported": float(kwh),
            "v_l1_l2": 0, "v_l1_n": v, "v_l2_l3": 0, "v_l2_n": 0, "v_l3_l1": 0, "v_l3_n": 0,
            "va_total": round(float(w), 1), "var_total": var, "w_l1": round(float(w), 1), "w_l2": 0,
            "w_l3": 0, "w_total": round(float(w), 1),
        }

    return [meter(1, "production", s["pv_w"], s["pv_wh"] / 1000.0),
            meter(2, "consumption", s["load_w"], s["load_wh"] / 1000.0)]


def configurations_body(site: _Site) -> dict:
    return {
        "EM_RE_ENABLE_MICROGRID": "0",
        "NVM_PfcIsFixedCosPhiActive": 0,
        "NVM_PfcFixedCosPhi": 0.8,
        "IC_BatteryModules": max(1, _int(site.capacity_wh / 5000.0)),
        "EM_ToU_Schedule": [],
        "DE_Software": "1.14.5",
        "EM_USER_INPUT_TIME_ONE": "08:00",
        "NVM_PfcIsFixedCosPhiLagging": 0,
        "EM_Prognosis_Charging": 1,
        "EM_USOC": _int(site.reserve_pct),
        "EM_USER_INPUT_TIME_TWO": "09:05",
        "EM_OperatingMode": site.mode,
        "SH_HeaterTemperatureMax": 80,
        "SH_HeaterOperatingMode": 0,
        "IC_InverterMaxPower_w": _int(site.rated_w),
        "SH_HeaterTemperatureMin": 0,
        "CM_MarketingModuleCapacity": 5000,
        "EM_USER_INPUT_TIME_THREE": "10:10",
        "CN_CascadingRole": "none",
        "EM_US_GEN_POWER_SET_POINT": 0,
        "DepthOfDischargeLimit": 93,
    }


def build_app(hub: TwinHub, *, auth_token: str) -> Starlette:
    """A Starlette app serving the sonnen v2 API of every sonnen site in the hub."""
    sites = {str(r["site_id"]): _Site(r, hub) for _, r in vendor_sites(hub, VENDOR).iterrows()}
    command_log: list[dict] = []

    def unit(request: Request) -> _Site | Response:
        if request.headers.get("Auth-Token") != auth_token:
            return Response(status_code=401)
        site = sites.get(request.path_params["site_id"])
        if site is None:
            return JSONResponse({"error": "Not Found"}, status_code=404)
        return site

    def getter(render):
        async def endpoint(request: Request) -> Response:
            site = unit(request)
            return site if isinstance(site, Response) else JSONResponse(render(site))
        return endpoint

    async def configurations(request: Request) -> Response:
        site = unit(request)
        if isinstance(site, Response):
            return site
        if request.method == "GET":
            conf = configurations_body(site)
            name = request.path_params.get("name")
            if name is None:
                return JSONResponse(conf)
            return JSONResponse({name: conf[name]}) if name in conf else JSONResponse(
                {"error": f"unknown configuration {name}"}, status_code=404)
        raw = (await request.body()).decode("utf-8", "replace")
        try:
            changes = json.loads(raw) if raw.strip().startswith("{") else {
                k: v[-1] for k, v in parse_qs(raw).items()}
        except json.JSONDecodeError:
            return JSONResponse({"error": "body is neither JSON nor form data"}, status_code=400)
        mode = str(changes.get("EM_OperatingMode", site.mode))
        if set(changes) - {"EM_OperatingMode"} or mode not in (MANUAL, AUTOMATIC):
            return JSONResponse({"error": "only EM_OperatingMode 1 (manual) or 2 (automatic) can be set here"},
                                status_code=400)
        if mode != site.mode:
            # entering manual holds the battery at 0 W until a setpoint arrives; leaving it
            # hands the battery back to the energy manager (self-consumption)
            hub.command(site.site_id, 0.0 if mode == MANUAL else None, SETPOINT_HOLD_S)
            site.mode, site.setpoint_w = mode, 0
        _record(site, "configurations", {"EM_OperatingMode": mode}, 200)
        return JSONResponse({"EM_OperatingMode": mode})

    async def setpoint(request: Request) -> Response:
        site = unit(request)
        if isinstance(site, Response):
            return site
        direction, raw = request.path_params["direction"], request.path_params["watts"]
        if direction not in ("charge", "discharge"):
            return JSONResponse({"error": "Not Found"}, status_code=404)
        if not raw.isdigit():
            _record(site, direction, raw, 400)
            return JSONResponse({"error": f"watts must be a non-negative integer, got {raw!r}"}, status_code=400)
        if site.mode != MANUAL:
            _record(site, direction, int(raw), 403)
            return JSONResponse({"error": "setpoint requires manual operating mode (EM_OperatingMode 1)"},
                                status_code=403)
        watts = int(raw)
        signed_w = watts if direction == "discharge" else -watts
        try:
            hub.command(site.site_id, signed_w / 1000.0, SETPOINT_HOLD_S)
        except CommandRejected as exc:
            _record(site, direction, watts, 400)
            return JSONResponse({"error": f"setpoint {watts} W rejected: {exc}"}, status_code=400)
        site.setpoint_w = signed_w
        _record(site, direction, watts, 201)
        return JSONResponse(True, status_code=201)

    def _record(site: _Site, action: str, value, status: int) -> None:
        entry = {"at": hub.now(), "site_id": site.site_id, "action": action, "value": value, "status": status}
        command_log.append(entry)
        log.info("sonnen %s %s=%s -> %s", site.site_id, action, value, status)

    base = "/sites/{site_id}/api/v2"
    routes = [
        Route(f"{base}/status", getter(lambda s: status_body(hub, s))),
        Route(f"{base}/latestdata", getter(lambda s: latest_body(hub, s))),
        Route(f"{base}/powermeter", getter(lambda s: powermeter_body(hub, s))),
        Route(f"{base}/configurations", configurations, methods=["GET", "PUT"]),
        Route(f"{base}/configurations/{{name}}", configurations, methods=["GET"]),
        Route(f"{base}/setpoint/{{direction}}/{{watts}}", setpoint, methods=["POST"]),
    ]
    app = Starlette(routes=routes, middleware=[
        Middleware(FaultMiddleware, hub=hub, vendor=VENDOR, site_of=site_from_path)])
    app.state.command_log = command_log
    return app
