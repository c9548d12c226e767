"""One fleet-day of the demo fleet's real vendor mix, pulled from the twin by the project's connectors.

Why a module of its own: pulling is slow (tens of thousands of loopback requests) and is not
what benchmarks/normalize.py times, so it runs once and its bytes are cached in a pickle
(DER_BENCH_CACHE, default /tmp/der_assets_bench) keyed by template fleet size, day, seed and
poll count; a repeated run loads the pickle.

What is pulled, over 127.0.0.1 from the twin's own servers (simulator.service.build_http_apps
and one SunSpec Modbus server per Generac/SunSpec site, as `der simulate` runs them):
- history APIs, once after the day (what the raw_payloads pull of a finished day asks):
  connectors.pull.pull_source for solaredge, enphase (cloud v4), sma and fronius (archive),
  each with its own endpoint list and site list;
- device-local snapshot APIs, polled as the ingest schedule does (every 15 minutes, one poll
  per site per run, so 96 payloads per site and endpoint): sonnen status/powermeter, the
  Enphase IQ Gateway (production.json, ivp_meters_readings), Fronius GetPowerFlowRealtimeData,
  SunSpec/Generac Modbus snapshots;
- Green Button: each meter's ESPI file for the local day, as the twin delivers it to the inbox
  (simulator.greenbutton.espi_day_xml; the inbox connector only reads the bytes).

History payloads are restamped received at the end of the day plus 20 minutes (the twin's
clock); the connectors' own HTTP client stamps wall time, which lies outside a replayed day.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

CACHE_VERSION = 1
POLL_EVERY = pd.Timedelta(minutes=15)  # defs/telemetry/ingest.py: the ingest schedule, */15
HISTORY_SOURCES = ("solaredge", "enphase", "sma", "fronius")


@dataclass(frozen=True)
class Pulled:
    """One landed payload as the connectors returned it (received_at a UTC Timestamp)."""

    source: str
    endpoint: str
    site_id: str | None
    received_at: pd.Timestamp
    content: bytes


def cache_dir() -> Path:
    return Path(os.environ.get("DER_BENCH_CACHE", "/tmp/der_assets_bench"))


def cache_path(template_sites: int, day: pd.Timestamp, seed: int, polls: int) -> Path:
    return cache_dir() / f"fleetday_v{CACHE_VERSION}_{template_sites}sites_{day:%Y%m%d}_seed{seed}_{polls}polls.pkl"


def load_or_pull(template_sites: int, day: pd.Timestamp, *, seed: int = 1, polls: int = 96,
                 log=print) -> tuple[pd.DataFrame, list[Pulled], dict]:
    """(template registry, payloads, meta): from the cache, else pulled from a twin and cached."""
    path = cache_path(template_sites, day, seed, polls)
    if path.exists():
        with path.open("rb") as fh:
            data = pickle.load(fh)
        return data["registry"], data["payloads"], {**data["meta"], "cache": str(path), "cached": True}
    t0 = time.perf_counter()
    registry, payloads, meta = pull_day(template_sites, day, seed=seed, polls=polls, log=log)
    meta = {**meta, "pull_s": round(time.perf_counter() - t0, 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as fh:
        pickle.dump({"registry": registry, "payloads": payloads, "meta": meta}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return registry, payloads, {**meta, "cache": str(path), "cached": False}


@contextlib.contextmanager
def _env(values: dict[str, str]):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv=None) -> int:
    """Pull (or load) the cached fleet-day and print what it holds as one JSON object."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="the mixed fleet-day benchmarks/normalize.py times, pulled once")
    ap.add_argument("--template-sites", type=int, default=200)
    ap.add_argument("--day", default="2026-07-15")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--polls", type=int, default=96)
    args = ap.parse_args(argv)
    _, payloads, meta = load_or_pull(args.template_sites, pd.Timestamp(args.day, tz="UTC"), seed=args.seed,
                                     polls=args.polls, log=lambda m: print(m, file=sys.stderr))
    mb: dict[str, float] = {}
    for p in payloads:
        mb[p.source] = mb.get(p.source, 0.0) + len(p.content) / 1e6
    print(json.dumps({**meta, "payloads": len(payloads), "mb_by_source": {k: round(v, 2) for k, v in mb.items()}}))
    return 0


