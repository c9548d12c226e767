"""The operators' Great Expectations rules, evaluated inside every interval_telemetry materialization.

It was a separate @asset_check op downstream of the asset, so whenever a blocking check of the
asset failed (a quarantined payload on any twin day with faults) Dagster skipped it and the UI
showed "Not evaluated" on every run. Yielded from the asset's own op, it is evaluated with each
materialization, and a GX failure of its own is reported as a failed check, never a failed run.
"""

import dagster as dg
import pandas as pd

from der_assets import config
from der_assets.telemetry.gx_rules import run_rules

CHECK_NAME = "operator_rules_gx"


def operator_rules_spec(asset: str, partitions_def: dg.PartitionsDefinition) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(CHECK_NAME, asset=asset, partitions_def=partitions_def, blocking=False,
                             description="Operators' rules (der_assets/telemetry/expectations/*.json) with Great "
                                         "Expectations; the Data Docs report is linked in the metadata.")


def operator_rules_result(asset_key: dg.AssetKey, partition_key: str, rows: pd.DataFrame,
                          registry: pd.DataFrame) -> dg.AssetCheckResult:
    """The day's rows against every source's suite, as a WARN check with the failed expectations."""
    from der_assets.defs.telemetry.assets import _table

    nameplate = registry.drop_duplicates("device_id").set_index("device_id")["rated_kw"]
    try:
        results, docs_url = run_rules(rows, nameplate, project_dir=config.data_home() / "gx",
                                      run_name=f"day_{partition_key.replace('-', '_')}")
    except Exception as exc:  # noqa: BLE001 - a broken rule file fails the check, not the day's data
        return dg.AssetCheckResult(asset_key=asset_key, check_name=CHECK_NAME, passed=False,
                                   severity=dg.AssetCheckSeverity.WARN,
                                   description=f"Great Expectations could not run: {type(exc).__name__}: {exc}"[:500])
    failed = pd.DataFrame([f for r in results for f in r.failed])
    metadata = {
        "sources_validated": len(results),
        "success_pct_by_source": dg.MetadataValue.json({r.source: round(r.success_pct, 1) for r in results}),
        "failed_expectations": _table(failed),
    }
    if docs_url:
        metadata["data_docs"] = dg.MetadataValue.url(docs_url)
    return dg.AssetCheckResult(asset_key=asset_key, check_name=CHECK_NAME, passed=all(r.success for r in results),
                               severity=dg.AssetCheckSeverity.WARN, metadata=metadata)
