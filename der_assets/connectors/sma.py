"""SMA ennexOS / Sunny Portal monitoring API client (cloud). Every SMA request quirk lives here.

- OAuth2 Bearer access token (obtained from auth.smaapis.de outside this module; the
  token flow itself is not implemented here). Wrong or expired -> 401, not retried.
- Interval energy comes from /v1/devices/{deviceId}/measurements/sets/EnergyAndPowerPv/Day
  ?Date=YYYY-MM-DD&ReturnEnergyValues=true. Without ReturnEnergyValues=true the set holds
  power only and the parser refuses it, so the flag is always sent.
- The maximum range is ONE plant-LOCAL calendar day per call (period Day, Date = local
  date); a UTC window is split into the local days that overlap it, and each payload's
  window is that local day clipped to the request.
- The deviceId is not the plantId: it is listed by /v1/plants/{plantId}/devices/lean (the
  inverter is the device with a generatorPower). SiteRef.device_ref skips that lookup.
- Rate limits are not documented [A]; calls are kept to 2 in flight as a courtesy.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pandas as pd

from .http import Concurrency, ConnectorError, RetryPolicy, VendorHttp
from .payloads import Clock, Cursor, PullPlan, RawPayload, SiteRef, as_utc, local_days, next_window, utc_now
from .settings import VendorSettings, vendor_settings

SOURCE = "sma"
DEFAULT_BASE_URL = "https://monitoring.smaapis.de"
SET_TYPE = "EnergyAndPowerPv"
ENDPOINT = "measurements"  # the parser's name for a measurement-set answer
MAX_IN_FLIGHT = 2


def client(settings: VendorSettings | None = None, *, clock: Clock = utc_now, retry: RetryPolicy = RetryPolicy(),
           **kw) -> VendorHttp:
    s = settings or vendor_settings(SOURCE)
    return VendorHttp(SOURCE, s.base_url, headers={"Authorization": f"Bearer {s.need('access_token')}"},
                      gates=[(Concurrency(MAX_IN_FLIGHT), "global")], clock=clock, retry=retry, **kw)


async def device_id(http: VendorHttp, site: SiteRef) -> str:
    """The plant's PV inverter deviceId (SiteRef.device_ref if given, else devices/lean)."""
    if site.device_ref:
        return str(site.device_ref)
    got = await http.get(f"/v1/plants/{site.ref()}/devices/lean", endpoint="devices", site_id=site.site_id)
    try:
        devices = json.loads(got.content)["devices"]
        inverters = [d for d in devices if d.get("generatorPower") or "Inverter" in str(d.get("type", ""))]
        return str((inverters or devices)[0]["deviceId"])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ConnectorError(f"devices/lean lists no usable device ({type(exc).__name__}: {exc})", source=SOURCE,
                             endpoint="devices", site_id=site.site_id, at=got.received_at) from None


def request_days(start, end, tz: str) -> list[tuple[str, pd.Timestamp, pd.Timestamp]]:
    """(Date=YYYY-MM-DD, window start, window end) per plant-local day overlapping [start, end)."""
    lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    return [(day.isoformat(), max(d0, lo), min(d1, hi)) for day, d0, d1 in local_days(lo, hi, tz)]


async def pull(http: VendorHttp, site: SiteRef, start, end, *, set_type: str = SET_TYPE) -> list[RawPayload]:
    """EnergyAndPowerPv Wh per step for [start, end) (UTC): one payload per plant-local day."""
    dev = await device_id(http, site)
    days: Sequence = request_days(start, end, site.tz)

    async def one(date: str, a, b) -> RawPayload:
        got = await http.get(f"/v1/devices/{dev}/measurements/sets/{set_type}/Day", endpoint=ENDPOINT,
                             site_id=site.site_id, window=(a, b),
                             params={"Date": date, "ReturnEnergyValues": "true"})
        return RawPayload(got.content, SOURCE, ENDPOINT, site.site_id, as_utc(a), as_utc(b), got.received_at,
                          tz=site.tz)

    return list(await asyncio.gather(*(one(*d) for d in days)))


def next_cursor(last: Cursor | None, now) -> PullPlan:
    """Pure: whole 5-min steps up to now; today's local day is asked again until it is over."""
    return next_window(last, now, interval_s=300, lookback_s=3600)
