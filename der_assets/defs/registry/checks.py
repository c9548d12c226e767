"""ISO-enrollment completeness checks on asset_registry: the same rules as `der registry validate`."""


import dagster as dg

from der_assets.defs.registry.assets import asset_registry
from der_assets.defs.resources import WarehouseResource
from der_assets.registry.completeness import RULES, evaluate
from der_assets.registry.store import current_registry

# Integrity problems are errors; missing enrollment data is a warning an operator works down.
ERROR_RULES = {"unique_device_serials", "plausible_battery_ratings", "valid_time_zones"}
MAX_ROWS_SHOWN = 100


@dg.multi_asset_check(
    specs=[dg.AssetCheckSpec(rule.name, asset=asset_registry, description=rule.description) for rule in RULES],
    description="ISO-enrollment completeness of the current registry.",
)
def registry_completeness(warehouse: WarehouseResource):
    problems = evaluate(current_registry(warehouse.engine()))
    for rule in RULES:
        failing = problems[problems["rule"] == rule.name]
        shown = failing.head(MAX_ROWS_SHOWN)
        yield dg.AssetCheckResult(
            check_name=rule.name,
            asset_key=asset_registry.key,
            passed=failing.empty,
            severity=dg.AssetCheckSeverity.ERROR if rule.name in ERROR_RULES else dg.AssetCheckSeverity.WARN,
            metadata={
                "num_problems": len(failing),
                "problems": dg.MetadataValue.table(
                    records=[dg.TableRecord({"entity": r.entity, "key": r.key, "column": r.column, "problem": r.problem})
                             for r in shown.itertuples()],
                    schema=dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in ("entity", "key", "column", "problem")]),
                ),
                "truncated": len(failing) > MAX_ROWS_SHOWN,
            },
        )
