"""One source, one window, the whole fleet: what a raw_payloads partition pulls.

Every site is pulled on its own, concurrently within the vendor's limits; a site that fails
(401, 5xx after retries, timeout) is reported and the others carry on. History APIs
(SolarEdge, Enphase cloud, SMA, Fronius archive) are asked for the window; device-local
snapshot APIs (sonnen, Enphase IQ Gateway, Fronius power flow, SunSpec Modbus) have no
history, so they are polled only when the window contains now, and the day's polls are joined
into one log when the day is normalized.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pandas as pd

from der_assets.connectors import enphase, fronius, sma, solaredge, sonnen, sunspec
from der_assets.connectors.http import ConnectorError
from der_assets.connectors.payloads import RawPayload, SiteRef, utc_now
from der_assets.connectors.settings import SettingsError, sunspec_devices

SNAPSHOT_POLLS = 1  # one reading per site per scheduled run; the day's runs make the log
# History APIs are pulled incrementally: from where the site's last pull of the day ended (less an
# overlap that catches late-settling values), and no more often than the vendor's budget allows.
# SolarEdge allows 300 requests a day per site and a pull costs one request per endpoint (five):
# every 30 minutes is 48 pulls, 240 requests.
MIN_SPACING = {"solaredge": pd.Timedelta(minutes=30), "enphase": pd.Timedelta(minutes=15),
               "sma": pd.Timedelta(minutes=15), "fronius": pd.Timedelta(minutes=15)}
# How far back each pull reaches again: a value can settle or arrive late (Enphase over cellular by hours).
OVERLAP = {"enphase": pd.Timedelta(hours=8)}
DEFAULT_OVERLAP = pd.Timedelta(hours=1)


@dataclass(frozen=True)
class LastPull:
    """The cursor of one site: when its last pull of the day was received and where its window ended."""

    received_at: pd.Timestamp
    window_end: pd.Timestamp


def site_window(source: str, start: pd.Timestamp, end: pd.Timestamp, now: pd.Timestamp,
                last: LastPull | None) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """The window to ask one site for, or None when its last pull is too recent to spend a request on."""
    end = min(end, now)
    if last is None:
        return (start, end) if end > start else None
    # received after `now`: stamped on the wall clock while the platform follows a twin replaying an
    # earlier day (DER_CLOCK=twin, or a test's stepped clock); the two cannot be compared, so no spacing
    if pd.Timedelta(0) <= now - last.received_at < MIN_SPACING.get(source, pd.Timedelta(0)):
        return None
    begin = max(start, last.window_end - OVERLAP.get(source, DEFAULT_OVERLAP))
    return (begin, end) if end > begin else None


@dataclass
class PullResult:
    payloads: list[RawPayload] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)


def vendor_sites(registry: pd.DataFrame, source: str) -> list[SiteRef]:
    devices = registry[(registry["telemetry_source"] == source) & (registry["device_status"] == "active")]
    first = devices.drop_duplicates("site_id")
    return [SiteRef(site_id=r.site_id, tz=r.timezone, vendor_ref=r.vendor_ref) for r in first.itertuples()]


async def _guard(result: PullResult, source: str, site_id: str, coro) -> None:
    try:
        result.payloads.extend(await coro)
    except (ConnectorError, SettingsError, ValueError, OSError) as exc:
        result.failures.append({"source": source, "site_id": site_id, "error": str(exc).splitlines()[0][:300]})


async def pull_source(source: str, registry: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                      *, now: pd.Timestamp | None = None, last: dict[str, LastPull] | None = None) -> PullResult:
    """Every payload `source` has for [start, end) across the registry's sites.

    last: each site's cursor for this window (from the landed payloads); history APIs are then
    asked only for what is new, and not more often than MIN_SPACING.
    """
    now = pd.Timestamp(now or utc_now()).tz_convert("UTC")
    live = start <= now < end + pd.Timedelta(minutes=15)
    last = last or {}
    result = PullResult()
    tasks = []
    if source in ("solaredge", "enphase", "sma"):
        module = {"solaredge": solaredge, "enphase": enphase, "sma": sma}[source]
        http = module.client()
        async with http:
            for s in vendor_sites(registry, source):
                window = site_window(source, start, end, now, last.get(s.site_id))
                if window is not None:
                    tasks.append(_guard(result, source, s.site_id, module.pull(http, s, *window)))
            if source == "enphase" and live:
                tasks += [_gateway(result, s) for s in vendor_sites(registry, source)]
            await asyncio.gather(*tasks)
        return result
    if source == "sonnen":
        if live:
            await asyncio.gather(*[_local(result, source, s, sonnen) for s in vendor_sites(registry, source)])
        return result
    if source == "fronius":
        gates = fronius.FroniusGates()
        await asyncio.gather(*[_fronius(result, s, *(site_window(source, start, end, now, last.get(s.site_id))
                                                      or (start, start)), gates, live)
                               for s in vendor_sites(registry, source)])
        return result
    if source == "sunspec":
        if live:
            known = set(registry["site_id"])
            devices = [sunspec.SunSpecDevice.from_dict(d) for d in sunspec_devices() if d["site_id"] in known]
            await asyncio.gather(*[_guard(result, d.source, d.site_id, sunspec.pull(d, polls=SNAPSHOT_POLLS, every_s=0))
                                   for d in devices])
        return result
    raise ValueError(f"unknown source {source!r}")


async def _local(result: PullResult, source: str, site: SiteRef, module) -> None:
    http = module.client(site)
    async with http:
        await _guard(result, source, site.site_id, module.pull(http, site, polls=SNAPSHOT_POLLS, every_s=0))


async def _gateway(result: PullResult, site: SiteRef) -> None:
    http = enphase.gateway_client(site)
    async with http:
        await _guard(result, "enphase", site.site_id, enphase.pull_gateway(http, site, polls=SNAPSHOT_POLLS, every_s=0))


async def _fronius(result: PullResult, site: SiteRef, start, end, gates, live: bool) -> None:
    http = fronius.client(site)
    async with http:
        if end > start:
            await _guard(result, "fronius", site.site_id, fronius.pull_archive(http, site, start, end, gates=gates))
        if live:
            await _guard(result, "fronius", site.site_id,
                         fronius.pull_power_flow(http, site, polls=SNAPSHOT_POLLS, every_s=0, gates=gates))
