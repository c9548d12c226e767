"""Enphase clients: Enlighten Systems API v4 (cloud) and the IQ Gateway local API.

Every Enphase request quirk lives here.

Cloud v4 (`https://api.enphaseenergy.com/api/v4`):
- Two credentials on every call: the application's `key=` query parameter and
  `Authorization: Bearer <OAuth2 access token>`; either wrong -> 401 (not retried).
- Rate limit per application plan, per minute (Watt 10, Kilowatt 50, Megawatt 100,
  Partner 300) and per month; configurable (DER_ENPHASE_PLAN, DER_ENPHASE_REQUESTS_PER_MINUTE).
  A 429 carries NO Retry-After, but its body names `period_end` (epoch s): that is the wait.
- A request names `start_at` (epoch) and a `granularity` span (15mins | day | week; 5mins for
  production_micro only); "day"/"week" are calendar days in the SYSTEM's zone, so a spring-
  forward "day" is 23 h. The longest span, one week, is the maximum range per call; longer
  windows are split into weeks, and a shorter tail uses the smallest span that covers it.
- `start_at` older than 2 years is refused (422); checked here first.
- Data arrives late: devices_reporting < total_devices until late micros report (up to ~3 h),
  and a cellular gateway uploads every 6 h. The cursor re-reads the last 6 hours.

IQ Gateway (local, one per site):
- Firmware >= 7: `Authorization: Bearer <JWT>`; 401 otherwise.
- production.json and ivp/meters/readings are SNAPSHOTS of lifetime counters: the parser
  needs several polls in one payload. ivp/meters/readings rows are keyed by eid only; the
  /ivp/meters body (which eid is production / net / storage) is fetched once and put at the
  head of the poll log, because the parser refuses readings without it.
- Known daily outage shortly after 23:00 local gateway time: a failed poll is retried by
  the policy, then skipped (the log simply has a gap; the parser reports missing intervals).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import httpx
import pandas as pd

from .http import ConnectorError, PerPeriod, RetryPolicy, Sleep, VendorHttp
from .payloads import (Clock, Cursor, PollLog, PullPlan, RawPayload, SiteRef, as_utc, next_window, utc_now)
from .settings import VendorSettings, tuning, vendor_settings

SOURCE = "enphase"
DEFAULT_BASE_URL = "https://api.enphaseenergy.com"
PLAN_PER_MINUTE = {"Watt": 10, "Kilowatt": 50, "Megawatt": 100, "Partner": 300}
INTERVAL_S = {"production_micro": 300, "production_meter": 900, "consumption_meter": 900, "battery": 900}
DEFAULT_ENDPOINTS = ("production_micro", "consumption_meter", "battery")
MAX_AGE = pd.DateOffset(years=2)
LATE_S = 6 * 3600


def requests_per_minute(plan: str | None = None) -> int:
    """The per-minute limit: DER_ENPHASE_REQUESTS_PER_MINUTE, else the plan's (DER_ENPHASE_PLAN)."""
    override = tuning("DER_ENPHASE_REQUESTS_PER_MINUTE")
    if override:
        return int(override)
    plan = plan or tuning("DER_ENPHASE_PLAN")
    if plan not in PLAN_PER_MINUTE:
        raise ValueError(f"unknown Enphase plan {plan!r}; use one of {', '.join(PLAN_PER_MINUTE)}")
    return PLAN_PER_MINUTE[plan]


def period_end_hint(response: httpx.Response, now: dt.datetime) -> float | None:
    """Enphase's 429 has no Retry-After; its JSON body says when the counting period ends."""
    try:
        end = float(response.json()["period_end"])
    except (ValueError, KeyError, TypeError):
        return None
    return max(1.0, end - now.timestamp())


def client(settings: VendorSettings | None = None, *, per_minute: int | None = None, clock: Clock = utc_now,
           retry: RetryPolicy = RetryPolicy(), **kw) -> VendorHttp:
    """A VendorHttp for the v4 cloud API: key + Bearer on every call, the plan's per-minute limit."""
    s = settings or vendor_settings(SOURCE)
    limit = per_minute if per_minute is not None else requests_per_minute()
    return VendorHttp(SOURCE, s.base_url, params={"key": s.need("api_key")},
                      headers={"Authorization": f"Bearer {s.need('access_token')}"},
                      gates=[(PerPeriod(limit, 60.0), "global")], clock=clock, retry=retry,
                      hint=period_end_hint, **kw)


def _span(gran: str, start: pd.Timestamp, tz: str) -> pd.Timestamp:
    if gran == "5mins":
        return start + pd.Timedelta(minutes=5)
    if gran == "15mins":
        return start + pd.Timedelta(minutes=15)
    days = 1 if gran == "day" else 7
    return (start.tz_convert(tz) + pd.DateOffset(days=days)).tz_convert("UTC")


