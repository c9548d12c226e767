"""The operator's day in a real browser, on the UI that `der dev` serves.

`der dev` starts the Dagster UI and daemon, the fleet twin (with a day of past) and the intake. The test then
does what an operator's first hour does: today's telemetry is pulled and normalized into the instance the UI
reads (so the batteries have a state of charge), an instruction is POSTed to the running webhook with the demo
token, and the test watches it become a dispatch run whose plan plot renders in Chromium. The review queue, which
the daemon refreshes on its own once a telemetry day is rebuilt, is open in the UI with its items.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pandas as pd
import pytest

from der_assets_tests.browser.harness import (graphql, image_loaded, open_page, screenshot, show_markdown, free_port)

pytestmark = pytest.mark.slow

SITES = 20
RUNS_QUERY = """
query ($key: String!) {
  runsOrError(filter: {tags: [{key: "dagster/partition", value: $key}]}) {
    ... on Runs { results { runId jobName status tags { key value } } }
  }
}
"""
MATERIALIZED_QUERY = """
query ($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) { runId partition timestamp } }
  }
}
"""


def _until(predicate, what: str, timeout_s: float, log: Path | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tail}")


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _ui_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/server_info", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture
def der_dev(browser_required, isolated_home, tmp_path):
    """`der dev` on free loopback ports: (UI URL, the data home, the intake's ready file, der dev's log)."""
    ui_port, intake_port = free_port(), free_port()
    dagster_home = tmp_path / "dagster_home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update(DER_HOME=str(isolated_home), DAGSTER_HOME=str(dagster_home), DER_TWIN_HISTORY_DAYS="1",
               DER_DEV_BACKFILL_DAYS="0", DER_INTAKE_PORT=str(intake_port), DAGSTER_DISABLE_TELEMETRY="1",
               GX_ANALYTICS_ENABLED="false")
    log_path = tmp_path / "der_dev.log"
    der = Path(sys.executable).parent / "der"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(der), "dev", "--port", str(ui_port), "--sites", str(SITES)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{ui_port}"
        try:
            _until(lambda: proc.poll() is not None or _ui_up(url), "the UI", 180, log_path)
            assert proc.poll() is None, log_path.read_text()[-3000:]
            intake = _until(lambda: (r := _json(isolated_home / "intake_ready.json"))
                            and r.get("webhook", {}).get("status") == "listening" and r, "the webhook", 60, log_path)
            _until(lambda: _json(isolated_home / "twin_ready.json"), "the twin", 60, log_path)
            graphql(url, "mutation SetNuxSeen { setNuxSeen }")  # no 'Join the community' dialog over pages
            yield url, isolated_home, intake, log_path
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            # dagster dev's code server runs in a session of its own and outlives the group: it names the home
            subprocess.run(["pkill", "-f", str(dagster_home)], check=False)


def _pull_today(home: Path, dagster_home: str, monkeypatch) -> pd.Timestamp:
    """Today's SolarEdge and Enphase telemetry from the running twin, through the project's own assets, into the
    instance the UI reads: the batteries' state of charge the plan starts from."""
    from der_assets.defs.resources import ClockResource, WarehouseResource
    from der_assets.defs.telemetry.assets import interval_telemetry
    from der_assets.defs.telemetry.ingest import raw_payloads

    monkeypatch.setenv("DER_TWIN_READY_FILE", str(home / "twin_ready.json"))
    monkeypatch.setenv("DAGSTER_HOME", dagster_home)
    now = pd.Timestamp.now(tz="UTC")
    day = now.strftime("%Y-%m-%d")
    resources = {"warehouse": WarehouseResource(url=f"sqlite:///{home / 'warehouse.sqlite'}"), "clock": ClockResource()}
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        for source in ("solaredge", "enphase"):
            pulled = dg.materialize([raw_payloads], partition_key=dg.MultiPartitionKey({"date": day, "source": source}),
                                    resources=resources, instance=instance, tags={"der/vendor": source})
            assert pulled.success
        dg.materialize([interval_telemetry], partition_key=day, resources=resources, instance=instance,
                       raise_on_error=False)
    return now


def test_an_instruction_posted_to_der_dev_becomes_a_dispatch_run_with_its_plot(der_dev, driver, monkeypatch):
    url, home, intake, log = der_dev
    dagster_home = str(Path(log).parent / "dagster_home")
    now = _pull_today(home, dagster_home, monkeypatch)

    # an instruction for the next quarter-hour at least four minutes out, posted as a utility's system would
    start = (now + pd.Timedelta(minutes=4)).ceil("15min")
    instruction_id = f"UI-{start:%Y%m%d%H%M}"
    body = {"instruction_id": instruction_id, "modification": 0, "iso": "PJM", "resource_id": "AGG-1",
            "issued_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "start": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": (start + pd.Timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), "interval_minutes": 15,
            "target_kw": 10}
    token = intake["credentials"]["bearer_token"]
    answer = httpx.post(intake["webhook"]["url"], json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert (answer.status_code, answer.json()["outcome"]) == (201, "new"), answer.text

    runs = _until(lambda: graphql(url, RUNS_QUERY, {"key": instruction_id})["runsOrError"]["results"],
                  "the dispatch sensor's run", 90, log)
    assert runs[0]["jobName"] == "dispatch"
    assert {"key": "dagster/priority", "value": "10"} in runs[0]["tags"]  # ahead of queued pulls and backfills
    planned = _until(lambda: (m := graphql(url, MATERIALIZED_QUERY, {"path": ["dispatch_plan"]})
                              ["assetOrError"]["assetMaterializations"]) and m[0]["partition"] == instruction_id and m,
                     "dispatch_plan materialized for the instruction", 180, log)
    assert planned[0]["runId"] == runs[0]["runId"]

    open_page(driver, f"{url}/assets/dispatch_plan?view=events&partition={instruction_id}", "table", timeout_s=60)
    dialog = show_markdown(driver, "planned_vs_instructed", timeout_s=60)
    img = dialog.find_element("css selector", 'img[alt="planned vs instructed kW and planned SoC band"]')
    width, height = image_loaded(driver, img)
    screenshot(driver, "der_dev_dispatch_plan")
    assert width > 400 and height > 200, f"the dispatch plot is broken in the UI ({width} x {height})"

    # the run itself, as the operator finds it from the Runs page
    open_page(driver, f"{url}/runs/{runs[0]['runId']}", "body", timeout_s=60)
    _until(lambda: instruction_id in driver.page_source and "dispatch_plan" in driver.page_source,
           "the run page naming the instruction's partition and its steps", 60)
    screenshot(driver, "der_dev_dispatch_run")

    # the daemon's review automation refreshes the queue after the telemetry day was rebuilt
    reviewed = _until(lambda: graphql(url, MATERIALIZED_QUERY, {"path": ["review_queue"]})
                      ["assetOrError"]["assetMaterializations"], "review_queue refreshed by the daemon", 240, log)
    assert reviewed
    open_page(driver, f"{url}/assets/review_queue?view=events", "table", timeout_s=60)
    _until(lambda: "by_origin_issue" in driver.page_source and "open_items" in driver.page_source,
           "the review queue's metadata on its page", 30)
    screenshot(driver, "der_dev_review_queue")
    # cancel, so the command step releases the batteries and the run ends before der dev stops
    cancel = {**body, "modification": 1, "status": "cancelled",
              "issued_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    answer = httpx.post(intake["webhook"]["url"], json=cancel, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 201, answer.text
