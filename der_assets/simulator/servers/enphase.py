"""Enphase served from the twin: the Enlighten v4 cloud API and the IQ Gateway local API.

Only sites whose devices have telemetry_source == "enphase" are served. The cloud keys them by
the registry's vendor_ref (the Enphase system id); the gateway app serves one gateway per site
under /sites/<site_id>/... (registry site id), like the other device-local twins.

Cloud (`build_app(hub, *, api_key, access_token)`), paths as under https://api.enphaseenergy.com:
GET /api/v4/systems, /api/v4/systems/{system_id}/telemetry/{production_micro | production_meter |
consumption_meter | battery}. Values come from TwinHub.window(..., vendor="enphase").

Cloud quirks reproduced (reference/vendor-formats.md section 2a):

- Two credentials on every call: the application's `key=` query parameter AND
  `Authorization: Bearer <OAuth access token>`. Either missing or wrong -> 401
  {"message": "Not Authorized", "details": ..., "code": 401} [A: body text not verified].
- Intervals are labelled by `end_at` (epoch seconds, UTC) = the interval END.
- production_micro is 5-min {end_at, devices_reporting, powr (avg W), enwh (Wh)};
  production_meter is 15-min {end_at, devices_reporting, wh_del} (wh_del, not enwh);
  consumption_meter is 15-min {end_at, devices_reporting, enwh}; battery is 15-min
  {end_at, charge{enwh, devices_reporting}, discharge{enwh, devices_reporting},
  soc{percent, devices_reporting}} plus "last_reported_aggregate_soc": "97%" (a string).
- Wh fields and powr are integers. Rounding carries the remainder along each series, so any
  served window sums to within 0.5 Wh of the twin.
- `start_at` (epoch, floored to the endpoint's interval) or `start_date` (YYYY-MM-DD, system
  tz); default midnight today in the system tz. `granularity` = 5mins (production_micro only)
  | 15mins | day (default) | week is the span returned. A start more than 2 years back, in the
  future or unparseable -> 422.
- Only elapsed intervals are listed; one with some of its 5-min twin intervals missing (a
  dropout or late fault) is listed with devices_reporting < total_devices (partial), one with
  none is not listed at all.
- Rate limit: plan "Kilowatt" by default, 50 requests per minute and 50,000 per month per API
  key (PLAN_LIMITS has the other plans). Beyond -> 429 {"message": "Too Many Requests",
  "details": "Usage limit exceeded for plan Kilowatt", "code": 429, "period": "minute",
  "period_start": ..., "period_end": ...}, with no Retry-After header. Minutes and months are
  counted on the hub clock, so a ManualClock replay gets the same budget per simulated minute.

Gateway (`build_gateway_app(hub, *, token)`): GET /sites/<site_id>/production.json[?details=1],
/sites/<site_id>/ivp/meters, /sites/<site_id>/ivp/meters/readings, with
`Authorization: Bearer <token>` (firmware >= 7 JWT); anything else -> 401.

Gateway quirks reproduced (section 2b; structure copied from the pyenphase fixtures,
docs_json_data, a US split-phase gateway with production, net-consumption and storage CTs):

- Snapshots of LIFETIME counters (Wh, 3 decimals) stamped with epoch `readingTime` /
  `timestamp`; the stamp is the end of the twin's last elapsed 5-min interval.
- production.json: production[type=inverters] (integer wNow/whLifetime, activeCount = number of
  micros) and production[type=eim, production]; consumption total-consumption (load) and
  net-consumption (whLifetime = import - export, may be negative; its whToday,
  whLastSevenDays and *Today fields are always 0, as on real gateways); storage holds only a
  legacy "acb" block with activeCount 0 (IQ Batteries are not reported there). ?details=1
  adds per-line "lines" (two lines, split phase).
- ivp/meters/readings: per CT eid, actEnergyDlvd/actEnergyRcvd lifetime Wh, signed
  activePower W; net-consumption Dlvd = import, Rcvd = export; storage Dlvd = discharge,
  Rcvd = charge (activePower + discharge); three channels per meter, the third all zeros.
- Reactive/apparent quantities, voltages and currents are plausible constants and ratios, not
  physics.
- Gateway data faults use vendor "enphase_gateway" (override with fault_vendor=), so a cloud
  "late" fault (6 h cellular upload) does not delay the local API.

Twin control endpoint on the CLOUD app (ours: Enphase has no public battery-control API):

    POST /sites/<site_id>/control?key=KEY   with   Authorization: Bearer TOKEN
    {"setpoint_kw": 3.5 | null, "duration_s": 900}

<site_id> is the registry site id or the Enphase system id. setpoint_kw is + discharge,
- charge, null returns to self-consumption. 200 echoes the command; outside the battery's
limits, no battery, or a bad body -> 400 {"message": "Bad Request", "details": ..., "code": 400}.
Control calls are not metered. Every command is logged (logger
"der_assets.simulator.servers.enphase").
"""

