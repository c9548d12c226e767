"""Telemetry in Dagster: the daily canonical series, the AMI meter series, and their reconciliation.

Each asset rebuilds exactly one UTC day from the raw payloads landed for it, in one
transaction, so a re-run or a backfill replaces that day and a killed run leaves the previous
version intact. Quality results come back as partitioned asset checks whose metadata holds a
table of what failed.
"""

import dagster as dg
import pandas as pd

from der_assets.defs.plots import plot_metadata
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.gx_check import operator_rules_result, operator_rules_spec
from der_assets.defs.telemetry.partitions import VENDOR_SOURCES, daily
from der_assets.defs.telemetry.store import day_bounds, first_landed, landed_for_day, read_day, write_day
from der_assets.registry.store import current_registry
from der_assets.telemetry.daily import collection_starts, normalize_day
from der_assets.telemetry.quality import divergence, ended_gap_runs
from der_assets.telemetry.schema import validate
from der_assets.warehouse.schema import reconciled_intervals as reconciled_table  # the asset below takes the name

MAX_GAP_PCT = 2.0  # more than this share of a day's intervals missing fails the gap check
MAX_LATE_PCT = 5.0
MAX_DIVERGENCE = 0.05  # AMI and vendor grid energy more than 5 % apart for a site


def _table(frame: pd.DataFrame, limit: int = 50) -> dg.MetadataValue:
    shown = frame.head(limit).astype(str)
    return dg.MetadataValue.table(
        records=[dg.TableRecord(dict(r)) for r in shown.to_dict("records")],
        schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in shown.columns]),
    )


def _quality_checks(asset_key: dg.AssetKey, result, rows: pd.DataFrame,
                    as_of: pd.Timestamp | None = None) -> list[dg.AssetCheckResult]:
    """as_of: the platform's now; the gap check judges only intervals that have ended by then."""
    stats = result.stats(as_of)
    review = ended_gap_runs(result.review, rows, as_of)
    gaps = review[review["issue"] == "gap"] if not review.empty else review
    suspect = review[review["issue"].astype(str).str.startswith("suspect")] if not review.empty else review
    late_pct = round(100.0 * stats["late"] / max(1, stats["reported"]), 3)
    try:
        validate(rows)
        schema_ok, schema_failures = True, pd.DataFrame()
    except Exception as exc:  # pandera SchemaErrors carries the failure cases
        schema_ok = False
        schema_failures = getattr(exc, "failure_cases", pd.DataFrame({"error": [str(exc)[:500]]}))
    return [
        dg.AssetCheckResult(asset_key=asset_key, check_name="canonical_schema", passed=schema_ok,
                            severity=dg.AssetCheckSeverity.ERROR,
                            metadata={"failures": _table(schema_failures)} if not schema_ok else {}),
        dg.AssetCheckResult(asset_key=asset_key, check_name="gap_pct",
                            # nothing ended yet: nothing to judge, and not a 0 % either (gap_pct stays null)
                            passed=stats["gap_pct"] is None or stats["gap_pct"] <= MAX_GAP_PCT,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"gap_pct": stats["gap_pct"], "missing_intervals": stats["missing"],
                                      "judged_intervals": stats["judged_intervals"],
                                      "future_intervals": stats["future_intervals"],
                                      # before the platform first polled a device that keeps no history
                                      "not_collected_intervals": stats["not_collected_intervals"],
                                      "as_of": "end of day" if as_of is None else as_of.isoformat(),
                                      "threshold_pct": MAX_GAP_PCT, "by_source": _table(result.by_source(as_of)),
                                      "gaps": _table(gaps)}),
        dg.AssetCheckResult(asset_key=asset_key, check_name="late_data", passed=late_pct <= MAX_LATE_PCT,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"late_pct": late_pct, "late_values": stats["late"], "threshold_pct": MAX_LATE_PCT}),
        dg.AssetCheckResult(asset_key=asset_key, check_name="suspect_count", passed=stats["suspect"] == 0,
                            severity=dg.AssetCheckSeverity.WARN,
                            metadata={"suspect_values": stats["suspect"], "suspect": _table(suspect)}),
        dg.AssetCheckResult(asset_key=asset_key, check_name="quarantined_payloads", passed=not result.quarantined,
                            severity=dg.AssetCheckSeverity.ERROR,
                            metadata={"quarantined": len(result.quarantined),
                                      "payloads": _table(pd.DataFrame(result.quarantined))}),
    ]


