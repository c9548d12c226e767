"""Write the fuzz suite's twin seeds: one landed payload per vendor endpoint, as the connectors pull it.

The history APIs with no real capture in der_assets_tests/fixtures (SolarEdge, SMA, the Enphase
v4 cloud; and a twin Fronius archive beside the real one) are seeded from the fleet twin's
answers over its HTTP APIs on 127.0.0.1, pulled by the project's own connectors for one UTC
day. The snapshot APIs are seeded from the real captures instead (fuzz/seeds.py). Run once;
the files are committed:

    .venv/bin/python -m der_assets_tests.fuzz.capture_seeds

Each seed is seeds/<source>__<endpoint>.bin with seeds/<source>__<endpoint>.json beside it
(site_id, tz, received_at: the twin's clock at the pull).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from der_assets.connectors.pull import pull_source
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials

SEEDS = Path(__file__).resolve().parent / "seeds"
DAY = pd.Timestamp("2026-07-15T00:00Z")
HISTORY = ["solaredge", "enphase", "sma", "fronius"]


def capture() -> dict:
    fleet = demo_fleet(30)
    zone = fleet.drop_duplicates("site_id").set_index("site_id")["timezone"]
    clock = ManualClock(DAY - pd.Timedelta(days=1))
    hub = TwinHub(fleet, start=clock(), clock=clock, seed=17)
    creds = make_credentials(0)
    found: dict[tuple[str, str], object] = {}
    received = DAY + pd.Timedelta(days=1, hours=1)
    with tempfile.TemporaryDirectory() as tmp, serving(build_http_apps(hub, creds)) as urls:
        ready = Path(tmp) / "ready.json"
        ready.write_text(json.dumps({"http": urls, "sunspec": [], "ami_inbox": str(Path(tmp) / "inbox"),
                                     "credentials": creds, "device_base_path": "/sites/{site_id}"}))
        os.environ["DER_TWIN_READY_FILE"] = str(ready)
        os.environ["DER_FRONIUS_ARCHIVE_GAP_S"] = "0"
        clock.set(received)
        hub.sync()
        for source in HISTORY:
            result = asyncio.run(pull_source(source, fleet, DAY, DAY + pd.Timedelta(days=1)))
            for p in result.payloads:
                found.setdefault((p.source, p.endpoint), p)  # the first site's
    written = {}
    SEEDS.mkdir(exist_ok=True)
    for (source, endpoint), p in sorted(found.items()):
        name = f"{source}__{endpoint}"
        (SEEDS / f"{name}.bin").write_bytes(p.content)
        meta = {"source": source, "endpoint": endpoint, "site_id": p.site_id, "tz": zone.get(p.site_id),
                "received_at": received.isoformat(), "origin": "fleet twin over HTTP, pulled by der_assets.connectors"}
        (SEEDS / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
        written[name] = len(p.content)
    return written


if __name__ == "__main__":
    print(json.dumps(capture(), indent=1))