from __future__ import annotations

import hmac
import logging
import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from der_assets.simulator.hub import CommandRejected, TwinHub
from der_assets.simulator.servers.common import FaultMiddleware, site_from_path, vendor_sites
from der_assets.simulator.servers.solaredge import carry_round, parse_control_body

log = logging.getLogger(__name__)

VENDOR = "enphase"
GATEWAY_VENDOR = "enphase_gateway"
#: plan -> (requests per minute, requests per month), per developer-v4.enphase.com via api-evangelist [V-3p]
PLAN_LIMITS = {"Watt": (10, 1_000), "Kilowatt": (50, 50_000), "Megawatt": (100, 300_000), "Partner": (300, 1_500_000)}
DEFAULT_PLAN = "Kilowatt"
INTERVAL_S = {"production_micro": 300, "production_meter": 900, "consumption_meter": 900, "battery": 900}
ENERGY_FIELD = {"production_micro": "enwh", "production_meter": "wh_del", "consumption_meter": "enwh"}
CHANNEL = {"production_micro": "pv_kwh", "production_meter": "pv_kwh", "consumption_meter": "load_kwh"}
GRANULARITY = {"5mins": pd.Timedelta(minutes=5), "15mins": pd.Timedelta(minutes=15),
               "day": pd.DateOffset(days=1), "week": pd.DateOffset(days=7)}
MAX_AGE = pd.DateOffset(years=2)

# IQ Gateway CT meter eids, as on real gateways (production, net-consumption, storage)
METER_EIDS = {"production": 704643328, "net-consumption": 704643584, "storage": 704643840}
CHANNEL_EID_OFFSET = 0x40000011  # channel eid = meter eid + this + channel index
LINE_VOLTAGE_V = 120.0  # split phase: two 120 V lines
GRID_FREQ_HZ = 60.0
MICRO_STANDBY_WH = 120.0  # micro night draw seen as actEnergyRcvd on the production CT (a constant here)


class ApiError(Exception):
    def __init__(self, status: int, message: str, details: str):
        super().__init__(details)
        self.status, self.message, self.details = status, message, details


def _error(status: int, message: str, details: str, **extra) -> JSONResponse:
    return JSONResponse({"message": message, "details": details, "code": status, **extra}, status_code=status)


def _epoch(ts: pd.Timestamp) -> int:
    return int(pd.Timestamp(ts).timestamp())


def _count_in_model(model: str, pattern: str) -> int:
    m = re.search(pattern, str(model))
    return int(m.group(1)) if m else 1


@dataclass(frozen=True)
class _System:
    site_id: str
    system_id: str
    tz: str
    row: pd.Series
    n_micros: int
    n_batteries: int
    pv_kw: float
    has_battery: bool


class _Fleet:
    """Enphase systems of the hub, by system id and by registry site id."""

    def __init__(self, hub: TwinHub):
        self.hub = hub
        self.by_ref: dict[str, _System] = {}
        self.by_site: dict[str, _System] = {}
        reg = hub.registry
        for _, row in vendor_sites(hub, VENDOR).iterrows():
            devs = reg[(reg["site_id"] == row["site_id"]) & (reg["telemetry_source"] == VENDOR)]
            pv = devs[devs["device_type"] == "pv_inverter"]
            bat = devs[devs["device_type"] == "battery"]
            system = _System(
                site_id=str(row["site_id"]), system_id=str(row["vendor_ref"]), tz=str(row["timezone"]), row=row,
                n_micros=_count_in_model(pv["model"].iloc[0], r"\(x(\d+)\)") if len(pv) else 0,
                n_batteries=_count_in_model(bat["model"].iloc[0], r"\((\d+) x") if len(bat) else 0,
                pv_kw=float(pv["rated_kw"].sum()) if len(pv) else 0.0, has_battery=bool(len(bat)),
            )
            self.by_ref[system.system_id] = system
            self.by_site[system.site_id] = system

    def resolve(self, key: str) -> _System | None:
        return self.by_ref.get(key) or self.by_site.get(key)

    def site_of(self, request: Request) -> str:
        parts = request.url.path.strip("/").split("/")
        if len(parts) >= 4 and parts[:3] == ["api", "v4", "systems"]:
            s = self.by_ref.get(parts[3])
            return s.site_id if s else "*"
        if len(parts) >= 2 and parts[0] == "sites":
            s = self.resolve(parts[1])
            return s.site_id if s else "*"
        return "*"