def _check_specs(asset_name: str) -> list[dg.AssetCheckSpec]:
    specs = [("canonical_schema", True, "The day's rows satisfy the canonical pandera schema."),
             ("gap_pct", False, f"At most {MAX_GAP_PCT} % of the day's ended intervals are missing (one per "
                                f"device channel and interval; intervals not yet ended are not judged). A device "
                                f"that keeps no history (sonnen, SunSpec/Generac Modbus, a Fronius battery via "
                                f"PowerFlow) has data only from the platform's first poll of it: its intervals "
                                f"before that first payload are not_collected_intervals (missing rows, reported "
                                f"per source with the collection start, not judged)."),
             ("late_data", False, f"At most {MAX_LATE_PCT} % of values arrived more than 6 h after their interval."),
             ("suspect_count", False, "No value is flagged suspect (spike above nameplate, stuck register)."),
             ("quarantined_payloads", True, "Every landed payload for the day parsed.")]
    return [dg.AssetCheckSpec(name, asset=asset_name, blocking=blocking, description=doc, partitions_def=daily)
            for name, blocking, doc in specs]


@dg.asset(
    group_name="telemetry",
    partitions_def=daily,
    kinds={"pandas", "sql"},
    check_specs=[*_check_specs("interval_telemetry"), operator_rules_spec("interval_telemetry", daily)],
    deps=["asset_registry",  # the expected series and nameplates come from the registry
          dg.AssetDep("raw_payloads",
                      partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="date"))],
    automation_condition=dg.AutomationCondition.eager(),
    description="Canonical, quality-flagged interval series of every vendor device for one UTC day.",
)
def interval_telemetry(context: dg.AssetExecutionContext, warehouse: WarehouseResource, clock: ClockResource):
    engine = warehouse.engine()
    day_start, day_end = day_bounds(context.partition_key)
    as_of = clock.clock().now()  # the platform's now: what has ended by then is judged, the rest is not yet
    registry = current_registry(engine)
    payloads = landed_for_day(engine, VENDOR_SOURCES, day_start, day_end)
    result = normalize_day(payloads, registry, day_start=day_start, believed_at=pd.Timestamp.now(tz="UTC"),
                           sources=VENDOR_SOURCES, collection=collection_starts(first_landed(engine, VENDOR_SOURCES)))
    # a gap run is reviewed only as far as its intervals have ended (and from where collection began)
    write_day(engine, result.rows, ended_gap_runs(result.review, result.rows, as_of), day_start=day_start,
              sources=VENDOR_SOURCES, origin="interval_telemetry", quarantined=result.quarantined,
              parsed_ids=result.parsed_ids)
    stats = result.stats(as_of)
    context.log.info(f"{context.partition_key}: {len(payloads)} payloads, "
                     + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items()))  # prose, not a dict repr
    yield dg.MaterializeResult(metadata={"dagster/row_count": stats["rows"], "payloads": len(payloads), **stats,
                                         **_fleet_day_plot(context, result.rows, registry, day_start, as_of)})
    yield from _quality_checks(context.asset_key, result, result.rows, as_of)
    yield operator_rules_result(context.asset_key, context.partition_key, result.rows, registry)  # GX, every run


def _fleet_day_plot(context, rows: pd.DataFrame, registry: pd.DataFrame, day_start: pd.Timestamp,
                    as_of: pd.Timestamp) -> dict:
    """The fleet-day panel (PV, load, battery, grid kW, SoC, gaps shaded) as metadata; intervals not ended by
    the platform clock's `as_of` are not shaded, as the gap check does not count them."""
    from der_assets.telemetry.plot import fleet_timezone, plot_fleet_day

    plot = plot_fleet_day(rows, day_start, timezone=fleet_timezone(registry), until=as_of)
    return {**plot_metadata("fleet_day", plot.png, asset="interval_telemetry", partition=context.partition_key,
                            alt=f"fleet day {context.partition_key}"),
            "fleet_day_shaded_intervals": int(plot.series["shaded"].sum())}


