"""Log lines an operator reads: no location-name warning per load, connector errors name their window,
run logs without dict reprs."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import yaml

import der_assets
from der_assets.connectors.http import ConnectorError

ROOT = Path(der_assets.__file__).parent.parent


def test_the_project_and_the_workspace_name_the_location_alike(caplog):
    """dg derives the name from the checkout folder unless pyproject sets it; a mismatch with workspace.yaml
    logged a warning on every definitions load (2,473 lines in one dev.log)."""
    from dagster.components.core.component_tree import ComponentTree

    from der_assets.devserver import prepare  # noqa: F401 - the workspace it writes names der_assets too

    workspace = yaml.safe_load((ROOT / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    tree = ComponentTree.for_project(Path(der_assets.__file__).parent)
    assert tree.code_location_name == entry["python_module"]["location_name"] == "der_assets"
    assert "location_name: der_assets" in (ROOT / "der_assets" / "devserver.py").read_text()


def test_a_snapshot_error_names_when_it_was_asked_not_window_question_mark():
    at = dt.datetime(2026, 7, 15, 10, 15, tzinfo=dt.UTC)
    error = ConnectorError("HTTP 503 (empty body)", source="sonnen", endpoint="status", site_id="S-00003", at=at)
    assert str(error) == "sonnen/status site=S-00003 snapshot at 2026-07-15T10:15:00Z: HTTP 503 (empty body)"
    window = ConnectorError("HTTP 500", source="solaredge", endpoint="energyDetails", site_id="S-1",
                            window=(at, None))
    assert str(window) == "solaredge/energyDetails site=S-1 window=2026-07-15T10:15:00Z..open: HTTP 500"
    import pickle

    assert str(pickle.loads(pickle.dumps(error))) == str(error)


def test_a_snapshot_request_that_fails_names_its_time():
    """Nobody listens on port 9 of loopback: the realtime poll fails and says when it was made."""
    import asyncio

    import pytest

    from der_assets.connectors.http import RetryPolicy, VendorHttp

    at = dt.datetime(2026, 7, 15, 10, 15, tzinfo=dt.UTC)

    async def go():
        async with VendorHttp("sonnen", "http://127.0.0.1:9", clock=lambda: at, retry=RetryPolicy(attempts=1)) as http:
            await http.get("/api/v2/status", endpoint="status", site_id="S-00003")

    with pytest.raises(ConnectorError) as info:
        asyncio.run(go())
    assert str(info.value).startswith("sonnen/status site=S-00003 snapshot at 2026-07-15T10:15:00Z: "
                                      "GET /api/v2/status: gave up after 1 attempts; last: ConnectError")


def test_an_alert_log_line_is_prose(caplog, monkeypatch):
    from der_assets.notify import alert

    monkeypatch.delenv("DER_ALERT_WEBHOOK_URL", raising=False)
    with caplog.at_level(logging.WARNING, logger="der_assets.notify"):
        alert("under_delivery", "instruction EV-1 delivered 59.7 %", delivered_kwh=59.7, instructed_kwh=100.0)
    [line] = [r.getMessage() for r in caplog.records if r.name == "der_assets.notify"]
    assert line == ("ALERT under_delivery: instruction EV-1 delivered 59.7 % (delivered kwh 59.7; instructed kwh 100) "
                    "(delivered: log only)")
