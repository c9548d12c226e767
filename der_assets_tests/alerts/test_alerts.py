"""Alerts reach a webhook on loopback: a failed check once, and nothing twice."""

from __future__ import annotations

import dagster as dg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from der_assets.defs.alerts.sensors import check_failure_alerts
from der_assets.defs.registry.assets import asset_registry
from der_assets.defs.registry.checks import registry_completeness
from der_assets.defs.resources import WarehouseResource
from der_assets.notify import alert
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.servers.runner import serving


def _receiver(received: list):
    async def hook(request: Request):
        received.append(await request.json())
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


def test_alert_without_channels_only_logs(monkeypatch, caplog):
    monkeypatch.delenv("DER_ALERT_WEBHOOK_URL", raising=False)
    assert alert("test", "nothing configured") == []
    assert "ALERT test: nothing configured" in caplog.text


def test_unreachable_webhook_does_not_raise(monkeypatch):
    monkeypatch.setenv("DER_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook")
    assert alert("test", "nobody listening") == []


def test_failed_check_reaches_the_webhook_once(engine, warehouse_url, tmp_path, monkeypatch):
    fleet = demo_fleet(3)
    site = fleet["site_id"].iloc[0]
    fleet.loc[fleet.site_id == site, "edc_account"] = None
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "f.csv"))
    received: list = []
    with serving({"hook": _receiver(received)}) as urls, dg.instance_for_test() as instance:
        monkeypatch.setenv("DER_ALERT_WEBHOOK_URL", f"{urls['hook']}/hook")
        result = dg.materialize([asset_registry, registry_completeness], instance=instance,
                                resources={"warehouse": WarehouseResource(url=warehouse_url)})
        context = dg.build_run_status_sensor_context(
            sensor_name="check_failure_alerts", dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id), dagster_event=result.get_run_success_event())
        check_failure_alerts(context)
    assert [a["details"]["severity"] for a in received] == ["WARN"]
    assert received[0]["title"] == "check edc_account_present failed on asset_registry"
    assert received[0]["details"]["run_id"] == result.run_id
    assert received[0]["run_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
