"""Every alert is stored with readable text and links to its run and check, and shown in the UI and CLI."""

from __future__ import annotations

import json

import dagster as dg
import pytest
import sqlalchemy as sa

from der_assets.cli import main
from der_assets.defs.alerts.assets import operator_alerts
from der_assets.defs.alerts.sensors import check_failure_alerts, run_failure_alerts
from der_assets.defs.registry.assets import asset_registry
from der_assets.defs.registry.checks import registry_completeness
from der_assets.defs.resources import WarehouseResource
from der_assets.notify import alert
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.warehouse.schema import alerts


@pytest.fixture
def stored(engine, warehouse_url, monkeypatch):
    monkeypatch.setenv("DER_WAREHOUSE_URL", warehouse_url)
    monkeypatch.delenv("DER_ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("DER_UI_URL", "http://ops.example:3000/")

    def rows():
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(alerts).order_by(alerts.c.alert_id)).mappings()]
    return rows


def test_a_failed_check_is_stored_as_prose_with_links(stored, engine, warehouse_url, tmp_path):
    fleet = demo_fleet(3)
    fleet.loc[fleet.site_id == fleet["site_id"].iloc[0], "edc_account"] = None
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "f.csv"))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([asset_registry, registry_completeness], instance=instance,
                            resources={"warehouse": WarehouseResource(url=warehouse_url)})
    check_failure_alerts(dg.build_run_status_sensor_context(
        sensor_name="check_failure_alerts", dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id), dagster_event=result.get_run_success_event()))
    shown = instance.get_latest_materialization_event(operator_alerts.key)
    [row] = stored()
    run = result.run_id
    assert row["kind"] == "check_failed" and row["run_id"] == run and row["channels"] == ""
    assert row["run_url"] == f"http://ops.example:3000/runs/{run}"
    assert row["check_url"] == ("http://ops.example:3000/assets/asset_registry?view=checks"
                                "&checkDetail=edc_account_present")
    assert row["text"] == ("check edc_account_present failed on asset_registry (severity WARN; found num_problems 1)."
                           f" Run: http://ops.example:3000/runs/{run}. Check: {row['check_url']}")
    assert json.loads(row["details_json"])["severity"] == "WARN"
    # the UI's operator_alerts asset was reported with it, without a run
    metadata = shown.asset_materialization.metadata
    assert shown.run_id == "" and metadata["last_alert_id"].value == row["alert_id"]
    assert row["text"] in metadata["latest"].value


def test_a_failed_run_is_stored_with_its_link(stored):
    instance = dg.DagsterInstance.ephemeral()

    @dg.asset
    def broken():
        raise ValueError("the vendor API changed")

    result = dg.materialize([broken], instance=instance, raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    run_failure_alerts(dg.build_run_status_sensor_context(
        sensor_name="run_failure_alerts", dagster_instance=instance,
        dagster_run=instance.get_run_by_id(result.run_id), dagster_event=failure).for_run_failure())
    [row] = stored()
    assert row["kind"] == "run_failed" and row["run_url"] == f"http://ops.example:3000/runs/{result.run_id}"
    assert row["text"] == ("run of __ephemeral_asset_job__ failed (job __ephemeral_asset_job__; error broken: "
                           "ValueError: the vendor API changed). "
                           f"Run: http://ops.example:3000/runs/{result.run_id}")
    assert "{" not in row["text"]  # prose, not a dict repr


def test_an_alert_that_cannot_be_stored_still_returns(monkeypatch, caplog, tmp_path):
    (tmp_path / "dir.sqlite").mkdir()  # a folder where the SQLite file should be
    monkeypatch.setenv("DER_WAREHOUSE_URL", f"sqlite:///{tmp_path / 'dir.sqlite'}")
    assert alert("test", "store unavailable", value=1) == []
    assert "alert 'store unavailable' could not be stored" in caplog.text


def test_der_alerts_list(stored, capsys):
    alert("under_delivery", "instruction EV-1 delivered 59.7 %", delivered_kwh=59.7, instructed_kwh=100.0)
    alert("check_failed", "check gap_pct failed on interval_telemetry", severity="WARN", run_id="r-1",
          asset="interval_telemetry", check="gap_pct")
    with pytest.raises(SystemExit) as info:
        main(["alerts", "list"])
    out = capsys.readouterr().out.splitlines()
    assert info.value.code == 0 and len(out) == 2
    assert out[0].startswith("#2 ") and out[0].endswith(
        "check_failed [log only] check gap_pct failed on interval_telemetry (severity WARN). "
        "Run: http://ops.example:3000/runs/r-1. "
        "Check: http://ops.example:3000/assets/interval_telemetry?view=checks&checkDetail=gap_pct")
    assert out[1].endswith("under_delivery [log only] instruction EV-1 delivered 59.7 % "
                           "(delivered kwh 59.7; instructed kwh 100)")
    with pytest.raises(SystemExit):
        main(["alerts", "list", "--kind", "under_delivery", "--json"])
    [record] = json.loads(capsys.readouterr().out)
    assert record["details"] == {"delivered_kwh": 59.7, "instructed_kwh": 100.0} and record["run_url"] is None
