"""Fronius Solar API v1 (Datamanager, local JSON) for every Fronius site, under /sites/<site_id>/solar_api/v1/...

Why: the Fronius connector must be tested against the vendor's own envelope, keys and time
forms. Shapes follow the akleber/fronius-json-tools real captures (GetArchiveData Detail,
PowerFlow 1.23.2-1), pyfronius' v1 PowerFlow capture, and the Solar API v1 document
42,0410,2012 (reference/vendor-formats.md section 5).

Vendor quirks reproduced here:
- No authentication: the document's FAQ says the API is always open.
- Envelope {"Body": {"Data": ...}, "Head": {"RequestArguments", "Status": {"Code", "Reason",
  "UserMessage"}, "Timestamp"}}; errors are HTTP 200 with a non-zero Status.Code.
- Times are RFC 3339 WITH the site's offset (e.g. 2017-08-30T00:00:00+02:00).
- PowerFlow Site: P_Grid + import / - export, P_Load NEGATIVE for consumption, P_Akku
  + discharge / - charge and null without a battery, E_Total lifetime PV Wh. Values are the
  average of the last completed twin step; Head.Timestamp is that step's end.
- GetArchiveData: StartDate/EndDate accept "21.5.2014", "5/21/2014", "2014-5-21" (local
  dates of the PV system) or RFC 3339; a date-only EndDate means 23:59:59 of that day.
  Values are keyed by SECONDS SINCE Start (elapsed seconds, so a DST day runs to 82500 or
  89700), logged every 300 s. A window longer than 16 days answers Status.Code 255 with
  Reason "Query interval is restricted to 16 days" and an empty Body.Data (body seen in
  third-party client tests); missing or malformed arguments answer Code 6 (Argument Error).
- Meter channels EnergyReal_WAC_Plus_Absolute / _Minus_Absolute are LIFETIME registers in
  whole Wh (grid import / export at a meter at the feed-in point) under "meter:<serial>",
  with only Start, End and Data, as in the real capture. EnergyReal_WAC_Sum_Produced is the
  inverter's per-step Wh under "inverter/1". The register reading at key k is the counter at
  Start + k, so the step that ends at 24:00 has no reading in that day's answer.
- RequestArguments echo Channel as a string for one channel and a list for several.
"""

from __future__ import annotations

import re

import pandas as pd
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from der_assets.simulator.hub import TwinHub
from der_assets.simulator.servers.common import FaultMiddleware, site_from_path, vendor_sites

VENDOR = "fronius"
PLUS, MINUS, PRODUCED = "EnergyReal_WAC_Plus_Absolute", "EnergyReal_WAC_Minus_Absolute", "EnergyReal_WAC_Sum_Produced"
CHANNEL_IDS = {PLUS: 167772424, MINUS: 167837960, PRODUCED: 67830024}
STEP_S = 300
MAX_SPAN = pd.Timedelta(days=16)
_DATE_FORMS = [
    (re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{2}|\d{4})$"), ("d", "m", "y")),
    (re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})$"), ("m", "d", "y")),
    (re.compile(r"^(\d{2}|\d{4})-(\d{1,2})-(\d{1,2})$"), ("y", "m", "d")),
]


def rfc3339(ts: pd.Timestamp, tz: str) -> str:
    """Local time with offset, seconds precision, as the Datamanager writes it."""
    return pd.Timestamp(ts).tz_convert(tz).isoformat(timespec="seconds")


def parse_date(text: str, tz: str, *, end: bool) -> pd.Timestamp:
    """A Solar API DateString -> UTC; a date alone is PV-system local time (end -> 23:59:59)."""
    text = text.strip()
    for rx, order in _DATE_FORMS:
        m = rx.match(text)
        if m:
            parts = dict(zip(order, (int(g) for g in m.groups()), strict=True))
            year = parts["y"] + 2000 if parts["y"] < 100 else parts["y"]
            day = pd.Timestamp(year=year, month=parts["m"], day=parts["d"])
            local = day + (pd.Timedelta(hours=23, minutes=59, seconds=59) if end else pd.Timedelta(0))
            return local.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
    ts = pd.Timestamp(text)
    if ts.tzinfo is None:
        return ts.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
    return ts.tz_convert("UTC")


