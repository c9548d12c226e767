"""A 7-day backfill of the demo fleet from the twin, with faults injected, in Dagster.

Every raw_payloads partition (7 days x 6 vendors) and every interval_telemetry day runs as a
partitioned job run. The faults must surface as quality flags, failed checks and review-queue
rows; no run may crash and no faulted interval may read as zero.
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
from der_assets.defs.telemetry.partitions import PULL_SOURCES
from der_assets.defs.telemetry.store import read_day
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.warehouse import connect_warehouse
from der_assets.warehouse.schema import raw_payloads as raw_table
from der_assets.warehouse.schema import review_queue

pytestmark = pytest.mark.slow
DAYS = [f"2026-07-{d:02d}" for d in range(13, 20)]


def test_week_backfill_with_faults(tmp_path, monkeypatch):
    monkeypatch.setenv("DER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DER_FRONIUS_ARCHIVE_GAP_S", "0")
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    engine = connect_warehouse(url)
    fleet = demo_fleet(100)  # every vendor and fault kind is in it; 200 sites only doubled the parse time
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    pv = fleet[fleet.device_type == "pv_inverter"].set_index("telemetry_source")["site_id"]
    se_site, en_site, sma_site = pv.loc["solaredge"].iloc[0], pv.loc["enphase"].iloc[1], pv.loc["sma"].iloc[0]
    faults = FaultPlan.from_dict({"seed": 3, "rules": [
        # a SolarEdge site offline for two hours on the 15th
        {"kind": "dropout", "vendor": "solaredge", "sites": [se_site],
         "start": "2026-07-15T14:00Z", "end": "2026-07-15T16:00Z"},
        # an Enphase inverter reporting ten times its output for one interval on the 16th
        {"kind": "spike", "vendor": "enphase", "sites": [en_site], "channel": "pv_kwh", "factor": 10,
         "start": "2026-07-16T17:00Z", "end": "2026-07-16T17:05Z"},
        # Enphase over cellular: uploads six hours late (the clock stops at 03:00 on the 20th)
        {"kind": "late", "vendor": "enphase", "delay_s": 21600},
        # a third of SMA's answers cut in half
        {"kind": "truncate", "vendor": "sma", "sites": [sma_site], "probability": 0.34},
    ]})
    clock = ManualClock(pd.Timestamp("2026-07-12T00:00Z"))
    hub = TwinHub(fleet, start=clock(), clock=clock, faults=faults)
    clock.set(pd.Timestamp("2026-07-20T03:00Z"))
    creds = make_credentials(0)
    resources = {"warehouse": WarehouseResource(url=url), "clock": ClockResource(follow_twin=False)}
    # vendor quotas lifted on both sides, or a week of Enphase history takes Enphase's real hours
    monkeypatch.setenv("DER_ENPHASE_REQUESTS_PER_MINUTE", "100000")
    # in-memory run storage: 49 runs, and an instance on disk adds about a second to each
    instance = dg.DagsterInstance.ephemeral()
    with serving(build_http_apps(hub, creds, vendor_limits=False)) as urls:
        ready = tmp_path / "ready.json"
        ready.write_text(json.dumps({"http": urls, "credentials": creds, "sunspec": [], "ami_inbox": str(tmp_path)}))
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
        for day in DAYS:
            for source in PULL_SOURCES:
                run = dg.materialize([raw_payloads], partition_key=dg.MultiPartitionKey({"date": day, "source": source}),
                                     resources=resources, instance=instance, raise_on_error=False)
                assert run.success, (day, source)
        checks = {}
        for day in DAYS:
            run = dg.materialize([interval_telemetry], partition_key=day, resources=resources, instance=instance,
                                 raise_on_error=False)
            assert run.success or not all(e.passed for e in run.get_asset_check_evaluations()), day
            checks[day] = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}

    # the dropout: 8 missing quarter-hours of PV, null and flagged, on the 15th only
    day15 = read_day(engine, pd.Timestamp("2026-07-15T00:00Z"))
    se_pv = day15[(day15.site_id == se_site) & (day15.channel == "pv_kwh")]
    window = se_pv[(se_pv.interval_start >= "2026-07-15T14:00Z") & (se_pv.interval_start < "2026-07-15T16:00Z")]
    assert len(window) == 8 and (window.quality == "missing").all() and window.value.isna().all()
    # the spike: kept, flagged suspect, and the day's suspect check fails
    day16 = read_day(engine, pd.Timestamp("2026-07-16T00:00Z"))
    spike = day16[(day16.site_id == en_site) & (day16.channel == "pv_kwh")
                  & (day16.interval_start == pd.Timestamp("2026-07-16T17:00Z"))]
    assert spike.quality.tolist() == ["suspect"] and spike.value.iloc[0] > 1.0
    assert checks["2026-07-16"]["suspect_count"] is False
    # Enphase's last six hours of the 19th have not arrived yet: missing, never zero
    day19 = read_day(engine, pd.Timestamp("2026-07-19T00:00Z"))
    enphase_late = day19[(day19.source == "enphase") & (day19.channel == "pv_kwh")
                         & (day19.interval_start >= "2026-07-19T21:00Z")]
    assert len(enphase_late) and (enphase_late.quality == "missing").all()
    # truncated SMA answers are landed, quarantined, and fail that day's check
    with engine.connect() as conn:
        quarantined = conn.execute(sa.select(raw_table.c.site_id, raw_table.c.error)
                                   .where(raw_table.c.status == "quarantined")).all()
        review = pd.read_sql(sa.select(review_queue), conn)
    assert quarantined and {q.site_id for q in quarantined} == {sma_site}
    assert any(c["quarantined_payloads"] is False for c in checks.values())
    # the review queue names each of them
    assert ((review.site_id == se_site) & (review.issue == "gap") & (review.n_intervals == 8)).any()
    assert ((review.site_id == en_site) & (review.issue == "suspect_spike")).any()
    assert (review.issue == "quarantined_payload").any()
    # and no faulted or missing interval anywhere in the week reads as a zero
    week = pd.concat([read_day(engine, pd.Timestamp(f"{d}T00:00Z")) for d in DAYS])
    assert not ((week.quality == "missing") & week.value.notna()).any()