def request_windows(endpoint: str, start, end, tz: str) -> list[tuple[pd.Timestamp, pd.Timestamp, str]]:
    """(start_at, end of the part of [start, end) it answers, granularity) per call; fewest calls."""
    step = pd.Timedelta(seconds=INTERVAL_S[endpoint])
    lo = pd.Timestamp(start).tz_convert("UTC").floor(step)
    hi = pd.Timestamp(end).tz_convert("UTC")
    small = ("5mins", "15mins") if endpoint == "production_micro" else ("15mins",)
    out = []
    while lo < hi:
        for gran in (*small, "day", "week"):
            if _span(gran, lo, tz) >= hi:
                break
        stop = _span(gran, lo, tz)
        out.append((lo, min(stop, hi), gran))
        lo = stop
    return out


async def pull(http: VendorHttp, site: SiteRef, start, end, *,
               endpoints: Sequence[str] = DEFAULT_ENDPOINTS) -> list[RawPayload]:
    """v4 telemetry for [start, end) (UTC), one payload per call, split at one week."""
    ref = site.ref()
    now = pd.Timestamp(as_utc(http.clock()))
    calls = []
    for ep in endpoints:
        if ep not in INTERVAL_S:
            raise ValueError(f"unknown Enphase v4 endpoint {ep!r}; known: {sorted(INTERVAL_S)}")
        for a, b, gran in request_windows(ep, start, end, site.tz):
            if a < now - MAX_AGE:
                raise ConnectorError(f"start_at {a.isoformat()} is more than 2 years back (the API refuses it)",
                                     source=SOURCE, endpoint=ep, site_id=site.site_id, window=(a, b))
            calls.append((ep, a, b, {"start_at": str(int(a.timestamp())), "granularity": gran}))

    async def one(ep, a, b, params) -> RawPayload:
        got = await http.get(f"/api/v4/systems/{ref}/telemetry/{ep}", endpoint=ep, site_id=site.site_id,
                             window=(a, b), params=params)
        return RawPayload(got.content, SOURCE, ep, site.site_id, as_utc(a), as_utc(b), got.received_at, tz=site.tz)

    return list(await asyncio.gather(*(one(*c) for c in calls)))


def next_cursor(last: Cursor | None, now) -> PullPlan:
    """Pure: whole quarter-hours up to now, re-reading the last 6 h (late micros, cellular uploads)."""
    return next_window(last, now, interval_s=900, lookback_s=LATE_S)


# ---- IQ Gateway (local) ------------------------------------------------------------------------

GATEWAY_SOURCE = "enphase"  # same canonical source and parser module as the cloud
SNAPSHOT_ENDPOINTS = {"production.json": "/production.json", "ivp_meters_readings": "/ivp/meters/readings"}


def gateway_client(site: SiteRef, settings: VendorSettings | None = None, *, clock: Clock = utc_now,
                   retry: RetryPolicy = RetryPolicy(attempts=2), **kw) -> VendorHttp:
    """A VendorHttp for one site's IQ Gateway (Bearer JWT)."""
    s = settings or vendor_settings("enphase_gateway")
    return VendorHttp(SOURCE, s.url_for(site.site_id), headers={"Authorization": f"Bearer {s.need('token')}"},
                      clock=clock, retry=retry, **kw)


async def gateway_meters(http: VendorHttp, site: SiteRef) -> bytes:
    """/ivp/meters: which CT eid measures production, net-consumption, storage."""
    got = await http.get("/ivp/meters", endpoint="ivp_meters", site_id=site.site_id)
    return got.content


async def pull_gateway(http: VendorHttp, site: SiteRef, *, polls: int, every_s: float,
                       sleep: Sleep = asyncio.sleep,
                       endpoints: Sequence[str] = ("production.json", "ivp_meters_readings")) -> list[RawPayload]:
    """Poll the gateway `polls` times, `every_s` apart; one poll-log payload per endpoint.

    A poll that still fails after retries is skipped (a gap, which the parser reports as
    missing intervals); if every poll of an endpoint fails, the last error is raised.
    """
    logs = {ep: PollLog(SOURCE, ep, site.site_id, tz=site.tz) for ep in endpoints}
    if "ivp_meters_readings" in logs:
        # a malformed /ivp/meters body makes the whole log fail to parse: quarantined, not guessed
        logs["ivp_meters_readings"].header.append((await gateway_meters(http, site)).strip())
    errors: dict[str, ConnectorError] = {}
    for i in range(polls):
        if i:
            await sleep(every_s)
        for ep, log in logs.items():
            try:
                got = await http.get(SNAPSHOT_ENDPOINTS[ep], endpoint=ep, site_id=site.site_id)
            except ConnectorError as exc:
                if not exc.retryable:
                    raise
                errors[ep] = exc
                continue
            log.add(got.received_at, got.content)
    out = []
    received = as_utc(http.clock())
    for ep, log in logs.items():
        if not log.polls and not log.rejected and ep in errors:
            raise errors[ep]
        out.extend(log.payloads(received))
    return out
