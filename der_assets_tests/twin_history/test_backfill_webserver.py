"""`der backfill` against a running Dagster webserver: one asset backfill the UI lists, launched over GraphQL.

Only the webserver runs (no daemon), so the backfill stays requested and the test reads back what
was asked: every vendor's raw pull and the three daily assets for yesterday and today (by the
twin's clock, which the ready file describes): today as a backfill of its own ahead of the vendors'
scheduled pulls, yesterday at a priority below the operator's own runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from der_assets.devserver import PROJECT_ROOT
from der_assets.simulator.service import ScaledClock

from .test_twin_history import NOW

pytestmark = pytest.mark.slow

QUERY = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status title tags { key value }
      assetBackfillData { assetBackfillStatuses { ... on AssetPartitionsStatusCounts {
        assetKey { path } numPartitionsTargeted } } } }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def webserver(tmp_path, isolated_home):
    home = tmp_path / "dagster"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    (home / "workspace.yaml").write_text("load_from:\n  - python_module:\n      module_name: der_assets.definitions\n"
                                         "      location_name: der_assets\n")
    port = _free_port()
    env = dict(os.environ, DAGSTER_HOME=str(home), DER_HOME=str(isolated_home))
    log = open(tmp_path / "webserver.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster-webserver"), "-w", str(home / "workspace.yaml"),
                             "-h", "127.0.0.1", "-p", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        yield url, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_one_asset_backfill_on_the_webserver(webserver, tmp_path):
    url, env = webserver
    ready = tmp_path / "twin_ready.json"
    ready.write_text(json.dumps({"clock": ScaledClock(NOW, 1e-3).describe(),
                                 "history": {"start": "2026-07-13T00:00:00+00:00"}}))
    env = {**env, "DER_CLOCK": "twin", "DER_TWIN_READY_FILE": str(ready)}
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "der"), "backfill", "--days", "1", "--detach",
                           "--wait", "180", "--dagster-url", url], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["dates"] == ["2026-07-19", "2026-07-20"] and summary["targeted"] == 2 * (6 + 3)
    assert f"{url}/runs/b/{summary['backfill_id']}" in done.stderr
    assert time.monotonic() - started < 240

    # today first, at a priority above the vendors' scheduled pulls (0); the past behind the operator (-1)
    assert len(summary["backfill_ids"]) == 2 and summary["backfill_ids"][-1] == summary["backfill_id"]
    seen = {}
    for backfill_id in summary["backfill_ids"]:
        body = httpx.post(f"{url}/graphql", json={"query": QUERY, "variables": {"id": backfill_id}},
                          timeout=30).json()
        backfill = body["data"]["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", body
        assert backfill["status"] == "REQUESTED"  # no daemon here to run it
        priority = {t["key"]: t["value"] for t in backfill["tags"]}["dagster/priority"]
        seen[backfill["title"]] = (priority, {tuple(s["assetKey"]["path"]): s["numPartitionsTargeted"]
                                              for s in backfill["assetBackfillData"]["assetBackfillStatuses"]})
    per_day = {("raw_payloads",): 6, ("interval_telemetry",): 1, ("meter_intervals",): 1,
               ("reconciled_intervals",): 1}
    assert seen == {"der backfill 2026-07-20..2026-07-20": ("1", per_day),
                    "der backfill 2026-07-19..2026-07-19": ("-1", per_day)}
