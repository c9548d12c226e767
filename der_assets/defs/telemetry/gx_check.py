"""The operators' Great Expectations rules as a partitioned asset check on interval_telemetry."""

import dagster as dg
import pandas as pd

from der_assets import config
from der_assets.defs.resources import WarehouseResource
from der_assets.defs.telemetry.assets import _table, interval_telemetry
from der_assets.defs.telemetry.partitions import VENDOR_SOURCES, daily
from der_assets.defs.telemetry.store import day_bounds, read_day
from der_assets.registry.store import current_registry
from der_assets.telemetry.gx_rules import run_rules


@dg.asset_check(asset=interval_telemetry, partitions_def=daily, blocking=False,
                description="Operators' rules (der_assets/telemetry/expectations/*.json) with Great Expectations; "
                            "the Data Docs report is linked in the metadata.")
def operator_rules_gx(context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource) -> dg.AssetCheckResult:
    engine = warehouse.engine()
    day_start, _ = day_bounds(context.partition_key)
    rows = read_day(engine, day_start, VENDOR_SOURCES)
    registry = current_registry(engine)
    nameplate = registry.drop_duplicates("device_id").set_index("device_id")["rated_kw"]
    results, docs_url = run_rules(rows, nameplate, project_dir=config.data_home() / "gx",
                                  run_name=f"day_{context.partition_key.replace('-', '_')}")
    failed = pd.DataFrame([f for r in results for f in r.failed])
    metadata = {
        "sources_validated": len(results),
        "success_pct_by_source": dg.MetadataValue.json({r.source: round(r.success_pct, 1) for r in results}),
        "failed_expectations": _table(failed),
    }
    if docs_url:
        metadata["data_docs"] = dg.MetadataValue.url(docs_url)
    return dg.AssetCheckResult(passed=all(r.success for r in results), severity=dg.AssetCheckSeverity.WARN,
                               metadata=metadata)
