"""Benchmark: one fleet-day of vendor telemetry from raw payload bytes to canonical rows.

Payloads: the Enphase Enlighten v4 cloud endpoints the Enphase connector pulls by default
(der_assets.connectors.enphase.DEFAULT_ENDPOINTS): production_micro (5-min pv_kwh),
consumption_meter (15-min load_kwh) and battery (15-min battery_kwh + soc_pct). The bytes are
made by the twin's own handler (der_assets.simulator.servers.enphase, _Cloud.telemetry, called
directly with a stand-in request, no HTTP) from a TwinHub over the Enphase sites of the demo
fleet (der_assets.registry.demo.demo_fleet) for one UTC day, with no injected faults. Those
template sites' bodies are reused for --sites benchmark sites (site i gets template i % T and a
copy of its registry rows under a new site id), so the parse work per site is real but the
twin is not simulated 10,000 times.

Timed:
  orjson_s     orjson.loads of every payload, parse-and-discard (nothing is kept); best of 3.
  normalize_s  der_assets.telemetry.daily.normalize_day over all payloads, best of 3: the v4
               bodies decoded together (enphase.parse_v4_many, msgspec), device assignment,
               the complete gap grid, quality flags and review runs (dense.complete_day), and
               the canonical DataFrame with its review table.

Prints ONE JSON object. `values` is the number of canonical rows produced (gap rows included).

    python benchmarks/normalize.py               # 10,000 sites
    python benchmarks/normalize.py --quick       # 500 sites, a smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import types

import numpy as np
import orjson
import pandas as pd

from der_assets.connectors.enphase import DEFAULT_ENDPOINTS
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers import enphase as enphase_server
from der_assets.telemetry.daily import LandedPayload, normalize_day

DAY = pd.Timestamp("2025-06-17", tz="UTC")
TEMPLATE_FLEET = 400  # demo fleet size the Enphase template sites are drawn from (about 100 of them)


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def template_bodies(fleet_size: int) -> tuple[pd.DataFrame, list[dict[str, bytes]]]:
    """Enphase registry rows of the demo fleet and, per Enphase site, the day's body per endpoint."""
    registry = demo_fleet(fleet_size)
    registry = registry[registry["telemetry_source"] == "enphase"].reset_index(drop=True)
    hub = TwinHub(registry, start=DAY, clock=ManualClock(DAY + pd.Timedelta(days=1)), seed=1)
    fleet = enphase_server._Fleet(hub)
    cloud = enphase_server._Cloud(hub, fleet)
    start_at = str(int(DAY.timestamp()))
    bodies = []
    for system in fleet.by_site.values():
        per = {}
        for kind in DEFAULT_ENDPOINTS:
            query = {"start_at": start_at, "granularity": "day"}
            request = types.SimpleNamespace(path_params={"system_id": system.system_id, "kind": kind},
                                            query_params=query)
            per[kind] = bytes(cloud.telemetry(request).body)
        bodies.append(per)
    sites = list(fleet.by_site)
    registry = registry.set_index("site_id").loc[sites].reset_index()
    return registry, bodies


def bench_fleet(n_sites: int, template_registry: pd.DataFrame, bodies: list[dict[str, bytes]]):
    """n_sites copies of the template sites: a registry and the day's landed payloads."""
    t_sites = template_registry["site_id"].drop_duplicates().tolist()
    n_t = len(t_sites)
    by_site = {s: g for s, g in template_registry.groupby("site_id", sort=False)}
    frames, payloads = [], []
    received = DAY + pd.Timedelta(days=1, minutes=20)
    pid = 0
    for i in range(n_sites):
        k = i % n_t
        site = f"B-{i:06d}"
        g = by_site[t_sites[k]].copy()
        g["site_id"] = site
        g["device_id"] = site + np.where(g["device_type"] == "battery", "-BAT", "-PV")
        frames.append(g)
        for kind in DEFAULT_ENDPOINTS:
            pid += 1
            payloads.append(LandedPayload(payload_id=pid, source="enphase", endpoint=kind, site_id=site,
                                          received_at=received, content=bodies[k][kind]))
    return pd.concat(frames, ignore_index=True), payloads


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="500 sites (unless --sites is given), one orjson pass")
    args = ap.parse_args(argv)
    n_sites = args.sites if (not args.quick or "--sites" in (argv or sys.argv)) else 500

    t0 = time.perf_counter()
    t_registry, bodies = template_bodies(TEMPLATE_FLEET)
    registry, payloads = bench_fleet(n_sites, t_registry, bodies)
    build_s = time.perf_counter() - t0
    contents = [p.content for p in payloads]
    n_bytes = sum(len(c) for c in contents)

    # (a) bare parse, parse-and-discard; best of a few passes (it is short and noisy)
    orjson_s = float("inf")
    for _ in range(1 if args.quick else 3):
        t = time.perf_counter()
        for c in contents:
            orjson.loads(c)
        orjson_s = min(orjson_s, time.perf_counter() - t)

    # (b) the project's normalization, bytes -> canonical quality-flagged rows with the gap grid;
    # best of as many passes as the bare parse got
    normalize_s = float("inf")
    for _ in range(1 if args.quick else 3):
        result = None
        gc.collect()
        t = time.perf_counter()
        result = normalize_day(payloads, registry, day_start=DAY, believed_at=DAY + pd.Timedelta(days=1, hours=1),
                               sources=["enphase"])
        normalize_s = min(normalize_s, time.perf_counter() - t)
    stats = result.stats()
    values = int(len(result.rows))
    peak_mb = vm_hwm_mb()
    ratio = normalize_s / orjson_s
    out = {
        "sites": n_sites,
        "payloads": len(payloads),
        "endpoints": list(DEFAULT_ENDPOINTS),
        "bytes": n_bytes,
        "values": values,
        "values_per_s": round(values / normalize_s, 1),
        "orjson_s": round(orjson_s, 4),
        "normalize_s": round(normalize_s, 3),
        "ratio": round(ratio, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "meets_2x": bool(ratio <= 2.0),
        "meets_4gb": bool(peak_mb < 4096.0),
        "missing_rows": stats["missing"],
        "suspect_rows": stats["suspect"],
        "quarantined_payloads": stats["quarantined_payloads"],
        "template_sites": len(bodies),
        "build_s": round(build_s, 2),
        "orjson": orjson.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
