"""SolarEdge Monitoring API v1 served from the twin, so the SolarEdge connector meets real HTTP.

Paths and parameters follow the public API (`https://monitoringapi.solaredge.com`); only sites
whose devices have telemetry_source == "solaredge" are served, keyed by the registry's
vendor_ref (the SolarEdge site id). Values come from TwinHub.window(..., vendor="solaredge"),
so the hub's data faults show up here and FaultMiddleware adds the transport faults.

Endpoints: GET /sites/list, /site/{id}/details, /site/{id}/energyDetails, /site/{id}/powerDetails,
/site/{id}/meters, /site/{id}/storageData; every call needs `?api_key=`.

SolarEdge quirks reproduced (reference/vendor-formats.md section 1):

- Auth is only the `api_key` query parameter. A missing or wrong key, or a site the key cannot
  see, answers 403 Forbidden (the real API does not use 401).
- Times in and out are site-local "YYYY-MM-DD hh:mm:ss" strings without an offset; the zone is
  in /site/{id}/details `location.timeZone`. energyDetails/powerDetails labels are
  interval-BEGINNING. startTime is inclusive, endTime exclusive (local wall-clock comparison).
- DST: slots are grouped by their local wall-clock label, so on the fall-back day the two
  passes of the repeated hour are SUMMED into one set of slots (as the real API does), and on
  the spring-forward day the nonexistent hour appears as slots with no "value" key.
- A slot that has elapsed but has no data (a dropout or late fault) is an entry with "date" and
  no "value" key, never 0. Slots that have not started yet are not listed.
- Maximum range per call (longer -> 403): energyDetails and meters 1 month at
  QUARTER_OF_AN_HOUR/HOUR, 1 year at DAY/WEEK, unlimited at MONTH/YEAR; powerDetails 1 month;
  storageData 1 week [A, recalled from the PDF].
- Limits: 300 requests per site id per day, 300 per day per api_key for calls with no site id
  (/sites/list), 3 concurrent calls per source IP; beyond either -> 429. "Day" is the UTC date
  of the hub clock, so a ManualClock replay gets the same budget per simulated day.
- energyDetails: Wh per slot; powerDetails: average W per slot; meters: LIFETIME register Wh
  readings stamped at their (5-min) reading times, one reading per slot (the last in it);
  storageData: ~5-min telemetry with lifetime charged/discharged Wh and SoC %.
- storageData `power` sign: positive = charging, negative = discharging [A: unverified; the
  project parser does not use it]. `batteryState` is always 3 ("enabled") [A].

Rounding: energies are served in Wh to 3 decimals with the rounding remainder carried along
each series, so any served window sums to within 0.0005 Wh of the twin. Registers are whole Wh.

Error bodies are {"String": "<message>"} [A: the exact text of SolarEdge error bodies is not
verified here; the status codes are].

Twin control endpoint (ours: SolarEdge has no public battery-control API):

    POST /sites/<site_id>/control?api_key=KEY
    {"setpoint_kw": 3.5 | null, "duration_s": 900}

<site_id> is the registry site id or the SolarEdge site id. setpoint_kw is + discharge,
- charge, null returns the battery to self-consumption. 200 echoes the accepted command; a
setpoint outside the battery's limits, a site without a battery or a bad body -> 400
{"String": ...}. Control calls do not count against the daily limit. Every command is logged
(logger "der_assets.simulator.servers.solaredge").
"""

from __future__ import annotations

import hmac
import json
import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from der_assets.simulator.hub import CommandRejected, TwinHub
from der_assets.simulator.servers.common import FaultMiddleware, vendor_sites

log = logging.getLogger(__name__)

VENDOR = "solaredge"
LABEL_FMT = "%Y-%m-%d %H:%M:%S"
DAILY_LIMIT = 300
MAX_CONCURRENT = 3
METER_TYPES = ("Production", "Consumption", "SelfConsumption", "FeedIn", "Purchased")
#: timeUnit -> maximum startTime..endTime span (None = unlimited)
ENERGY_MAX_RANGE = {
    "QUARTER_OF_AN_HOUR": pd.DateOffset(months=1), "HOUR": pd.DateOffset(months=1),
    "DAY": pd.DateOffset(years=1), "WEEK": pd.DateOffset(years=1), "MONTH": None, "YEAR": None,
}
POWER_MAX_RANGE = pd.DateOffset(months=1)
STORAGE_MAX_RANGE = pd.DateOffset(weeks=1)
BATTERY_STATE_ENABLED = 3


