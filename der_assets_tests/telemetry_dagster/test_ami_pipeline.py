"""AMI end to end: the twin's meters deliver Green Button files late, the sensor lands them,
meter_intervals rebuilds the days, and AMI supersedes the vendor estimate as revision 1."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.defs.resources import WarehouseResource
from der_assets.defs.telemetry.assets import meter_intervals
from der_assets.defs.telemetry.sensors import ami_inbox_sensor
from der_assets.defs.telemetry.store import read_day
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.greenbutton import deliver_due_files
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.warehouse.schema import raw_payloads


@pytest.fixture
def fleet(engine, tmp_path):
    fleet = demo_fleet(6)
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    return fleet


def _deliver(fleet, inbox, start: str, advance_h: float):
    clock = ManualClock(pd.Timestamp(start))
    hub = TwinHub(fleet, start=clock(), clock=clock)
    clock.advance(hours=advance_h)
    return hub, deliver_due_files(hub, inbox)


def test_inbox_to_meter_intervals(engine, warehouse_url, fleet, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    monkeypatch.setenv("DER_AMI_INBOX", str(inbox))
    # three local days simulated; a day is delivered 24-48 h after it ends
    hub, files = _deliver(fleet, inbox, "2026-07-14T00:00Z", advance_h=24 * 5)
    assert files, "the twin delivered no Green Button files"
    resources = {"warehouse": WarehouseResource(url=warehouse_url)}
    with dg.instance_for_test() as instance:
        result = ami_inbox_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        keys = sorted({r.partition_key for r in result.run_requests})
        assert "2026-07-15" in keys
        assert {r.tags["dagster/priority"] for r in result.run_requests} == {"-2"}  # behind pulls and backfills
        again = ami_inbox_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(again, dg.SkipReason)  # each file is landed once
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(raw_payloads)).scalar_one() == len(files)

    run = dg.materialize([meter_intervals], partition_key="2026-07-15", resources=resources)
    assert run.success
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks == {"quarantined_files": True}
    rows = read_day(engine, pd.Timestamp("2026-07-15T00:00Z"), ["ami"])
    # every meter: 96 quarter-hours of the UTC day, no gap
    per_site = rows.groupby("site_id").size()
    assert (per_site == 96).all() and len(per_site) == 6
    assert set(rows["quality"]) <= {"measured", "estimated"}
    # the meter reads the twin's grid energy (Green Button registers are whole Wh)
    site = per_site.index[0]
    truth = hub.window(site, pd.Timestamp("2026-07-15T00:00Z"), pd.Timestamp("2026-07-16T00:00Z"))
    ami_total = rows.loc[rows.site_id == site, "value"].sum()
    assert ami_total == pytest.approx(truth["grid_kwh"].sum(), abs=0.1)


def test_bad_file_is_landed_and_quarantined(engine, warehouse_url, fleet, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    monkeypatch.setenv("DER_AMI_INBOX", str(inbox))
    (inbox / "cut.xml").write_bytes(b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><content>")
    resources = {"warehouse": WarehouseResource(url=warehouse_url)}
    with dg.instance_for_test() as instance:
        result = ami_inbox_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    day = result.run_requests[0].partition_key
    run = dg.materialize([meter_intervals], partition_key=day, resources=resources, raise_on_error=False)
    check = run.get_asset_check_evaluations()[0]
    assert check.check_name == "quarantined_files" and not check.passed
    assert "malformed or truncated XML" in str(check.metadata["files"].value.records[0].data["error"])
    with engine.connect() as conn:
        status = conn.execute(sa.select(raw_payloads.c.status)).scalar_one()
    assert status == "quarantined"