def _envelope(hub: TwinHub, tz: str, data, args: dict, code: int = 0, reason: str = "", archive: bool = False):
    status = {"Code": code, "Reason": reason, "UserMessage": ""}
    if archive:
        status = {"Code": code, "ErrorDetail": {"Nodes": []}, "Reason": reason, "UserMessage": ""}
    return {"Body": {"Data": data}, "Head": {"RequestArguments": args, "Status": status,
                                             "Timestamp": rfc3339(hub.now(), tz)}}


class _Site:
    def __init__(self, row: pd.Series, hub: TwinHub):
        self.site_id = str(row["site_id"])
        self.tz = str(row["timezone"])
        self.serial = str(row["vendor_ref"])
        reg = hub.registry[hub.registry["site_id"] == self.site_id]
        self.has_battery = bool((reg["device_type"] == "battery").any())


def power_flow_body(hub: TwinHub, site: _Site) -> dict:
    """GetPowerFlowRealtimeData.fcgi for a Datamanager system (meter at the grid)."""
    r = hub.latest(site.site_id, vendor=VENDOR)
    pv_w, load_w = r["pv_kw"] * 1000.0, r["load_kw"] * 1000.0
    grid_w, bat_w = r["grid_kw"] * 1000.0, r["battery_kw"] * 1000.0
    local_now = pd.Timestamp(r["timestamp"]).tz_convert(site.tz)
    day0 = local_now.normalize().tz_convert("UTC")
    year0 = local_now.replace(month=1, day=1).normalize().tz_convert("UTC")
    stamp = pd.Timestamp(r["timestamp"])
    e_day = float(hub.window(site.site_id, day0, stamp, vendor=VENDOR)["pv_kwh"].sum()) * 1000.0
    e_year = float(hub.window(site.site_id, year0, stamp, vendor=VENDOR)["pv_kwh"].sum()) * 1000.0
    autonomy = None if load_w <= 0 else max(0.0, min(100.0, 100.0 * (load_w - max(grid_w, 0.0)) / load_w))
    self_use = None if pv_w <= 0 else max(0.0, min(100.0, 100.0 * (pv_w - max(-grid_w, 0.0)) / pv_w))
    inverter = {"DT": 102, "E_Day": round(e_day, 1), "E_Total": round(r["pv_wh"], 1),
                "E_Year": round(e_year, 1), "P": round(pv_w + (bat_w if site.has_battery else 0.0), 2)}
    site_node = {
        "E_Day": round(e_day, 1), "E_Total": round(r["pv_wh"], 1), "E_Year": round(e_year, 1),
        "Meter_Location": "grid", "Mode": "bidirectional" if site.has_battery else "meter",
        "P_Akku": round(bat_w, 2) if site.has_battery else None, "P_Grid": round(grid_w, 2),
        "P_Load": round(-load_w, 2), "P_PV": round(pv_w, 2),
        "rel_Autonomy": autonomy, "rel_SelfConsumption": self_use,
    }
    if site.has_battery:
        site_node["BatteryStandby"] = False
        inverter.update({"Battery_Mode": "normal", "SOC": round(float(r["soc_pct"]), 1)})
    body = _envelope(hub, site.tz, {"Inverters": {"1": inverter}, "Site": site_node, "Version": "12"}, {})
    body["Head"]["Timestamp"] = rfc3339(stamp, site.tz)
    return body