class ApiError(Exception):
    """An error the real API would answer with this status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"String": message}, status_code=status)


def carry_round(values: np.ndarray, decimals: int) -> np.ndarray:
    """Round a series so its running sum stays within half a unit of the true running sum."""
    v = np.asarray(values, dtype="float64")
    cum = np.round(np.cumsum(v), decimals)
    return np.round(np.diff(np.concatenate([[0.0], cum])), decimals)


@dataclass(frozen=True)
class _Site:
    site_id: str
    ref: str
    tz: str
    row: pd.Series
    pv: pd.Series | None
    battery: pd.Series | None


class _Fleet:
    """The SolarEdge account: the sites it may see, by SolarEdge id and by registry id."""

    def __init__(self, hub: TwinHub):
        self.hub = hub
        self.by_ref: dict[str, _Site] = {}
        self.by_site: dict[str, _Site] = {}
        reg = hub.registry
        for _, row in vendor_sites(hub, VENDOR).iterrows():
            devs = reg[(reg["site_id"] == row["site_id"]) & (reg["telemetry_source"] == VENDOR)]
            pv = devs[devs["device_type"] == "pv_inverter"]
            bat = devs[devs["device_type"] == "battery"]
            site = _Site(str(row["site_id"]), str(row["vendor_ref"]), str(row["timezone"]), row,
                         pv.iloc[0] if len(pv) else None, bat.iloc[0] if len(bat) else None)
            self.by_ref[site.ref] = site
            self.by_site[site.site_id] = site

    def resolve(self, key: str) -> _Site | None:
        return self.by_ref.get(key) or self.by_site.get(key)

    def site_of(self, request: Request) -> str:
        """Registry site id of a request (for faults and limits), '*' when fleet-wide."""
        parts = request.url.path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] in ("site", "sites"):
            site = self.resolve(parts[1])
            return site.site_id if site else "*"
        return "*"


# ---- limits and auth -------------------------------------------------------------------


class _Gate:
    """Pure ASGI middleware: api_key check (403), then the daily and concurrency limits (429).

    Sits outside FaultMiddleware so a stalled request still holds its concurrency slot.
    """

    def __init__(self, app, *, fleet: _Fleet, api_key: str, daily_limit: int, max_concurrent: int):
        self.app, self.fleet, self.api_key = app, fleet, api_key
        self.daily_limit, self.max_concurrent = daily_limit, max_concurrent
        self.in_flight: dict[str, int] = {}
        self.counts: dict[tuple, int] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        key = request.query_params.get("api_key", "")
        if not key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return await _error(403, "Invalid token")(scope, receive, send)
        ip = request.client.host if request.client else "?"
        if self.in_flight.get(ip, 0) >= self.max_concurrent:
            log.info("solaredge 429: more than %d concurrent calls from %s", self.max_concurrent, ip)
            return await _error(429, "Too many concurrent requests")(scope, receive, send)
        parts = request.url.path.strip("/").split("/")
        if parts[0] != "sites" or parts[-1] != "control":  # the twin's control path is not metered
            day = self.fleet.hub.now().date().isoformat()
            bucket = ("site", parts[1], day) if parts[0] == "site" and len(parts) > 1 else ("account", key, day)
            self.counts[bucket] = self.counts.get(bucket, 0) + 1
            if self.counts[bucket] > self.daily_limit:
                log.info("solaredge 429: daily limit %d reached for %s", self.daily_limit, bucket[:2])
                return await _error(429, "Too many requests")(scope, receive, send)
        self.in_flight[ip] = self.in_flight.get(ip, 0) + 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight[ip] -= 1


# ---- local time ------------------------------------------------------------------------


def _parse_local(text: str | None, name: str) -> pd.Timestamp:
    if not text:
        raise ApiError(400, f"{name} is required (YYYY-MM-DD hh:mm:ss)")
    try:
        return pd.Timestamp(pd.to_datetime(text, format=LABEL_FMT))
    except (ValueError, TypeError):
        raise ApiError(400, f"{name} {text!r} is not in the format YYYY-MM-DD hh:mm:ss") from None


def _local_range(request: Request, max_range: pd.DateOffset | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = _parse_local(request.query_params.get("startTime"), "startTime")
    end = _parse_local(request.query_params.get("endTime"), "endTime")
    if end <= start:
        raise ApiError(400, "endTime must be after startTime")
    if max_range is not None and end > start + max_range:
        raise ApiError(403, "Requested time frame is too long for this resolution")
    return start, end


def _naive_local(utc: pd.Series, tz: str) -> pd.Series:
    return pd.Series(pd.DatetimeIndex(utc).tz_convert(tz).tz_localize(None), index=utc.index)


def _slot(naive: pd.Series | pd.DatetimeIndex, unit: str):
    """Local wall-clock slot label (slot start) of naive local times."""
    idx = pd.DatetimeIndex(naive)
    if unit == "QUARTER_OF_AN_HOUR":
        out = idx.floor("15min")
    elif unit == "HOUR":
        out = idx.floor("h")
    elif unit == "DAY":
        out = idx.normalize()
    elif unit == "WEEK":  # SolarEdge weeks start on Monday [A]
        out = idx.normalize() - pd.to_timedelta(idx.weekday, unit="D")
    elif unit == "MONTH":
        out = idx.to_period("M").to_timestamp()
    else:
        out = idx.to_period("Y").to_timestamp()
    return out


def _slot_grid(start: pd.Timestamp, end: pd.Timestamp, unit: str, now_local: pd.Timestamp) -> pd.DatetimeIndex:
    """Every wall-clock slot label in [start, end) that began before now (nonexistent ones included).

    The slot in progress is listed with what has elapsed of it (a growing value) [A].
    """
    first = _slot(pd.DatetimeIndex([start]), unit)[0]
    freq = {"QUARTER_OF_AN_HOUR": "15min", "HOUR": "h", "DAY": "D", "WEEK": "7D", "MONTH": "MS", "YEAR": "YS"}[unit]
    grid = pd.date_range(first, end, freq=freq, inclusive="left")
    return grid[grid < now_local]


class _Api:
    """Request handlers; sync so Starlette runs them in its thread pool (the hub is thread-safe)."""

    def __init__(self, hub: TwinHub, fleet: _Fleet):
        self.hub, self.fleet = hub, fleet

    # ---- helpers

    def _site(self, request: Request) -> _Site:
        site = self.fleet.by_ref.get(request.path_params["site_ref"])
        if site is None:
            raise ApiError(403, "Invalid site ID")
        return site

    def _window(self, site: _Site, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
        """Twin intervals whose local start is in [start, end), with their naive local start and end."""
        pad = pd.Timedelta(days=1)
        lo = start.tz_localize("UTC") - pad
        hi = end.tz_localize("UTC") + pad
        frame = self.hub.window(site.site_id, lo, hi, vendor=VENDOR)
        if frame.empty:
            return frame.assign(local=pd.Series(dtype="datetime64[ns]"), local_end=pd.Series(dtype="datetime64[ns]"))
        ends = frame["interval_start"] + pd.to_timedelta(frame["interval_s"], unit="s")
        frame = frame.assign(local=_naive_local(frame["interval_start"], site.tz), local_end=_naive_local(ends, site.tz))
        return frame

    def _now_local(self, site: _Site) -> pd.Timestamp:
        return self.hub.now().tz_convert(site.tz).tz_localize(None)

    @staticmethod
    def _meter_series(frame: pd.DataFrame) -> dict[str, pd.Series]:
        """kWh per twin interval for each SolarEdge meter."""
        grid = frame["grid_kwh"]
        feed_in = (-grid).clip(lower=0.0)
        return {
            "Production": frame["pv_kwh"],
            "Consumption": frame["load_kwh"],
            "SelfConsumption": (frame["pv_kwh"] - feed_in).clip(lower=0.0),
            "FeedIn": feed_in,
            "Purchased": grid.clip(lower=0.0),
        }

    @staticmethod
    def _meters_param(request: Request) -> list[str]:
        raw = request.query_params.get("meters")
        if not raw:
            return list(METER_TYPES)
        by_upper = {m.upper(): m for m in METER_TYPES}
        out = []
        for name in raw.split(","):
            m = by_upper.get(name.strip().upper())
            if m is None:
                raise ApiError(400, f"Invalid meter type {name.strip()!r}")
            out.append(m)
        return out

    def _per_slot(self, request: Request, *, unit: str, max_range, to_value) -> tuple[str, list[dict]]:
        site = self._site(request)
        start, end = _local_range(request, max_range)
        frame = self._window(site, start, end)
        if not frame.empty:
            frame = frame[(frame["local"] >= start) & (frame["local"] < end)]
        grid = _slot_grid(start, end, unit, self._now_local(site))
        labels = grid.strftime(LABEL_FMT)
        series = self._meter_series(frame) if not frame.empty else {}
        slots = _slot(frame["local"], unit) if not frame.empty else pd.DatetimeIndex([])
        meters = []
        for mtype in self._meters_param(request):
            if series:
                sums = series[mtype].groupby(slots).sum().reindex(grid)
            else:
                sums = pd.Series(np.nan, index=grid)
            have = sums.notna().to_numpy()
            values = np.full(len(grid), np.nan)
            values[have] = to_value(sums.to_numpy()[have], grid[have])
            entries = [{"date": d, "value": float(v)} if np.isfinite(v) else {"date": d} for d, v in zip(labels, values)]
            meters.append({"type": mtype, "values": entries})
        return site.site_id, meters

    # ---- endpoints

    def sites_list(self, request: Request) -> JSONResponse:
        size = int(request.query_params.get("size", 100))
        first = int(request.query_params.get("startIndex", 0))
        sites = list(self.fleet.by_ref.values())
        page = sites[first : first + min(size, 100)]
        return JSONResponse({"sites": {"count": len(sites), "site": [self._site_object(s) for s in page]}})

    def details(self, request: Request) -> JSONResponse:
        return JSONResponse({"details": self._site_object(self._site(request))})

    def _site_object(self, site: _Site) -> dict:
        row = site.row
        pv = site.pv
        peak_kw = float(pv["pv_dc_kw"]) if pv is not None and pd.notna(pv["pv_dc_kw"]) else 0.0
        installed = pd.Timestamp(row["commissioned_on"]).strftime("%Y-%m-%d") if pd.notna(row["commissioned_on"]) else None
        return {
            "id": int(site.ref),
            "name": f"{row['subscriber_name']} {site.site_id}",
            "accountId": 0,
            "status": "Active",
            "peakPower": round(peak_kw, 3),
            "lastUpdateTime": self.hub.now().tz_convert(site.tz).strftime("%Y-%m-%d"),
            "installationDate": installed,
            "ptoDate": None,
            "notes": "",
            "type": "Optimizers & Inverters",
            "location": {
                "country": "United States",
                "state": "Illinois" if site.tz == "America/Chicago" else "Pennsylvania",
                "city": "",
                "address": str(row["address"]),
                "address2": "",
                "zip": str(row["postal_code"]),
                "timeZone": site.tz,
                "countryCode": "US",
                "stateCode": "IL" if site.tz == "America/Chicago" else "PA",
            },
            "primaryModule": {"manufacturerName": "", "modelName": "", "maximumPower": 0.0},
            "uris": {
                "DETAILS": f"/site/{site.ref}/details",
                "DATA_PERIOD": f"/site/{site.ref}/dataPeriod",
                "OVERVIEW": f"/site/{site.ref}/overview",
            },
            "publicSettings": {"isPublic": False},
        }

    def energy_details(self, request: Request) -> JSONResponse:
        unit = request.query_params.get("timeUnit", "DAY")
        if unit not in ENERGY_MAX_RANGE:
            raise ApiError(400, f"Invalid timeUnit {unit!r}")
        _, meters = self._per_slot(request, unit=unit, max_range=ENERGY_MAX_RANGE[unit],
                                   to_value=lambda kwh, _g: carry_round(kwh * 1000.0, 3))
        return JSONResponse({"energyDetails": {"timeUnit": unit, "unit": "Wh", "meters": meters}})

    def power_details(self, request: Request) -> JSONResponse:
        unit = "QUARTER_OF_AN_HOUR"
        # average W over the slot; a summed fall-back slot carries both passes' energy
        _, meters = self._per_slot(request, unit=unit, max_range=POWER_MAX_RANGE,
                                   to_value=lambda kwh, _g: np.round(kwh * 1000.0 / 0.25, 3))
        return JSONResponse({"powerDetails": {"timeUnit": unit, "unit": "W", "meters": meters}})

    def meters(self, request: Request) -> JSONResponse:
        unit = request.query_params.get("timeUnit", "DAY")
        if unit not in ENERGY_MAX_RANGE:
            raise ApiError(400, f"Invalid timeUnit {unit!r}")
        site = self._site(request)
        start, end = _local_range(request, ENERGY_MAX_RANGE[unit])
        frame = self._window(site, start, end)
        wanted = [m for m in self._meters_param(request) if m != "SelfConsumption"]  # virtual, no register
        registers = {"Production": "pv_wh", "Consumption": "load_wh", "FeedIn": "grid_export_wh",
                     "Purchased": "grid_import_wh"}
        serial = str(site.pv["serial"]) if site.pv is not None else site.ref
        meter_sn = {"Production": f"606{serial[-6:]}", "Consumption": f"607{serial[-6:]}",
                    "FeedIn": f"607{serial[-6:]}", "Purchased": f"607{serial[-6:]}"}
        model = {"Production": "SE-RGMTR-1D-240C-A", "Consumption": "SE-MTR-3Y-400V-A",
                 "FeedIn": "SE-MTR-3Y-400V-A", "Purchased": "SE-MTR-3Y-400V-A"}
        out = []
        if not frame.empty:
            # a register reading is taken at each interval end; one reading per slot, the last in it
            reads = frame[(frame["local_end"] >= start) & (frame["local_end"] < end)]
            last = reads.groupby(_slot(reads["local_end"], unit), sort=True).tail(1) if len(reads) else reads
        for mtype in wanted:
            values = []
            if not frame.empty and len(last):
                values = [{"date": t.strftime(LABEL_FMT), "value": float(round(v))}
                          for t, v in zip(last["local_end"], last[registers[mtype]])]
            out.append({"meterSerialNumber": meter_sn[mtype], "connectedSolaredgeDeviceSN": serial,
                        "model": model[mtype], "meterType": mtype, "values": values})
        return JSONResponse({"meterEnergyDetails": {"timeUnit": unit, "unit": "Wh", "meters": out}})

    def storage_data(self, request: Request) -> JSONResponse:
        site = self._site(request)
        start, end = _local_range(request, STORAGE_MAX_RANGE)
        batteries = []
        bat = site.battery
        if bat is not None:
            frame = self._window(site, start, end)
            reads = frame[(frame["local_end"] >= start) & (frame["local_end"] < end)] if not frame.empty else frame
            nameplate_wh = float(bat["capacity_kwh"]) * 1000.0
            hours = self.hub.interval_s / 3600.0
            tel = [
                {
                    "timeStamp": t.strftime(LABEL_FMT),
                    "power": round(-float(b) / hours * 1000.0, 1),
                    "batteryState": BATTERY_STATE_ENABLED,
                    "lifeTimeEnergyDischarged": float(round(dis)),
                    "lifeTimeEnergyCharged": float(round(chg)),
                    "batteryPercentageState": round(float(soc), 2),
                    "fullPackEnergyAvailable": nameplate_wh,
                    "internalTemp": 25.0,
                    "ACGridCharging": 0.0,
                }
                for t, b, dis, chg, soc in zip(reads.get("local_end", []), reads.get("battery_kwh", []),
                                               reads.get("battery_discharge_wh", []), reads.get("battery_charge_wh", []),
                                               reads.get("soc_pct", []))
            ]
            batteries.append({"nameplate": nameplate_wh, "serialNumber": str(bat["serial"]),
                              "modelNumber": str(bat["model"]), "telemetryCount": len(tel), "telemetries": tel})
        return JSONResponse({"storageData": {"batteryCount": len(batteries), "batteries": batteries}})

    def control(self, request: Request, body: bytes) -> JSONResponse:
        site = self.fleet.resolve(request.path_params["site"])
        if site is None:
            raise ApiError(403, "Invalid site ID")
        try:
            setpoint_kw, duration_s = parse_control_body(body)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        try:
            self.hub.command(site.site_id, setpoint_kw, duration_s)
        except CommandRejected as exc:
            log.warning("solaredge control rejected: site=%s setpoint_kw=%s duration_s=%s: %s",
                        site.site_id, setpoint_kw, duration_s, exc)
            raise ApiError(400, str(exc)) from None
        issued = self.hub.now()
        log.info("solaredge control: site=%s ref=%s setpoint_kw=%s duration_s=%s at %s",
                 site.site_id, site.ref, setpoint_kw, duration_s, issued.isoformat())
        return JSONResponse({"siteId": int(site.ref), "site_id": site.site_id, "setpoint_kw": setpoint_kw,
                             "duration_s": duration_s, "issued_at": issued.isoformat()})


def parse_control_body(body: bytes) -> tuple[float | None, int]:
    """{"setpoint_kw": float|null, "duration_s": int} -> values; ValueError says what is wrong."""
    try:
        doc = json.loads(body or b"null")
    except ValueError:
        raise ValueError("body is not JSON") from None
    if not isinstance(doc, dict) or "setpoint_kw" not in doc or "duration_s" not in doc:
        raise ValueError('body must be {"setpoint_kw": number|null, "duration_s": integer}')
    sp, dur = doc["setpoint_kw"], doc["duration_s"]
    if sp is not None and (isinstance(sp, bool) or not isinstance(sp, (int, float)) or not math.isfinite(sp)):
        raise ValueError("setpoint_kw must be a number or null")
    if isinstance(dur, bool) or not isinstance(dur, int):
        raise ValueError("duration_s must be an integer number of seconds")
    return (None if sp is None else float(sp)), dur


def _endpoint(fn, *, reads_body: bool = False):
    async def endpoint(request: Request):
        try:
            if reads_body:
                body = await request.body()
                return await run_in_threadpool(fn, request, body)
            return await run_in_threadpool(fn, request)
        except ApiError as exc:
            return _error(exc.status, exc.message)
    return endpoint


def build_app(hub: TwinHub, *, api_key: str, daily_limit: int = DAILY_LIMIT,
              max_concurrent: int = MAX_CONCURRENT) -> Starlette:
    """The SolarEdge Monitoring API v1 for the hub's SolarEdge sites, guarded by `api_key`."""
    fleet = _Fleet(hub)
    api = _Api(hub, fleet)
    routes = [
        Route("/sites/list", _endpoint(api.sites_list)),
        Route("/site/{site_ref}/details", _endpoint(api.details)),
        Route("/site/{site_ref}/energyDetails", _endpoint(api.energy_details)),
        Route("/site/{site_ref}/powerDetails", _endpoint(api.power_details)),
        Route("/site/{site_ref}/meters", _endpoint(api.meters)),
        Route("/site/{site_ref}/storageData", _endpoint(api.storage_data)),
        Route("/sites/{site}/control", _endpoint(api.control, reads_body=True), methods=["POST"]),
    ]
    middleware = [
        Middleware(_Gate, fleet=fleet, api_key=api_key, daily_limit=daily_limit, max_concurrent=max_concurrent),
        Middleware(FaultMiddleware, hub=hub, vendor=VENDOR, site_of=fleet.site_of),
    ]
    return Starlette(routes=routes, middleware=middleware)
