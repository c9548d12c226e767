"""Vendor telemetry end to end: the twin's real HTTP APIs, raw_payloads pulls, interval_telemetry.

History vendors (SolarEdge, Enphase cloud, SMA, Fronius archive) are pulled for a past UTC day
over loopback, landed, then normalized into the canonical series with its quality checks.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import interval_telemetry
from der_assets.defs.telemetry.ingest import raw_payloads
from der_assets.defs.telemetry.store import read_day
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.warehouse.schema import raw_payloads as raw_table
from der_assets.warehouse.schema import review_queue

DAY = "2026-07-15"
HISTORY = ["solaredge", "enphase", "sma", "fronius"]


@pytest.fixture
def twin(engine, warehouse_url, tmp_path, monkeypatch):
    fleet = demo_fleet(24)  # every history vendor is present at 24 sites
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    clock = ManualClock(pd.Timestamp("2026-07-14T00:00Z"))
    # one SolarEdge site drops out for an hour: the day must show it as missing, not zero
    se_site = fleet.loc[fleet.telemetry_source == "solaredge", "site_id"].iloc[0]
    faults = FaultPlan.from_dict({"rules": [{"kind": "dropout", "vendor": "solaredge", "sites": [se_site],
                                             "start": f"{DAY}T15:00Z", "end": f"{DAY}T16:00Z"}]})
    hub = TwinHub(fleet, start=clock(), clock=clock, faults=faults)
    clock.advance(hours=72)
    creds = make_credentials(0)
    with serving(build_http_apps(hub, creds)) as urls:
        ready = tmp_path / "ready.json"
        ready.write_text(json.dumps({"http": urls, "sunspec": [], "ami_inbox": str(tmp_path / "inbox"),
                                     "credentials": creds, "device_base_path": "/sites/{site_id}"}))
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
        monkeypatch.setenv("DER_FRONIUS_ARCHIVE_GAP_S", "0")
        yield hub, fleet, se_site, {"warehouse": WarehouseResource(url=warehouse_url), "clock": ClockResource()}


def test_pull_and_normalize_a_day(engine, twin):
    hub, fleet, se_site, resources = twin
    for source in HISTORY:
        run = dg.materialize([raw_payloads], partition_key=dg.MultiPartitionKey({"date": DAY, "source": source}),
                             resources=resources)
        assert run.success
        check = run.get_asset_check_evaluations()[0]
        assert check.passed, check.metadata["failures"]
    with engine.connect() as conn:
        landed = dict(conn.execute(sa.select(raw_table.c.source, sa.func.count()).group_by(raw_table.c.source)).all())
    assert set(landed) == set(HISTORY)

    run = dg.materialize([interval_telemetry], partition_key=DAY, resources=resources,
                         raise_on_error=False)
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert checks["canonical_schema"].passed and checks["quarantined_payloads"].passed
    rows = read_day(engine, pd.Timestamp(f"{DAY}T00:00Z"))
    # the SolarEdge dropout: one hour of 15-minute PV intervals missing, kept as nulls
    se_pv = rows[(rows.site_id == se_site) & (rows.channel == "pv_kwh")]
    gap = se_pv[se_pv["quality"] == "missing"]
    assert len(se_pv) == 96 and len(gap) == 4
    assert gap["interval_start"].min() == pd.Timestamp(f"{DAY}T15:00Z") and gap["value"].isna().all()
    # every PV inverter of a history vendor reported the twin's day within 1 %; the Fronius
    # archive carries the meter's registers, so Fronius sites are checked on grid energy
    day = (pd.Timestamp(f"{DAY}T00:00Z"), pd.Timestamp(f"{DAY}T00:00Z") + pd.Timedelta(days=1))
    pv_sites = fleet.loc[fleet.telemetry_source.isin(HISTORY) & (fleet.device_type == "pv_inverter")]
    for site, source in zip(pv_sites["site_id"], pv_sites["telemetry_source"], strict=True):
        if site == se_site:
            continue
        channel = "grid_kwh" if source == "fronius" else "pv_kwh"
        got = rows[(rows.site_id == site) & (rows.channel == channel)]["value"].sum()
        assert got == pytest.approx(hub.window(site, *day)[channel].sum(), rel=0.01, abs=0.05), (site, channel)
    with engine.connect() as conn:
        issues = conn.execute(sa.select(review_queue.c.site_id, review_queue.c.issue, review_queue.c.n_intervals)
                              .where(review_queue.c.issue == "gap", review_queue.c.site_id == se_site)).all()
    assert (se_site, "gap", 4) in [tuple(i) for i in issues]
    assert "gap_pct" in checks and "operator_rules_gx" in checks
    assert "data_docs" in checks["operator_rules_gx"].metadata
