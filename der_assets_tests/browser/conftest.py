"""Browser-test fixtures: skip without Chromium (fail instead with DER_REQUIRE_BROWSER=1), and a Dagster UI
serving one real day of fleet telemetry.
"""

from __future__ import annotations

import contextlib
import json
import os

import dagster as dg
import pandas as pd
import pytest

from der_assets_tests.browser.harness import (REQUIRE_ENV, chromium, missing_browser, serve_dagster_ui, start_dagster_ui,
                                              write_workspace)

DAY = "2026-07-15"


@pytest.fixture
def browser_required():
    """Skip with the reason when Chromium is absent; with DER_REQUIRE_BROWSER=1 (CI) fail instead."""
    reason = missing_browser()
    if reason:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but the browser cannot run: {reason}")
        pytest.skip(reason)


@pytest.fixture
def driver(browser_required):
    with chromium() as d:
        yield d


@pytest.fixture
def dagster_env(isolated_home) -> dict[str, str]:
    """Environment for the webserver and for in-process runs: this test's data home, a fresh DAGSTER_HOME."""
    dagster_home = isolated_home / "dagster"
    write_workspace(dagster_home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    env.update({"DER_HOME": str(isolated_home), "DAGSTER_HOME": str(dagster_home),
                "DER_WAREHOUSE_URL": f"sqlite:///{isolated_home / 'warehouse.sqlite'}"})
    return env


@pytest.fixture
def dagster_ui(browser_required, dagster_env) -> str:
    """A ready Dagster UI over this test's empty DAGSTER_HOME and data home; its base URL. Materialize into
    `dg.DagsterInstance.from_config(dagster_env["DAGSTER_HOME"])` and the UI shows it."""
    with start_dagster_ui(dagster_env) as url:
        yield url


@contextlib.contextmanager
def _solaredge_twin(engine, home):
    """The SolarEdge sites of the demo fleet, served by the twin's real HTTP API with three past days."""
    from der_assets.registry.demo import demo_fleet
    from der_assets.registry.files import write_registry_file
    from der_assets.registry.service import import_registry_file
    from der_assets.simulator.hub import ManualClock, TwinHub
    from der_assets.simulator.servers.runner import serving
    from der_assets.simulator.service import build_http_apps, make_credentials

    fleet = demo_fleet(24)
    fleet = fleet[fleet["site_id"].isin(fleet.loc[fleet["telemetry_source"] == "solaredge", "site_id"])]
    import_registry_file(engine, write_registry_file(fleet, home / "fleet.csv"))
    clock = ManualClock(pd.Timestamp("2026-07-14T00:00Z"))
    hub = TwinHub(fleet, start=clock(), clock=clock)
    clock.advance(hours=72)
    creds = make_credentials(0)
    with serving(build_http_apps(hub, creds)) as urls:
        ready = home / "ready.json"
        ready.write_text(json.dumps({"http": urls, "sunspec": [], "ami_inbox": str(home / "inbox"),
                                     "credentials": creds, "device_base_path": "/sites/{site_id}"}))
        yield fleet, ready


@pytest.fixture
def fleet_day_ui(browser_required, dagster_env, isolated_home, monkeypatch):
    """The Dagster UI after asset_registry, raw_payloads (SolarEdge) and interval_telemetry [DAY] materialized.

    Yields (base URL, {asset name: its latest materialization's metadata}). The runs go into the same
    DAGSTER_HOME the webserver reads, through the project's own assets and resources.
    """
    from der_assets.defs.registry.assets import asset_registry
    from der_assets.defs.resources import ClockResource, WarehouseResource
    from der_assets.defs.telemetry.assets import interval_telemetry
    from der_assets.defs.telemetry.ingest import raw_payloads
    from der_assets.warehouse import connect_warehouse

    for key in ("DAGSTER_HOME", "DER_WAREHOUSE_URL"):
        monkeypatch.setenv(key, dagster_env[key])
    engine = connect_warehouse(dagster_env["DER_WAREHOUSE_URL"])
    # the webserver loads the code location while the day is pulled and normalized
    with serve_dagster_ui(dagster_env) as ui, _solaredge_twin(engine, isolated_home) as (_fleet, ready):
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
        resources = {"warehouse": WarehouseResource(url=dagster_env["DER_WAREHOUSE_URL"]), "clock": ClockResource()}
        metadata = {}
        with dg.DagsterInstance.from_config(dagster_env["DAGSTER_HOME"]) as instance:
            runs = [dg.materialize([asset_registry], resources=resources, instance=instance, raise_on_error=False)]
            pull = dg.materialize([raw_payloads], partition_key=dg.MultiPartitionKey({"date": DAY, "source": "solaredge"}),
                                  resources=resources, instance=instance)
            assert pull.success
            runs.append(dg.materialize([interval_telemetry], partition_key=DAY, resources=resources,
                                       instance=instance, raise_on_error=False))
            for run, name in zip(runs, ["asset_registry", "interval_telemetry"], strict=True):
                materializations = run.asset_materializations_for_node(name)
                assert materializations, f"{name} did not materialize"
                metadata[name] = materializations[-1].metadata
            yield ui.wait_ready(), metadata
    engine.dispose()
