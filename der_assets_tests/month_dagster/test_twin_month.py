"""A month of the demo fleet on the twin, in Dagster: capacity from the backfilled telemetry, and the
month's settlement reconciled through the statement inbox sensor.

The twin runs July 2026 for the demo fleet's SolarEdge and Enphase sites (the vendors whose cloud
APIs keep history; the Modbus devices only answer for now) with three one-hour battery events. A
30-day backfill pulls raw payloads and builds interval_telemetry; the Green Button files the
meters deliver are landed by the AMI sensor. Then:
- capacity: site_availability and capacity_estimate for PJM 2026/2027 from those 30 days;
- settlement: the test writes the ISO's statement from our own event baselines with one known error
  of each class, drops it in the inbox, and the sensor's run must find each error on its line with
  the right dollars. AMI landing late for a reconciled month re-settles it.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.defs.capacity.assets import (CapacitySettings, capacity_estimate, capacity_inputs_sensor,
                                             capacity_schedule, site_availability)
from der_assets.defs.registry.assets import enrollment_package
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.settlement.assets import (SettlementSettings, event_baselines, iso_statement,
                                               settlement_reconciliation)
from der_assets.defs.settlement.sensors import late_ami_settlement_sensor, statement_inbox_sensor
from der_assets.defs.telemetry.assets import interval_telemetry, meter_intervals
from der_assets.defs.telemetry.ingest import raw_payloads
from der_assets.defs.telemetry.sensors import ami_inbox_sensor
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.greenbutton import deliver_due_files
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.warehouse import connect_warehouse
from der_assets.warehouse.schema import capacity_estimates, dispatch_instructions, interval_telemetry as telemetry_table
from der_assets.warehouse.schema import event_baselines as baselines_table
from der_assets.warehouse.schema import raw_payloads as raw_table

pytestmark = pytest.mark.slow
DAYS = [f"2026-07-{d:02d}" for d in range(1, 31)]
SOURCES = ["solaredge", "enphase"]
EVENTS = [("EVT-0708", "2026-07-08T18:00Z"), ("EVT-0715", "2026-07-15T18:00Z"), ("EVT-0722", "2026-07-22T18:00Z")]
EVENT_H = 3  # 2-5 pm EDT; PJM's Same Day (3+2) settles hours, so nine statement lines
RATE = 1000.0  # $/MWh the aggregator expects for event energy (the test's program terms)
MONTH = "2026-07-01"


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("month")
    mp = pytest.MonkeyPatch()
    mp.setenv("DER_HOME", str(tmp / "home"))
    mp.setenv("DER_ENPHASE_REQUESTS_PER_MINUTE", "100000")
    mp.setenv("DER_AMI_INBOX", str(tmp / "ami_inbox"))
    mp.setenv("DER_STATEMENT_INBOX", str(tmp / "statement_inbox"))
    url = f"sqlite:///{tmp / 'w.sqlite'}"
    engine = connect_warehouse(url)
    fleet = demo_fleet(24)
    keep = fleet[(fleet.device_type == "battery") & fleet.telemetry_source.isin(SOURCES)]["site_id"]
    fleet = fleet[fleet.site_id.isin(set(keep))].reset_index(drop=True)
    import_registry_file(engine, write_registry_file(fleet, tmp / "fleet.csv"))

    clock = ManualClock(pd.Timestamp("2026-06-30T00:00Z"))
    hub = TwinHub(fleet, start=clock(), clock=clock)
    batteries = fleet[fleet.device_type == "battery"]
    rows = []
    for event_id, start in EVENTS:
        t0 = pd.Timestamp(start)
        clock.set(t0 - pd.Timedelta(minutes=1))
        for b in batteries.itertuples():
            if b.site_status == "active" and not b.opt_out:
                hub.command(b.site_id, 0.3 * b.rated_kw, EVENT_H * 3600 + 60)
        rows.append({"instruction_id": event_id, "modification": 0, "iso": "PJM", "resource_id": "AGG-1",
                     "issued_at": (t0 - pd.Timedelta(hours=2)).to_pydatetime(), "start": t0.to_pydatetime(),
                     "end": (t0 + pd.Timedelta(hours=EVENT_H)).to_pydatetime(), "interval_minutes": 15,
                     "target_kw": json.dumps(40.0), "status": "active", "channel": "inbox",
                     "received_at": (t0 - pd.Timedelta(hours=2)).to_pydatetime(), "raw_sha256": None})
    with engine.begin() as conn:
        conn.execute(dispatch_instructions.insert(), rows)
    clock.set(pd.Timestamp("2026-08-03T00:00Z"))

    creds = make_credentials(0)
    resources = {"warehouse": WarehouseResource(url=url), "clock": ClockResource(follow_twin=False),
                 "capacity": CapacitySettings(as_of="2026-08-01"),
                 "settlement": SettlementSettings(rates_usd_per_mwh={"PJM": RATE}, max_unexplained_usd=1.0)}
    # in-memory run and event storage: a 30-day backfill is 120 runs, and an instance on disk adds ~1 s to each
    instance = dg.DagsterInstance.ephemeral()
    with serving(build_http_apps(hub, creds, vendor_limits=False)) as urls:
        ready = tmp / "ready.json"
        ready.write_text(json.dumps({"http": urls, "credentials": creds, "sunspec": [], "ami_inbox": str(tmp)}))
        mp.setenv("DER_TWIN_READY_FILE", str(ready))
        for day in DAYS:
            for source in SOURCES:
                key = dg.MultiPartitionKey({"date": day, "source": source})
                assert dg.materialize([raw_payloads], partition_key=key, resources=resources, instance=instance).success
            assert dg.materialize([interval_telemetry], partition_key=day, resources=resources, instance=instance,
                                  raise_on_error=False).success
    files = deliver_due_files(hub, tmp / "ami_inbox")
    assert files
    keys = set()
    while not isinstance(landed := ami_inbox_sensor(dg.build_sensor_context(instance=instance, resources=resources)),
                         dg.SkipReason):  # the sensor lands a bounded number of files per tick
        keys |= {r.partition_key for r in landed.run_requests}
    ami_days = sorted(keys & set(DAYS))
    assert len(ami_days) == 30
    for day in ami_days:
        assert dg.materialize([meter_intervals], partition_key=day, resources=resources, instance=instance).success
    yield {"engine": engine, "fleet": fleet, "resources": resources, "instance": instance, "tmp": tmp, "hub": hub,
           "home": str(tmp / "home")}
    mp.undo()


def test_capacity_from_a_month_of_twin_history(month, monkeypatch):
    monkeypatch.setenv("DER_HOME", month["home"])  # the month's data home, not this test's own
    key = dg.MultiPartitionKey({"iso": "PJM", "delivery_year": "2026-2027"})
    run = dg.materialize([site_availability, capacity_estimate], partition_key=key, resources=month["resources"],
                         instance=month["instance"], raise_on_error=False)
    assert run.success
    checks = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert set(checks) == {"sample_day_coverage", "unavailable_share", "unverified_inputs"}
    assert checks["sample_day_coverage"].passed  # 30 July days >= 20
    with month["engine"].connect() as conn:
        row = conn.execute(sa.select(capacity_estimates)).mappings().one()
    summary = json.loads(row["summary_json"])
    n_sites = month["fleet"]["site_id"].nunique()
    assert (row["iso"], row["delivery_year"], row["n_sites"], row["n_days"]) == ("PJM", "2026/2027", n_sites, 30)
    assert 0 < row["deliverable_p90_kw"] <= row["deliverable_p50_kw"] <= row["nameplate_kw"]
    assert row["accredited_p90_kw"] == pytest.approx(row["deliverable_p90_kw"] * 0.69, abs=0.01)  # PJM DR 2026/27
    # the losses and deliverable add back up to nameplate
    assert summary["nameplate_kw"] == pytest.approx(sum(summary["losses_kw"].values()) + _mean_daily(month), abs=0.05)
    materialization = run.get_asset_materialization_events()[-1].materialization
    assert "data:image/png;base64," in materialization.metadata["distribution"].value
    # the enrollment package carries each site's capacity
    assert dg.materialize([enrollment_package], partition_key="PJM", resources=month["resources"],
                          instance=month["instance"]).success
    package = pd.read_csv(month["tmp"] / "home" / "exports" / "enrollment_pjm.csv")
    assert len(package) == n_sites and set(package["capacity_delivery_year"]) == {"2026/2027"}
    assert package["accredited_kw"].to_numpy() == pytest.approx(package["deliverable_p90_kw"].to_numpy() * 0.69)
    assert (package["deliverable_p90_kw"] <= package["deliverable_p50_kw"] + 1e-9).all()


def test_capacity_reruns_on_new_telemetry_months_and_weekly(month, monkeypatch):
    monkeypatch.setenv("DER_HOME", month["home"])  # the month's data home, not this test's own
    """The sensor and the schedule request every enrolled ISO's delivery years that have a rating."""
    resources, instance = month["resources"], month["instance"]
    expected = {dg.MultiPartitionKey({"iso": "PJM", "delivery_year": y}) for y in ("2026-2027", "2027-2028")}
    fired = capacity_inputs_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert {r.partition_key for r in fired.run_requests} == expected  # 2028/29 DR has no shipped rating
    again = capacity_inputs_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                           cursor=fired.cursor))
    assert not again.run_requests  # nothing new since
    context = dg.build_schedule_context(instance=instance, resources=resources,
                                        scheduled_execution_time=pd.Timestamp("2026-08-03T06:00Z").to_pydatetime())
    assert {r.partition_key for r in capacity_schedule(context)} == expected


