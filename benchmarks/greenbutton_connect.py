"""Benchmark: one Green Button Connect round over loopback from the twin's custodian, and the next.

Prints ONE JSON object. A twin of --sites demo sites runs --days days (ManualClock), its custodian
is served on 127.0.0.1 without a rate limit, and the connector pulls every usage point once
(token, Authorization, UsagePoint list, one Batch request per meter), then again from the
cursor (nothing new: every answer empty). Reported: requests, answers with data, bytes, wall
seconds of each round and per usage point, and the wall time a real custodian's budget would
impose (requests / DER_GBC_REQUESTS_PER_MINUTE default 60). Both rounds are bound by the twin's
XML building on this machine, not by the connector.

    python benchmarks/greenbutton_connect.py --sites 200 --days 7
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from der_assets.connectors import greenbutton_connect as gbc
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers import greenbutton_connect as server
from der_assets.simulator.servers.runner import serving


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=200)
    ap.add_argument("--days", type=int, default=7)
    args = ap.parse_args()
    fleet = demo_fleet(args.sites)
    clock = ManualClock(pd.Timestamp("2026-07-14T00:00Z"))
    hub = TwinHub(fleet, start=clock(), clock=clock)
    clock.advance(days=args.days)
    t0 = time.perf_counter()
    hub.sync()
    simulate_s = time.perf_counter() - t0
    sites = fleet.drop_duplicates("site_id")
    site_of = dict(zip(sites["meter_id"].astype(str), sites["site_id"], strict=True))
    app = server.build_app(hub, client_id="bench", client_secret="bench-secret", refresh_token="bench-refresh",
                           rate_limit=None)
    with tempfile.TemporaryDirectory() as tmp, serving({"gbc": app}) as urls:
        settings = gbc.ConnectSettings(base_url=urls["gbc"], client_id="bench", client_secret="bench-secret",
                                       refresh_token="bench-refresh", token_file=Path(tmp) / "tokens.json")

        async def rounds():
            async with gbc.ConnectClient(settings, per_minute=10**6) as client:
                t = time.perf_counter()
                first = await gbc.pull(client, {}, now=clock(), site_of=site_of.get)
                first_s = time.perf_counter() - t
                t = time.perf_counter()
                second = await gbc.pull(client, first.cursors, now=clock(), site_of=site_of.get)
                return first, first_s, second, time.perf_counter() - t

        first, first_s, second, second_s = asyncio.run(rounds())
    print(json.dumps({
        "benchmark": "greenbutton_connect", "sites": args.sites, "days": args.days,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "python": platform.python_version()},
        "twin_simulate_s": round(simulate_s, 2),
        "first_round": {"requests": first.requests, "answers_with_data": len(first.payloads),
                        "bytes": sum(len(p.content) for p in first.payloads), "wall_s": round(first_s, 2),
                        "ms_per_usage_point": round(1000 * first_s / max(1, len(first.payloads)), 1),
                        "failures": len(first.failures)},
        "next_round": {"requests": second.requests, "answers_with_data": len(second.payloads),
                       "wall_s": round(second_s, 2)},
        "round_at_60_per_minute_min": round(first.requests / 60.0, 1),
    }))


if __name__ == "__main__":
    main()
