"""SolarEdge Monitoring API v1 client (cloud). Every SolarEdge request quirk lives here.

- Auth is the `api_key` QUERY parameter; a wrong key or a site the key cannot see is 403
  (SolarEdge does not use 401). Not retried.
- Limits (vendor doc, transcribed): 300 requests per site id per day, 3 concurrent calls per
  source IP; beyond either, 429. The daily budget is enforced here before calling (a 301st
  call is refused without touching the API), the concurrency with a semaphore.
  Budget: a day partition costs one call per endpoint per 1-month chunk, so pulling
  energyDetails + storageData every 15 min is 192 calls/site/day.
- Times in requests are site-LOCAL wall clock "YYYY-MM-DD hh:mm:ss" (startTime inclusive,
  endTime exclusive); the site tz comes from the registry (or /site/{id}/details).
- Maximum range per call (longer is 403): energyDetails/powerDetails/meters 1 month at
  QUARTER_OF_AN_HOUR, storageData 1 week [A, recalled from the PDF]. Longer windows are split.
- /meters returns one LIFETIME register reading per slot (the last in it), so a window's
  first slot would have no opening reading: that call starts one slot (15 min) early.
- /storageData telemetry carries lifetime charged/discharged Wh and SoC at irregular ~5-min
  stamps (reference/vendor-formats.md section 1, [V-fixture]). A window's last interval is
  closed by the first reading AFTER the window (its SoC is the SoC at the interval's end) and
  its first interval by the last reading before it, and endTime is exclusive: that call asks
  one slot (15 min) before and after the window, so the day's 23:55 battery_kwh and soc_pct
  are there. The extra readings overlap the neighbouring windows; the day keeps one value per
  interval (quality.complete_grid).
- Data keeps settling for a while (meters dump starved intervals late), so the cursor
  re-reads the last hour [A: the settling time is not documented].
- The SolarEdge site id is the registry's vendor_ref; payloads carry the registry site_id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pandas as pd

from .http import Concurrency, DailyBudget, RetryPolicy, VendorHttp
from .payloads import Clock, Cursor, PullPlan, RawPayload, SiteRef, as_utc, next_window, utc_now
from .settings import VendorSettings, tuning, vendor_settings

SOURCE = "solaredge"
DEFAULT_BASE_URL = "https://monitoringapi.solaredge.com"
LABEL_FMT = "%Y-%m-%d %H:%M:%S"
MAX_CONCURRENT = 3
MAX_RANGE = {
    "energyDetails": pd.DateOffset(months=1),
    "powerDetails": pd.DateOffset(months=1),
    "meters": pd.DateOffset(months=1),
    "storageData": pd.DateOffset(weeks=1),
}
TIME_UNIT = "QUARTER_OF_AN_HOUR"
INTERVAL_S = 900
DEFAULT_ENDPOINTS = ("energyDetails", "storageData")
#: asked this much before the window (an opening register reading); counts against the range
LEAD = {"meters": pd.Timedelta(seconds=INTERVAL_S), "storageData": pd.Timedelta(seconds=INTERVAL_S)}
#: asked this much after the window (the reading that closes its last interval); counts against the range
TRAIL = {"storageData": pd.Timedelta(seconds=INTERVAL_S)}


def client(settings: VendorSettings | None = None, *, clock: Clock = utc_now, daily_limit: int | None = None,
           retry: RetryPolicy = RetryPolicy(), **kw) -> VendorHttp:
    """A VendorHttp with SolarEdge's auth and limits (use as `async with`)."""
    s = settings or vendor_settings(SOURCE)
    limit = daily_limit if daily_limit is not None else int(tuning("DER_SOLAREDGE_DAILY_LIMIT"))
    return VendorHttp(SOURCE, s.base_url, params={"api_key": s.need("api_key")},
                      gates=[(Concurrency(MAX_CONCURRENT), "global"), (DailyBudget(limit, clock), "site")],
                      clock=clock, retry=retry, **kw)


def local_label(ts, tz: str) -> str:
    """A UTC instant as SolarEdge's site-local wall-clock string."""
    return pd.Timestamp(ts).tz_convert(tz).strftime(LABEL_FMT)


def request_windows(endpoint: str, start, end, tz: str) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end) (UTC) in pieces whose LOCAL span, lead and trail slots included, fits the endpoint's maximum."""
    lo = pd.Timestamp(start).tz_convert(tz).tz_localize(None)
    hi = pd.Timestamp(end).tz_convert(tz).tz_localize(None)
    lead, trail = LEAD.get(endpoint, pd.Timedelta(0)), TRAIL.get(endpoint, pd.Timedelta(0))
    out = []
    while lo < hi:
        b = min(lo - lead + MAX_RANGE[endpoint] - trail, hi)
        out.append((_to_utc(lo, tz), _to_utc(b, tz)))
        lo = b
    return out


def _to_utc(naive: pd.Timestamp, tz: str) -> pd.Timestamp:
    return naive.tz_localize(tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")


async def pull(http: VendorHttp, site: SiteRef, start, end, *,
               endpoints: Sequence[str] = DEFAULT_ENDPOINTS) -> list[RawPayload]:
    """Every endpoint for [start, end) (UTC), split at the vendor's maximum range; one payload per call."""
    ref = site.ref()
    calls = []
    for ep in endpoints:
        if ep not in MAX_RANGE:
            raise ValueError(f"unknown SolarEdge endpoint {ep!r}; known: {sorted(MAX_RANGE)}")
        for a, b in request_windows(ep, start, end, site.tz):
            ask_from, ask_to = a - LEAD.get(ep, pd.Timedelta(0)), b + TRAIL.get(ep, pd.Timedelta(0))
            params = {"startTime": local_label(ask_from, site.tz), "endTime": local_label(ask_to, site.tz)}
            if ep in ("energyDetails", "meters"):
                params["timeUnit"] = TIME_UNIT
            calls.append((ep, a, b, params))

    async def one(ep, a, b, params) -> RawPayload:
        got = await http.get(f"/site/{ref}/{ep}", endpoint=ep, site_id=site.site_id, window=(a, b), params=params)
        return RawPayload(got.content, SOURCE, ep, site.site_id, as_utc(a), as_utc(b), got.received_at, tz=site.tz)

    return list(await asyncio.gather(*(one(*c) for c in calls)))


async def site_details(http: VendorHttp, site: SiteRef) -> bytes:
    """/site/{id}/details (location.timeZone, peakPower); costs one request of the daily budget."""
    got = await http.get(f"/site/{site.ref()}/details", endpoint="details", site_id=site.site_id)
    return got.content


def next_cursor(last: Cursor | None, now) -> PullPlan:
    """Pure: the next window, whole quarter-hours only, re-reading the last hour while it settles."""
    return next_window(last, now, interval_s=INTERVAL_S, lookback_s=3600)