def pull_day(template_sites: int, day: pd.Timestamp, *, seed: int, polls: int, log=print):
    from der_assets.registry.demo import demo_fleet
    from der_assets.simulator.hub import ManualClock, TwinHub
    from der_assets.simulator.servers.runner import serving
    from der_assets.simulator.service import build_http_apps, make_credentials

    registry = demo_fleet(template_sites)
    clock = ManualClock(day - pd.Timedelta(hours=1))
    hub = TwinHub(registry, start=day - pd.Timedelta(hours=1), clock=clock, seed=seed)
    creds = make_credentials(seed)
    with tempfile.TemporaryDirectory(prefix="der_bench_twin_") as tmp, \
            serving(build_http_apps(hub, creds, vendor_limits=False)) as urls:
        ready = Path(tmp) / "ready.json"
        ready.write_text(json.dumps({"http": urls, "sunspec": [], "ami_inbox": str(Path(tmp) / "inbox"),
                                     "credentials": creds, "device_base_path": "/sites/{site_id}"}))
        env = {"DER_TWIN_READY_FILE": str(ready), "DER_FRONIUS_ARCHIVE_GAP_S": "0", "DER_FRONIUS_REALTIME_GAP_S": "0",
               "DER_ENPHASE_REQUESTS_PER_MINUTE": "1000000", "DER_SOLAREDGE_DAILY_LIMIT": "1000000"}
        with _env(env):
            payloads = asyncio.run(_pull_all(hub, clock, registry, day, polls, log))
    counts = pd.Series([p.source for p in payloads]).value_counts().to_dict()
    return registry, payloads, {"template_sites": int(registry["site_id"].nunique()), "day": f"{day:%Y-%m-%d}",
                                "seed": seed, "polls": polls, "payloads_by_source": counts}


async def _pull_all(hub, clock, registry, day, polls, log) -> list[Pulled]:
    from der_assets.connectors import enphase, fronius, sonnen, sunspec
    from der_assets.connectors.pull import pull_source, vendor_sites
    from der_assets.simulator.greenbutton import espi_day_xml
    from der_assets.simulator.service import free_loopback_port, sunspec_sites
    from der_assets.simulator.sunspec_server import SunSpecServer, SunSpecSite

    out: list[Pulled] = []
    limit = asyncio.Semaphore(48)

    def keep(raws, received=None):
        for p in raws:
            at = pd.Timestamp(received if received is not None else p.received_at).tz_convert("UTC")
            out.append(Pulled(p.source, p.endpoint, p.site_id, at, bytes(p.content)))

    servers, devices = [], []
    for d in sunspec_sites(hub):
        site = SunSpecSite(hub.twin, d["site_id"], generac_site_energy=d["source"] == "generac",
                           manufacturer="Generac" if d["source"] == "generac" else "der_assets")
        server = SunSpecServer(site, host="127.0.0.1", port=free_loopback_port(), unit_id=1)
        await server.start()
        servers.append(server)
        devices.append(sunspec.SunSpecDevice.from_dict({**d, "host": "127.0.0.1", "port": server.port, "unit_id": 1}))
    sonnen_sites = vendor_sites(registry, "sonnen")
    gateway_sites = vendor_sites(registry, "enphase")
    fronius_sites = vendor_sites(registry, "fronius")
    gates = fronius.FroniusGates()

    async def guarded(coro):
        async with limit:
            try:
                keep(await coro)
            except Exception as exc:  # noqa: BLE001 - a failed poll is a gap, as in the platform
                log(f"poll failed: {str(exc).splitlines()[0][:200]}")

    async def sonnen_poll(site):
        async with sonnen.client(site, clock=clock) as http:
            return await sonnen.pull(http, site, polls=1, every_s=0)

    async def gateway_poll(site):
        async with enphase.gateway_client(site, clock=clock) as http:
            return await enphase.pull_gateway(http, site, polls=1, every_s=0)

    async def fronius_poll(site):
        async with fronius.client(site, clock=clock) as http:
            return await fronius.pull_power_flow(http, site, polls=1, every_s=0, gates=gates)

    try:
        t0 = time.perf_counter()
        for k in range(polls):
            clock.set(day + k * (pd.Timedelta(days=1) / polls) + pd.Timedelta(minutes=1))
            await asyncio.to_thread(hub.sync)
            await asyncio.gather(*[guarded(sonnen_poll(s)) for s in sonnen_sites],
                                 *[guarded(gateway_poll(s)) for s in gateway_sites],
                                 *[guarded(fronius_poll(s)) for s in fronius_sites],
                                 *[guarded(sunspec.pull(d, polls=1, every_s=0, clock=clock)) for d in devices])
            if k % 16 == 15:
                log(f"snapshot polls {k + 1}/{polls}: {len(out)} payloads, {time.perf_counter() - t0:.0f} s")
        after = day + pd.Timedelta(days=1, hours=8)  # every local day of the fleet has ended (ESPI below)
        clock.set(after)
        await asyncio.to_thread(hub.sync)
        received = day + pd.Timedelta(days=1, minutes=20)
        for source in HISTORY_SOURCES:
            result = await pull_source(source, registry, day, day + pd.Timedelta(days=1), now=after)
            for failure in result.failures:
                log(f"pull failed: {failure}")
            keep(result.payloads, received)
            log(f"{source}: {len(result.payloads)} payloads")
        meters = registry.drop_duplicates("site_id").dropna(subset=["meter_id"])
        for site_id in meters["site_id"]:
            xml = espi_day_xml(hub, str(site_id), day.date(), updated=day + pd.Timedelta(days=2, hours=6))
            out.append(Pulled("greenbutton", "espi", str(site_id), day + pd.Timedelta(days=2, hours=6), xml))
    finally:
        for server in servers:
            await server.stop()
    return out


if __name__ == "__main__":
    raise SystemExit(main())