def archive_body(hub: TwinHub, site: _Site, query) -> dict:
    """GetArchiveData.cgi, Scope=System, SeriesType=Detail: registers and per-step PV energy."""
    channels = query.getlist("Channel")
    args = {"Channel": channels[0] if len(channels) == 1 else channels,
            "HumanReadable": query.get("HumanReadable", "True"), "Scope": query.get("Scope", ""),
            "SeriesType": query.get("SeriesType", "Detail")}

    def error(code: int, reason: str) -> dict:
        return _envelope(hub, site.tz, {}, args, code, reason, archive=True)

    if args["Scope"] != "System":
        return error(6, "Scope must be System (Device scope is not served by the twin)")
    if "StartDate" not in query or "EndDate" not in query or not channels:
        return error(6, "StartDate, EndDate and at least one Channel are mandatory")
    if args["SeriesType"] != "Detail":
        return error(11, f"SeriesType {args['SeriesType']} is not supported by the twin")
    unknown = sorted(set(channels) - set(CHANNEL_IDS))
    if unknown:
        return error(6, f"unknown channel {unknown[0]}")
    try:
        start = parse_date(query["StartDate"], site.tz, end=False)
        end = parse_date(query["EndDate"], site.tz, end=True)
    except ValueError as exc:
        return error(6, f"bad date: {exc}")
    args["EndDate"], args["StartDate"] = rfc3339(end, site.tz), rfc3339(start, site.tz)
    if end < start:
        return error(6, "EndDate is before StartDate")
    if end - start > MAX_SPAN:
        return error(255, "Query interval is restricted to 16 days")
    frame = hub.window(site.site_id, start - pd.Timedelta(seconds=STEP_S), end, vendor=VENDOR)
    ends = frame["interval_start"] + pd.to_timedelta(frame["interval_s"], unit="s")
    data: dict = {}
    meter = [c for c in channels if c in (PLUS, MINUS)]
    if meter:
        at = (ends >= start) & (ends <= end)
        keys = ((ends[at] - start).dt.total_seconds().astype(int).astype(str)).tolist()
        cols = {PLUS: "grid_import_wh", MINUS: "grid_export_wh"}
        data[f"meter:{site.serial}"] = {"Data": {
            c: {"Unit": "Wh", "Values": dict(zip(keys, frame.loc[at, cols[c]].astype(float).astype(int).tolist(),
                                                  strict=True)),
                "_comment": f"channelId={CHANNEL_IDS[c]}"} for c in meter},
            "End": rfc3339(end, site.tz), "Start": rfc3339(start, site.tz)}
    if PRODUCED in channels:
        starts = frame["interval_start"]
        inside = (starts >= start) & (starts <= end)
        keys = ((starts[inside] - start).dt.total_seconds().astype(int).astype(str)).tolist()
        data["inverter/1"] = {"Data": {PRODUCED: {
            "Unit": "Wh", "Values": dict(zip(keys, (frame.loc[inside, "pv_kwh"] * 1000.0).round(6).tolist(), strict=True)),
            "_comment": f"channelId={CHANNEL_IDS[PRODUCED]}"}},
            "DeviceType": 102, "End": rfc3339(end, site.tz), "NodeType": 97, "Start": rfc3339(start, site.tz)}
    return _envelope(hub, site.tz, data, args, archive=True)


def build_app(hub: TwinHub) -> Starlette:
    """A Starlette app serving Solar API v1 for every Fronius site in the hub (no auth, like the device)."""
    sites = {str(r["site_id"]): _Site(r, hub) for _, r in vendor_sites(hub, VENDOR).iterrows()}

    def site_or_404(request: Request):
        return sites.get(request.path_params["site_id"])

    async def power_flow(request: Request):
        site = site_or_404(request)
        if site is None:
            return JSONResponse({"error": "Not Found"}, status_code=404)
        return JSONResponse(power_flow_body(hub, site))

    async def archive(request: Request):
        site = site_or_404(request)
        if site is None:
            return JSONResponse({"error": "Not Found"}, status_code=404)
        return JSONResponse(archive_body(hub, site, request.query_params))

    base = "/sites/{site_id}/solar_api/v1"
    routes = [
        Route(f"{base}/GetPowerFlowRealtimeData.fcgi", power_flow),
        Route(f"{base}/GetArchiveData.cgi", archive),
    ]
    return Starlette(routes=routes, middleware=[
        Middleware(FaultMiddleware, hub=hub, vendor=VENDOR, site_of=site_from_path)])
