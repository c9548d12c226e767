"""`der dev` end to end: the UI comes up headless with the demo fleet, and answers GraphQL.

Starts the real webserver and daemon on a free loopback port, reads the registry asset and its
checks over GraphQL, launches the registry job and waits for its checks to pass.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ASSETS_QUERY = """
{ assetNodes { assetKey { path } groupName
    assetChecksOrError { ... on AssetChecks { checks { name } } } } }
"""

CHECK_QUERY = """
query ($name: String!) {
  assetCheckExecutions(assetKey: {path: ["asset_registry"]}, checkName: $name, limit: 20) {
    runId status evaluation { success }
  }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query, "variables": variables or {}},
                          timeout=30)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


@pytest.fixture
def der_dev(tmp_path, isolated_home):
    port = _free_port()
    env = dict(os.environ, DER_HOME=str(isolated_home), DAGSTER_HOME=str(tmp_path / "dagster_home"),
               # no week of past (and no AMI backlog, no backfill) queued ahead of the run this test waits for
               DER_TWIN_HISTORY_DAYS="0", DER_DEV_BACKFILL_DAYS="0")
    log = open(tmp_path / "der_dev.log", "w")
    der = Path(sys.executable).parent / "der"
    proc = subprocess.Popen([str(der), "dev", "--port", str(port), "--sites", "20"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"der dev did not come up:\n{(tmp_path / 'der_dev.log').read_text()[-3000:]}")
            time.sleep(1)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_ui_serves_registry_asset_and_checks(der_dev):
    port = der_dev
    nodes = {tuple(n["assetKey"]["path"]): n for n in _graphql(port, ASSETS_QUERY)["assetNodes"]}
    registry = nodes[("asset_registry",)]
    assert registry["groupName"] == "registry"
    checks = {c["name"] for c in registry["assetChecksOrError"]["checks"]}
    assert checks == {"meter_point_present", "edc_account_present", "unique_device_serials",
                      "plausible_battery_ratings", "valid_time_zones", "enrollment_fields_present"}

    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    run_id = client.submit_job_execution("registry_refresh", repository_location_name="der_assets",
                                         repository_name="__repository__")
    deadline = time.monotonic() + 180
    status = None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    # this run's execution: the registry automation may have started another run since (still in progress)
    executions = _graphql(port, CHECK_QUERY, {"name": "meter_point_present"})["assetCheckExecutions"]
    execution = next(e for e in executions if e["runId"] == run_id)
    assert execution["evaluation"]["success"] is True


def test_twin_runs_beside_the_ui(der_dev, isolated_home):
    """`der dev` starts the fleet twin too; its ready file appears in the data home."""
    import json

    ready = isolated_home / "twin_ready.json"
    deadline = time.monotonic() + 60
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ready.exists(), (isolated_home / "twin.log").read_text()[-2000:]
    data = json.loads(ready.read_text())
    assert data["sunspec"] and all(d["host"] == "127.0.0.1" for d in data["sunspec"])
