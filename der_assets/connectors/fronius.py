"""Fronius Solar API v1 client (Datamanager, local, one per site). Every Fronius request quirk lives here.

- No authentication (the API is always open on the LAN).
- Archive (GetArchiveData.cgi) calls must NOT run in parallel and need 120 s between them
  per device (vendor doc); realtime calls at most 2 in parallel, 4 s apart. Both gaps are
  configurable (DER_FRONIUS_ARCHIVE_GAP_S, DER_FRONIUS_REALTIME_GAP_S) so tests can shrink them.
- Errors come back as HTTP 200 with a non-zero Head.Status.Code; the bytes are returned
  and the parser turns the code into a ParseError (quarantine), like any bad body.
- Archive window: StartDate/EndDate as RFC 3339 with offset; EndDate is INCLUSIVE, and the
  register reading at key k is the counter at Start + k, so EndDate = the window end gives
  the reading that closes the last step. (The parser then also claims the step that starts
  at EndDate, as 'missing'; the next window's payload has it.) A query over 16 days
  answers Status.Code 255 [V-3p, third-party client tests], so longer windows are split.
- Channels: the meter's lifetime registers EnergyReal_WAC_Plus_Absolute (import) and
  EnergyReal_WAC_Minus_Absolute (export), and the inverters' per-step energy
  EnergyReal_WAC_Sum_Produced (PV). The documented archive has no battery channel, so a
  battery's past is not there (parsers/fronius.py). GEN24/Tauro/Verto have no archive at
  all; use the realtime PowerFlow poll log there.
- GetPowerFlowRealtimeData.fcgi is a snapshot (Head.Timestamp with offset, E_Total lifetime
  PV Wh): several polls go into one payload.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pandas as pd

from .http import ConnectorError, Gate, RetryPolicy, Sleep, Spacing, VendorHttp
from .payloads import Clock, Cursor, PollLog, PullPlan, RawPayload, SiteRef, as_utc, next_window, split_window, utc_now
from .settings import VendorSettings, tuning, vendor_settings

SOURCE = "fronius"
ARCHIVE = "GetArchiveData"
POWER_FLOW = "GetPowerFlowRealtimeData"
MAX_ARCHIVE_SPAN = pd.Timedelta(days=16)
ARCHIVE_CHANNELS = ("EnergyReal_WAC_Plus_Absolute", "EnergyReal_WAC_Minus_Absolute", "EnergyReal_WAC_Sum_Produced")
STEP_S = 300


class FroniusGates:
    """The per-device spacing rules, shared by every client of a process."""

    def __init__(self, archive_gap_s: float | None = None, realtime_gap_s: float | None = None):
        self.archive = Spacing(float(tuning("DER_FRONIUS_ARCHIVE_GAP_S")) if archive_gap_s is None else archive_gap_s)
        self.realtime = Spacing(float(tuning("DER_FRONIUS_REALTIME_GAP_S")) if realtime_gap_s is None
                                else realtime_gap_s)


def client(site: SiteRef, settings: VendorSettings | None = None, *, clock: Clock = utc_now,
           retry: RetryPolicy = RetryPolicy(attempts=2), **kw) -> VendorHttp:
    s = settings or vendor_settings(SOURCE)
    return VendorHttp(SOURCE, s.url_for(site.site_id), clock=clock, retry=retry, **kw)


def rfc3339(ts, tz: str) -> str:
    return pd.Timestamp(ts).tz_convert(tz).isoformat(timespec="seconds")


def request_windows(start, end) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    return list(split_window(pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"),
                             MAX_ARCHIVE_SPAN))


async def pull_archive(http: VendorHttp, site: SiteRef, start, end, *, gates: FroniusGates,
                       channels: Sequence[str] = ARCHIVE_CHANNELS) -> list[RawPayload]:
    """Meter registers and inverter PV for [start, end) (UTC), one call per <= 16 days, calls spaced per device."""
    out = []
    spacing: list[tuple[Gate, str]] = [(gates.archive, "device")]
    for a, b in request_windows(start, end):
        params = [("Scope", "System"), ("SeriesType", "Detail"), ("HumanReadable", "True"),
                  ("StartDate", rfc3339(a, site.tz)), ("EndDate", rfc3339(b, site.tz)),
                  *(("Channel", c) for c in channels)]
        got = await http.get("/solar_api/v1/GetArchiveData.cgi", endpoint=ARCHIVE, site_id=site.site_id,
                             window=(a, b), params=httpx_params(params), gates=spacing)
        out.append(RawPayload(got.content, SOURCE, ARCHIVE, site.site_id, as_utc(a), as_utc(b), got.received_at,
                              tz=site.tz))
    return out


def httpx_params(pairs):
    """Repeated query keys (Channel=...&Channel=...) as httpx wants them."""
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return {k: v if len(v) > 1 else v[0] for k, v in out.items()}


async def pull_power_flow(http: VendorHttp, site: SiteRef, *, polls: int, every_s: float, gates: FroniusGates,
                          sleep: Sleep = asyncio.sleep) -> list[RawPayload]:
    """Poll GetPowerFlowRealtimeData `polls` times, `every_s` apart (never closer than the realtime gap)."""
    log = PollLog(SOURCE, POWER_FLOW, site.site_id, tz=site.tz)
    last: ConnectorError | None = None
    for i in range(polls):
        if i:
            await sleep(every_s)
        try:
            got = await http.get("/solar_api/v1/GetPowerFlowRealtimeData.fcgi", endpoint=POWER_FLOW,
                                 site_id=site.site_id, gates=[(gates.realtime, "device")])
        except ConnectorError as exc:
            if not exc.retryable:
                raise
            last = exc
            continue
        log.add(got.received_at, got.content)
    if not log.polls and not log.rejected and last is not None:
        raise last
    return log.payloads(as_utc(http.clock()))


def next_cursor(last: Cursor | None, now) -> PullPlan:
    """Pure: whole 5-min logging steps up to now, re-reading the last 30 min (logger lag)."""
    return next_window(last, now, interval_s=STEP_S, lookback_s=1800)