def _mean_daily(month) -> float:
    with month["engine"].connect() as conn:
        days = pd.read_sql("SELECT day, SUM(deliverable_kw) AS kw FROM capacity_site_days GROUP BY day", conn)
    return float(days["kw"].mean())


def _ours(engine) -> pd.DataFrame:
    """Our resource reduction per event interval, from the stored event baselines."""
    with engine.connect() as conn:
        base = pd.read_sql(sa.select(baselines_table), conn)
    base["interval_start"] = pd.to_datetime(base["interval_start"], utc=True)
    base["h"] = base["interval_s"] / 3600.0
    return (base.groupby(["event_id", "resource_id", "interval_start", "interval_s"])
            .agg(baseline_kw=("baseline_kw", "sum"), load_kw=("load_kw", "sum"),
                 reduction_kwh=("reduction_kw", lambda s: float((s * base.loc[s.index, "h"]).sum())))
            .reset_index())


def test_month_reconciles_through_the_statement_sensor(month, monkeypatch):
    monkeypatch.setenv("DER_HOME", month["home"])  # the month's data home, not this test's own
    engine, resources, instance = month["engine"], month["resources"], month["instance"]
    assert dg.materialize([event_baselines], partition_key=MONTH, resources=resources, instance=instance).success
    ours = _ours(engine)
    assert len(ours) == 9 and (ours["interval_s"] == 3600).all()  # 3 events x 3 hours
    assert (ours["reduction_kwh"] > 0).all()  # every hour delivered something at the meters

    lines = []
    for r in ours.itertuples():
        h = r.interval_s / 3600.0
        lines.append({"statement_id": "PJM-2026-07", "iso": "PJM", "resource_id": r.resource_id,
                      "event_id": r.event_id, "interval_start": r.interval_start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "interval_s": r.interval_s, "iso_baseline_kw": round(r.baseline_kw, 4),
                      "iso_load_kw": round(r.load_kw, 4), "iso_reduction_kwh": round(r.reduction_kwh, 4),
                      "rate_usd_per_mwh": RATE, "amount_usd": round(r.reduction_kwh * RATE / 1000, 2), "h": h})
    st = pd.DataFrame(lines)
    expected = {}
    # arithmetic: EVT-0708's first hour paid five dollars more than its kWh x rate
    i = 0
    st.loc[i, "amount_usd"] += 5.0
    expected["arithmetic"] = (st.loc[i, "event_id"], st.loc[i, "interval_start"], -5.0)
    # rate_mismatch: the second hour at 1,100 $/MWh instead of 1,000
    i = 1
    st.loc[i, "rate_usd_per_mwh"] = 1100.0
    st.loc[i, "amount_usd"] = round(st.loc[i, "iso_reduction_kwh"] * 1.1, 2)
    expected["rate_mismatch"] = (st.loc[i, "event_id"], st.loc[i, "interval_start"],
                                 round(round(ours.loc[i, "reduction_kwh"], 6) * 1.0 - st.loc[i, "amount_usd"], 2))
    # load_mismatch: the ISO saw 2 kW more load (so 2 kWh less reduction) in EVT-0715's first hour
    i = 3
    st.loc[i, "iso_load_kw"] += 2.0
    st.loc[i, "iso_reduction_kwh"] = round(st.loc[i, "iso_reduction_kwh"] - 2.0 * st.loc[i, "h"], 4)
    st.loc[i, "amount_usd"] = round(st.loc[i, "iso_reduction_kwh"] * RATE / 1000, 2)
    expected["load_mismatch"] = (st.loc[i, "event_id"], st.loc[i, "interval_start"], 2.0)
    # baseline_mismatch: the ISO's baseline 4 kW lower (4 kWh less reduction) in EVT-0715's second hour
    i = 4
    st.loc[i, "iso_baseline_kw"] -= 4.0
    st.loc[i, "iso_reduction_kwh"] = round(st.loc[i, "iso_reduction_kwh"] - 4.0 * st.loc[i, "h"], 4)
    st.loc[i, "amount_usd"] = round(st.loc[i, "iso_reduction_kwh"] * RATE / 1000, 2)
    expected["baseline_mismatch"] = (st.loc[i, "event_id"], st.loc[i, "interval_start"], 4.0)
    # registration_mismatch: EVT-0715's last hour is not on the statement at all
    i = 5
    expected["registration_mismatch"] = (st.loc[i, "event_id"], st.loc[i, "interval_start"],
                                         round(ours.loc[i, "reduction_kwh"] * RATE / 1000, 2))
    st = st.drop(index=i)
    # missing_ami: one site's meter rows for EVT-0722's first hour are withdrawn before settling
    i = 6
    site = sorted(month["fleet"]["site_id"].unique())[1]
    t0 = pd.Timestamp(ours.loc[i, "interval_start"])
    with engine.begin() as conn:
        conn.execute(telemetry_table.delete().where(
            telemetry_table.c.source == "ami", telemetry_table.c.site_id == site,
            telemetry_table.c.interval_start >= t0.to_pydatetime(),
            telemetry_table.c.interval_start < (t0 + pd.Timedelta(hours=1)).to_pydatetime()))
    expected["missing_ami"] = (ours.loc[i, "event_id"], t0.strftime("%Y-%m-%dT%H:%M:%SZ"), None)

    inbox = month["tmp"] / "statement_inbox"
    inbox.mkdir(exist_ok=True)
    st.drop(columns=["h"]).to_csv(inbox / "pjm-2026-07.csv", index=False)
    fired = statement_inbox_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert [r.partition_key for r in fired.run_requests] == [MONTH]
    assert (inbox / "done" / "pjm-2026-07.csv").exists()
    with engine.connect() as conn:
        assert conn.execute(sa.select(raw_table.c.status).where(raw_table.c.source == "statement")).scalars().all() == ["parsed"]

    run = dg.materialize([iso_statement, event_baselines, settlement_reconciliation], partition_key=MONTH,
                         resources=resources, instance=instance, raise_on_error=False,
                         tags=fired.run_requests[0].tags)
    assert run.success
    checks = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert checks == {"statements_parsed": True, "ami_complete": False, "unexplained_usd": False,
                      "ami_for_settled_events": False}
    with engine.connect() as conn:
        found = pd.read_sql("SELECT * FROM settlement_discrepancies", conn)
    found["interval_start"] = pd.to_datetime(found["interval_start"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sorted(found["class"]) == sorted(expected)
    for cls, (event_id, start, usd) in expected.items():
        row = found[found["class"] == cls].iloc[0]
        assert (row["event_id"], row["interval_start"]) == (event_id, start), cls
        if usd is None:
            assert pd.isna(row["usd_at_stake"]), cls
        else:
            assert row["usd_at_stake"] == pytest.approx(usd, abs=0.011), cls
    packages = month["tmp"] / "home" / "settlement" / "2026-07"
    assert len(list(packages.rglob("*.html"))) == len(expected)

    # the withdrawn meter rows arrive late: the AMI day is rebuilt and the month re-settled
    late = late_ami_settlement_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(late, dg.SensorResult)  # the earlier AMI days are seen once, nothing reconciled then
    day = t0.strftime("%Y-%m-%d")
    assert dg.materialize([meter_intervals], partition_key=day, resources=resources, instance=instance).success
    late = late_ami_settlement_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                              cursor=late.cursor))
    assert MONTH in [r.partition_key for r in late.run_requests]
    run = dg.materialize([event_baselines, settlement_reconciliation], partition_key=MONTH, resources=resources,
                         instance=instance, raise_on_error=False)
    with engine.connect() as conn:
        classes = sorted(pd.read_sql("SELECT class FROM settlement_discrepancies", conn)["class"])
    assert classes == sorted(set(expected) - {"missing_ami"})
