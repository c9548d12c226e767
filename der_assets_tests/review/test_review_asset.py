"""The review_queue asset shows open items by origin and issue; its check warns on items overdue."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from der_assets import review
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.review.assets import ReviewSettings, review_queue
from der_assets.defs.telemetry.store import write_day
from der_assets.warehouse.schema import review_queue as review_table


def _items(engine) -> None:
    start = pd.Timestamp("2026-07-15T15:00Z")
    gaps = [{"site_id": s, "device_id": f"{s}-pv", "source": "solaredge", "channel": "pv_kwh", "issue": "gap",
             "first_interval": start, "last_interval": start, "n_intervals": 1} for s in ("S1", "S2", "S3")]
    write_day(engine, pd.DataFrame(), pd.DataFrame(gaps), day_start=pd.Timestamp("2026-07-15T00:00Z"),
              sources=["solaredge"], origin="interval_telemetry", parsed_ids=[],
              quarantined=[{"payload_id": 5, "site_id": "S4", "source": "solaredge", "error": "truncated body"}])
    write_day(engine, pd.DataFrame(), pd.DataFrame(), day_start=pd.Timestamp("2026-07-15T00:00Z"), sources=["ami"],
              origin="meter_intervals", parsed_ids=[],
              quarantined=[{"payload_id": 6, "site_id": "S1", "source": "greenbutton", "error": "no IntervalBlock"}])
    review.resolve(engine, 3, note="site was offline by agreement", by="ana")


def _run(warehouse_url, as_of: pd.Timestamp):
    resources = {"warehouse": WarehouseResource(url=warehouse_url), "clock": ClockResource(),
                 "review": ReviewSettings(max_age_h=24, as_of=as_of.isoformat())}
    result = dg.materialize([review_queue], resources=resources, instance=dg.DagsterInstance.ephemeral())
    [materialization] = result.asset_materializations_for_node("review_queue")
    [check] = result.get_asset_check_evaluations()
    return materialization.metadata, check


def test_open_items_by_origin_and_issue_and_the_age_check(engine, warehouse_url):
    _items(engine)
    with engine.connect() as conn:
        detected = pd.Timestamp(conn.execute(sa.select(sa.func.min(review_table.c.detected_at))).scalar_one())
    detected = detected.tz_localize("UTC") if detected.tzinfo is None else detected

    metadata, check = _run(warehouse_url, detected + pd.Timedelta(hours=2))
    assert metadata["open_items"].value == 4 and metadata["resolved_items"].value == 1
    counts = {(r.data["origin"], r.data["issue"]): r.data["open_items"]
              for r in metadata["by_origin_issue"].value.records}
    assert counts == {("interval_telemetry", "gap"): "2", ("interval_telemetry", "quarantined_payload"): "1",
                      ("meter_intervals", "quarantined_payload"): "1"}
    assert [r.data["review_id"] for r in metadata["oldest_open"].value.records] == ["1", "2", "4", "5"]
    assert check.passed and check.description == "no open item is older than 24 h"

    metadata, check = _run(warehouse_url, detected + pd.Timedelta(hours=25))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.description == "4 open item(s) first detected more than 24 h ago"
    assert check.metadata["overdue_items"].value == 4 and metadata["oldest_open_h"].value == 25.0


def test_a_rebuilt_telemetry_day_or_the_hour_refreshes_the_queue():
    from der_assets.defs.telemetry.partitions import daily

    instance = dg.DagsterInstance.ephemeral()
    defs = dg.Definitions(assets=[review_queue, dg.AssetSpec("interval_telemetry", partitions_def=daily),
                                  dg.AssetSpec("meter_intervals", partitions_def=daily)],
                          resources={"warehouse": WarehouseResource(), "clock": ClockResource(),
                                     "review": ReviewSettings()})
    at = pd.Timestamp("2026-07-16T10:10Z").to_pydatetime()
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=at)
    cursor = result.cursor
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor,
                                               evaluation_time=at + pd.Timedelta(minutes=5))
    assert result.total_requested == 0  # nothing changed, no hour passed
    instance.report_runless_asset_event(dg.AssetMaterialization("interval_telemetry", partition="2026-07-15"))
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor,
                                               evaluation_time=at + pd.Timedelta(minutes=6))
    assert result.get_requested_partitions(dg.AssetKey("review_queue")) == {None}
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor,
                                               evaluation_time=at + pd.Timedelta(minutes=7))
    assert result.total_requested == 0
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=result.cursor,
                                               evaluation_time=at + pd.Timedelta(minutes=51))  # 11:01
    assert result.total_requested == 1