# ---- cloud: credentials and plan limits -----------------------------------------------------


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    return auth[7:].strip() if auth[:7].lower() == "bearer " else ""


def _same(a: str, b: str) -> bool:
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


class _CloudGate:
    """Pure ASGI middleware: key + bearer (401), then the plan's per-minute and per-month limits (429)."""

    def __init__(self, app, *, hub: TwinHub, api_key: str, access_token: str, plan: str, rate_clock=None,
                 metered: bool = True):
        self.app, self.hub, self.api_key, self.access_token, self.plan = app, hub, api_key, access_token, plan
        self.metered = metered
        # Limits count real requests in real time, also while the twin replays history fast.
        self.rate_clock = rate_clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self.per_minute, self.per_month = PLAN_LIMITS[plan]
        self.counts: dict[tuple, int] = {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if not _same(request.query_params.get("key", ""), self.api_key):
            return await _error(401, "Not Authorized", "Invalid or missing API key")(scope, receive, send)
        if not _same(_bearer(request), self.access_token):
            return await _error(401, "Not Authorized", "Invalid or expired access token")(scope, receive, send)
        if self.metered and not request.url.path.endswith("/control"):  # the twin's control path is not metered
            now = self.rate_clock()
            minute = now.floor("min")
            month = pd.Timestamp(year=now.year, month=now.month, day=1, tz="UTC")
            for period, start, end, limit in (("minute", minute, minute + pd.Timedelta(minutes=1), self.per_minute),
                                              ("month", month, month + pd.DateOffset(months=1), self.per_month)):
                key = (period, start)
                self.counts[key] = self.counts.get(key, 0) + 1
                if self.counts[key] > limit:
                    log.info("enphase 429: %d/%s limit of plan %s reached", limit, period, self.plan)
                    return await _error(429, "Too Many Requests", f"Usage limit exceeded for plan {self.plan}",
                                        period=period, period_start=_epoch(start), period_end=_epoch(end))(
                        scope, receive, send)
        await self.app(scope, receive, send)


# ---- cloud: handlers ------------------------------------------------------------------------


class _Cloud:
    def __init__(self, hub: TwinHub, fleet: _Fleet):
        self.hub, self.fleet = hub, fleet

    def _system(self, request: Request) -> _System:
        system = self.fleet.by_ref.get(request.path_params["system_id"])
        if system is None:
            raise ApiError(404, "Not Found", "System not found")
        return system

    def _local_midnight(self, system: _System, day: pd.Timestamp | None = None) -> pd.Timestamp:
        local = (day if day is not None else self.hub.now().tz_convert(system.tz)).tz_localize(None).normalize()
        return local.tz_localize(system.tz, ambiguous=False, nonexistent="shift_forward").tz_convert("UTC")

    def _period(self, request: Request, system: _System, interval_s: int) -> tuple[pd.Timestamp, pd.Timestamp, str]:
        gran = request.query_params.get("granularity", "day")
        if gran not in GRANULARITY or (gran == "5mins" and interval_s != 300):
            raise ApiError(422, "Unprocessable Entity", f"granularity {gran!r} is not supported here")
        now = self.hub.now()
        try:
            if "start_at" in request.query_params:
                start = pd.Timestamp(int(request.query_params["start_at"]), unit="s", tz="UTC").floor(f"{interval_s}s")
            elif "start_date" in request.query_params:
                day = pd.Timestamp(request.query_params["start_date"])
                start = self._local_midnight(system, day)
            else:
                start = self._local_midnight(system)
        except (ValueError, TypeError):
            raise ApiError(422, "Unprocessable Entity", "start_at / start_date could not be parsed") from None
        if start > now or start < now - MAX_AGE:
            raise ApiError(422, "Unprocessable Entity", "Requested date range is invalid for this system")
        span = GRANULARITY[gran]
        if isinstance(span, pd.DateOffset):  # days in the system's calendar (23 or 25 h across DST)
            end = (start.tz_convert(system.tz) + span).tz_convert("UTC")
        else:
            end = start + span
        return start, end, gran

    def _buckets(self, system: _System, start, end, interval_s: int) -> pd.DataFrame:
        """Twin intervals summed to the endpoint's interval; only buckets that have ended by now."""
        frame = self.hub.window(system.site_id, start, end, vendor=VENDOR)
        if frame.empty:
            return pd.DataFrame(columns=["end_at", "present", "expected", "pv_kwh", "load_kwh", "charge_kwh",
                                         "discharge_kwh", "soc_pct"])
        bucket = frame["interval_start"].dt.floor(f"{interval_s}s")
        b = frame["battery_kwh"]
        g = frame.assign(charge_kwh=(-b).clip(lower=0.0), discharge_kwh=b.clip(lower=0.0), bucket=bucket).groupby("bucket")
        out = g[["pv_kwh", "load_kwh", "charge_kwh", "discharge_kwh"]].sum()
        out["soc_pct"] = g["soc_pct"].last()
        out["present"] = g.size()
        out["expected"] = interval_s // self.hub.interval_s
        out["end_at"] = out.index + pd.Timedelta(seconds=interval_s)
        out = out[out["end_at"] <= self.hub.now()]
        return out.reset_index(drop=True)

    def systems(self, request: Request) -> JSONResponse:
        size = max(1, min(int(request.query_params.get("size", 10)), 100))
        page = max(1, int(request.query_params.get("page", 1)))
        systems = list(self.fleet.by_ref.values())
        chosen = systems[(page - 1) * size : page * size]
        return JSONResponse({"total": len(systems), "current_page": page, "size": size, "count": len(chosen),
                             "items": "systems", "systems": [self._system_object(s) for s in chosen]})

    def _system_object(self, s: _System) -> dict:
        latest = self.hub.latest(s.site_id, vendor=VENDOR)
        today = self.hub.window(s.site_id, self._local_midnight(s), self.hub.now(), vendor=VENDOR)
        last = _epoch(latest["timestamp"])
        commissioned = pd.Timestamp(s.row["commissioned_on"]) if pd.notna(s.row["commissioned_on"]) else None
        return {
            "system_id": int(s.system_id),
            "name": f"{s.row['subscriber_name']} {s.site_id}",
            "public_name": "Residential System",
            "timezone": s.tz,
            "address": {"state": "IL" if s.tz == "America/Chicago" else "PA", "country": "US",
                        "postal_code": str(s.row["postal_code"])},
            "connection_type": "ethernet",
            "energy_lifetime": int(round(latest["pv_wh"])),
            "energy_today": int(round(float(today["pv_kwh"].sum()) * 1000.0)),
            "system_size": int(round(s.pv_kw * 1000.0)),
            "status": "normal",
            "last_report_at": last,
            "last_energy_at": last,
            "operational_at": _epoch(commissioned.tz_localize(s.tz)) if commissioned is not None else None,
            "attachment_type": None,
            "interconnect_date": commissioned.strftime("%Y-%m-%d") if commissioned is not None else None,
            "reference": s.site_id,
            "other_references": [],
        }

    def telemetry(self, request: Request) -> JSONResponse:
        system = self._system(request)
        kind = request.path_params["kind"]
        if kind not in INTERVAL_S:
            raise ApiError(404, "Not Found", f"Unknown telemetry endpoint {kind!r}")
        interval_s = INTERVAL_S[kind]
        start, end, gran = self._period(request, system, interval_s)
        b = self._buckets(system, start, end, interval_s)
        ends = [_epoch(t) for t in b["end_at"]]
        complete = (b["present"] >= b["expected"]).to_numpy()
        if kind == "battery":
            total = system.n_batteries
            reporting = np.where(complete, total, 0).astype(int)
            charge = carry_round(b["charge_kwh"].to_numpy(dtype=float) * 1000.0, 0)
            discharge = carry_round(b["discharge_kwh"].to_numpy(dtype=float) * 1000.0, 0)
            intervals = [
                {"end_at": e, "charge": {"enwh": int(c), "devices_reporting": int(r)},
                 "discharge": {"enwh": int(d), "devices_reporting": int(r)},
                 "soc": {"percent": int(round(s)), "devices_reporting": int(r)}}
                for e, c, d, s, r in zip(ends, charge, discharge, b["soc_pct"], reporting)
            ]
            latest_soc = self.hub.latest(system.site_id, vendor=VENDOR)["soc_pct"]
            body = self._envelope(system, gran, total, start, ends, intervals)
            body["last_reported_aggregate_soc"] = f"{int(round(latest_soc))}%"
            return JSONResponse(body)
        total = system.n_micros if kind == "production_micro" else 1
        reporting = np.where(complete, total, (total * b["present"] // b["expected"]).astype(int) if len(b) else 0)
        wh = carry_round(b[CHANNEL[kind]].to_numpy(dtype=float) * 1000.0, 0)
        field = ENERGY_FIELD[kind]
        intervals = []
        for e, w, r in zip(ends, wh, reporting):
            item = {"end_at": e, "devices_reporting": int(r)}
            if kind == "production_micro":
                item["powr"] = int(round(w * 3600.0 / interval_s))
            item[field] = int(w)
            intervals.append(item)
        body = self._envelope(system, gran, total, start, ends, intervals)
        last = self.hub.latest(system.site_id, vendor=VENDOR)["timestamp"]
        body["meta"] = {"status": "normal", "last_report_at": _epoch(last), "last_energy_at": _epoch(last),
                        "operational_at": body["start_at"]}
        return JSONResponse(body)

    @staticmethod
    def _envelope(system: _System, gran: str, total: int, start, ends: list[int], intervals: list[dict]) -> dict:
        return {"system_id": int(system.system_id), "granularity": gran, "total_devices": int(total),
                "start_at": _epoch(start), "end_at": ends[-1] if ends else _epoch(start),
                "items": "intervals", "intervals": intervals}

    def control(self, request: Request, body: bytes) -> JSONResponse:
        system = self.fleet.resolve(request.path_params["site"])
        if system is None:
            raise ApiError(404, "Not Found", "System not found")
        try:
            setpoint_kw, duration_s = parse_control_body(body)
        except ValueError as exc:
            raise ApiError(400, "Bad Request", str(exc)) from None
        try:
            self.hub.command(system.site_id, setpoint_kw, duration_s)
        except CommandRejected as exc:
            log.warning("enphase control rejected: site=%s setpoint_kw=%s duration_s=%s: %s",
                        system.site_id, setpoint_kw, duration_s, exc)
            raise ApiError(400, "Bad Request", str(exc)) from None
        issued = self.hub.now()
        log.info("enphase control: site=%s system=%s setpoint_kw=%s duration_s=%s at %s",
                 system.site_id, system.system_id, setpoint_kw, duration_s, issued.isoformat())
        return JSONResponse({"system_id": int(system.system_id), "site_id": system.site_id,
                             "setpoint_kw": setpoint_kw, "duration_s": duration_s, "issued_at": issued.isoformat()})


def _endpoint(fn, *, reads_body: bool = False):
    async def endpoint(request: Request):
        try:
            if reads_body:
                return await run_in_threadpool(fn, request, await request.body())
            return await run_in_threadpool(fn, request)
        except ApiError as exc:
            return _error(exc.status, exc.message, exc.details)
    return endpoint


def build_app(hub: TwinHub, *, api_key: str, access_token: str, plan: str = DEFAULT_PLAN,
              rate_clock=None, metered: bool = True) -> Starlette:
    """The Enlighten Systems API v4 for the hub's Enphase systems (needs both key and bearer token).

    rate_clock: what the plan's per-minute and per-month windows are counted on; the wall clock
    by default (a vendor's quota is real time even when the twin replays), `hub.now` in tests.
    metered=False lifts the plan limits: a twin-only switch for replaying weeks of history fast.
    """
    if plan not in PLAN_LIMITS:
        raise ValueError(f"unknown Enphase plan {plan!r}; use one of {', '.join(PLAN_LIMITS)}")
    fleet = _Fleet(hub)
    cloud = _Cloud(hub, fleet)
    routes = [
        Route("/api/v4/systems", _endpoint(cloud.systems)),
        Route("/api/v4/systems/{system_id}/telemetry/{kind}", _endpoint(cloud.telemetry)),
        Route("/sites/{site}/control", _endpoint(cloud.control, reads_body=True), methods=["POST"]),
    ]
    middleware = [
        Middleware(_CloudGate, hub=hub, api_key=api_key, access_token=access_token, plan=plan, rate_clock=rate_clock,
                   metered=metered),
        Middleware(FaultMiddleware, hub=hub, vendor=VENDOR, site_of=fleet.site_of),
    ]
    return Starlette(routes=routes, middleware=middleware)


# ---- IQ Gateway (local) ---------------------------------------------------------------------


def _r3(x: float) -> float:
    return round(float(x), 3)


class _Gateway:
    def __init__(self, hub: TwinHub, fleet: _Fleet, fault_vendor: str):
        self.hub, self.fleet, self.vendor = hub, fleet, fault_vendor

    def _system(self, request: Request) -> _System:
        system = self.fleet.by_site.get(request.path_params["site_id"])
        if system is None:
            raise ApiError(404, "Not Found", "no Enphase gateway at this site")
        return system

    def _since(self, system: _System, latest: dict) -> dict[str, float]:
        """Counters at local midnight and 7 days ago (or the twin's start, if later)."""
        now = pd.Timestamp(latest["timestamp"])
        midnight = now.tz_convert(system.tz).tz_localize(None).normalize()
        midnight = midnight.tz_localize(system.tz, ambiguous=False, nonexistent="shift_forward").tz_convert("UTC")
        week = now - pd.Timedelta(days=7)
        frame = self.hub.window(system.site_id, min(week, midnight), now, vendor=self.vendor)
        out = {}
        for label, at in (("today", midnight), ("week", week)):
            f = frame[frame["interval_start"] >= at]
            for counter, channel in (("pv_wh", "pv_kwh"), ("load_wh", "load_kwh")):
                start = (float(f[counter].iloc[0]) - float(f[channel].iloc[0]) * 1000.0) if len(f) else latest[counter]
                out[f"{counter}_{label}"] = latest[counter] - start
        return out

    @staticmethod
    def _eim(measurement: str, t: int, w: float, wh: float, today_wh: float, week_wh: float, pf: float,
             zero_today: bool, lines: bool) -> dict:
        var = w * math.tan(math.acos(min(abs(pf), 1.0)))
        va = math.hypot(w, var)
        volts = 2 * LINE_VOLTAGE_V

        def fields(share: float, v: float) -> dict:
            return {
                "wNow": _r3(w * share), "whLifetime": _r3(wh * share),
                "varhLeadLifetime": _r3(abs(wh) * 0.01 * share), "varhLagLifetime": _r3(abs(wh) * 0.2 * share),
                "vahLifetime": _r3(abs(wh) * 1.05 * share),
                "rmsCurrent": _r3(w * share / v), "rmsVoltage": _r3(v), "reactPwr": _r3(var * share),
                "apprntPwr": _r3(va * share), "pwrFactor": round(math.copysign(abs(pf), w) if w else 0.0, 2),
                "whToday": 0 if zero_today else _r3(today_wh * share),
                "whLastSevenDays": 0 if zero_today else _r3(week_wh * share),
                "vahToday": 0 if zero_today else _r3(abs(today_wh) * 1.05 * share),
                "varhLeadToday": 0 if zero_today else _r3(abs(today_wh) * 0.01 * share),
                "varhLagToday": 0 if zero_today else _r3(abs(today_wh) * 0.2 * share),
            }

        block = {"type": "eim", "activeCount": 1, "measurementType": measurement, "readingTime": t,
                 **fields(1.0, volts)}
        if lines:
            block["lines"] = [fields(0.5, LINE_VOLTAGE_V), fields(0.5, LINE_VOLTAGE_V)]
        return block

    def production(self, request: Request) -> JSONResponse:
        system = self._system(request)
        latest = self.hub.latest(system.site_id, vendor=self.vendor)
        since = self._since(system, latest)
        t = _epoch(latest["timestamp"])
        details = request.query_params.get("details") == "1"
        pv_w, load_w, grid_w = (latest[k] * 1000.0 for k in ("pv_kw", "load_kw", "grid_kw"))
        net_wh = latest["grid_import_wh"] - latest["grid_export_wh"]
        body = {
            "production": [
                {"type": "inverters", "activeCount": system.n_micros, "readingTime": t,
                 "wNow": int(round(pv_w)), "whLifetime": int(round(latest["pv_wh"]))},
                self._eim("production", t, pv_w, latest["pv_wh"], since["pv_wh_today"], since["pv_wh_week"],
                          1.0, False, details),
            ],
            "consumption": [
                self._eim("total-consumption", t, load_w, latest["load_wh"], since["load_wh_today"],
                          since["load_wh_week"], 0.95, False, details),
                self._eim("net-consumption", t, grid_w, net_wh, 0.0, 0.0, 0.95, True, details),
            ],
            "storage": [{"type": "acb", "activeCount": 0, "readingTime": 0, "wNow": 0, "whNow": 0, "state": "idle"}],
        }
        return JSONResponse(body)

    def _meters(self, system: _System) -> list[str]:
        return ["production", "net-consumption"] + (["storage"] if system.has_battery else [])

    def meters(self, request: Request) -> JSONResponse:
        system = self._system(request)
        return JSONResponse([
            {"eid": METER_EIDS[m], "state": "enabled", "measurementType": m, "phaseMode": "split", "phaseCount": 2,
             "meteringStatus": "normal", "statusFlags": []}
            for m in self._meters(system)
        ])

    def readings(self, request: Request) -> JSONResponse:
        system = self._system(request)
        latest = self.hub.latest(system.site_id, vendor=self.vendor)
        t = _epoch(latest["timestamp"])
        values = {
            "production": (latest["pv_wh"], MICRO_STANDBY_WH, latest["pv_kw"] * 1000.0),
            "net-consumption": (latest["grid_import_wh"], latest["grid_export_wh"], latest["grid_kw"] * 1000.0),
            "storage": (latest["battery_discharge_wh"], latest["battery_charge_wh"], latest["battery_kw"] * 1000.0),
        }

        def reading(eid: int, dlvd: float, rcvd: float, w: float, share: float, volts: float) -> dict:
            on = share > 0
            pf = 0.99 if on and w else 0.0
            va = abs(w * share) / pf if pf else 0.0
            return {
                "eid": eid, "timestamp": t,
                "actEnergyDlvd": _r3(dlvd * share), "actEnergyRcvd": _r3(rcvd * share),
                "apparentEnergy": _r3((dlvd + rcvd) * 1.02 * share),
                "reactEnergyLagg": _r3(dlvd * 0.05 * share), "reactEnergyLead": _r3(rcvd * 0.01 * share),
                "instantaneousDemand": _r3(w * share), "activePower": _r3(w * share),
                "apparentPower": _r3(va), "reactivePower": _r3(va * 0.14 if on else 0.0),
                "pwrFactor": round(math.copysign(pf, w) if pf else 0.0, 3),
                "voltage": _r3(volts if on else 0.0), "current": _r3(abs(w * share) / volts if on else 0.0),
                "freq": GRID_FREQ_HZ if on else 0.0,
            }

        out = []
        for m in self._meters(system):
            eid = METER_EIDS[m]
            dlvd, rcvd, w = values[m]
            block = reading(eid, dlvd, rcvd, w, 1.0, 2 * LINE_VOLTAGE_V)
            block["channels"] = [reading(eid + CHANNEL_EID_OFFSET + i, dlvd, rcvd, w, share, LINE_VOLTAGE_V)
                                 for i, share in enumerate((0.5, 0.5, 0.0))]
            out.append(block)
        return JSONResponse(out)


class _GatewayAuth:
    """Bearer token (the gateway JWT) on every request; 401 otherwise, like firmware >= 7."""

    def __init__(self, app, *, token: str):
        self.app, self.token = app, token

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and not _same(_bearer(Request(scope)), self.token):
            return await Response("", status_code=401, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        await self.app(scope, receive, send)


def build_gateway_app(hub: TwinHub, *, token: str, fault_vendor: str = GATEWAY_VENDOR) -> Starlette:
    """One IQ Gateway local API per Enphase site, under /sites/<site_id>/..., guarded by a Bearer token."""
    gw = _Gateway(hub, _Fleet(hub), fault_vendor)
    routes = [
        Route("/sites/{site_id}/production.json", _endpoint(gw.production)),
        Route("/sites/{site_id}/ivp/meters", _endpoint(gw.meters)),
        Route("/sites/{site_id}/ivp/meters/readings", _endpoint(gw.readings)),
    ]
    middleware = [
        Middleware(_GatewayAuth, token=token),
        Middleware(FaultMiddleware, hub=hub, vendor=fault_vendor, site_of=site_from_path),
    ]
    return Starlette(routes=routes, middleware=middleware)