@dg.asset(
    group_name="ami",
    partitions_def=daily,
    kinds={"pandas", "sql"},
    deps=["asset_registry"],  # meters map to sites through the registry
    check_specs=[dg.AssetCheckSpec("quarantined_files", asset="meter_intervals", blocking=True, partitions_def=daily,
                                   description="Every AMI file (Green Button XML, utility CSV) landed for the day parsed.")],
    description="Utility AMI interval energy at each meter (Green Button XML and utility CSV exports), one UTC day.",
)
def meter_intervals(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    day_start, day_end = day_bounds(context.partition_key)
    registry = current_registry(engine)
    payloads = landed_for_day(engine, ["greenbutton", "utility_csv"], day_start, day_end)  # both parse to source ami
    meters = registry.drop_duplicates("site_id").dropna(subset=["meter_id"])
    result = normalize_day(payloads, registry, day_start=day_start, believed_at=pd.Timestamp.now(tz="UTC"),
                           sources=["ami"])
    rows = result.rows[result.rows["source"] == "ami"]
    write_day(engine, rows, result.review, day_start=day_start, sources=["ami"], origin="meter_intervals",
              quarantined=result.quarantined, parsed_ids=result.parsed_ids)
    yield dg.MaterializeResult(metadata={"dagster/row_count": len(rows), "files": len(payloads),
                                         "meters_reporting": int(rows["site_id"].nunique()),
                                         "meters_registered": len(meters)})
    yield dg.AssetCheckResult(check_name="quarantined_files", passed=not result.quarantined,
                              severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"quarantined": len(result.quarantined),
                                        "files": _table(pd.DataFrame(result.quarantined))})


@dg.asset(
    group_name="ami",
    partitions_def=daily,
    deps=[interval_telemetry, meter_intervals],
    kinds={"pandas", "sql"},
    check_specs=[dg.AssetCheckSpec("ami_divergence", asset="reconciled_intervals", partitions_def=daily,
                                   description=f"AMI and vendor grid energy within {MAX_DIVERGENCE:.0%} per site.")],
    automation_condition=dg.AutomationCondition.eager(),
    description="Site grid energy: vendor-based (revision 0) superseded by AMI (revision 1) where it has arrived.",
)
def reconciled_intervals(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    day_start, _ = day_bounds(context.partition_key)
    vendor = read_day(engine, day_start, VENDOR_SOURCES)
    ami = read_day(engine, day_start, ["ami"])
    vendor_grid = vendor[(vendor["channel"] == "grid_kwh")].assign(device_id=lambda f: f["site_id"], revision=0)
    ami_grid = ami[ami["channel"] == "grid_kwh"].assign(device_id=lambda f: f["site_id"], revision=1)
    rows = pd.concat([vendor_grid, ami_grid], ignore_index=True)
    rows = rows.drop_duplicates(["site_id", "device_id", "source", "channel", "interval_start", "revision"])
    write_day(engine, rows, pd.DataFrame(columns=["site_id"]), day_start=day_start,
              sources=sorted(set(VENDOR_SOURCES) | {"ami"}), origin="reconciled_intervals", quarantined=[],
              parsed_ids=[], table=reconciled_table)
    div = divergence(ami_grid, vendor_grid)
    worst = div.sort_values("rel_diff", ascending=False) if not div.empty else div
    failing = worst[worst["rel_diff"] > MAX_DIVERGENCE] if not worst.empty else worst
    yield dg.MaterializeResult(metadata={"dagster/row_count": len(rows), "sites_with_ami": int(ami_grid["site_id"].nunique()),
                                         "sites_with_vendor_grid": int(vendor_grid["site_id"].nunique())})
    yield dg.AssetCheckResult(check_name="ami_divergence", passed=failing.empty, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"sites_compared": len(div), "sites_over_threshold": len(failing),
                                        "divergence": _table(worst.round(4))})
