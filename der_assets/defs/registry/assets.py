"""The registry in Dagster: the current registry, its ISO inventories, and the trigger on imports."""


import hashlib

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from der_assets import config
from der_assets.atomic import write_csv_atomic
from der_assets.capacity.stored import site_capacity_columns
from der_assets.defs.plots import plot_metadata
from der_assets.defs.resources import WarehouseResource
from der_assets.registry.cell_escape import escape_frame
from der_assets.registry.files import to_text_frame
from der_assets.registry.iso_export import ISO_COLUMNS, iso_inventory, site_inventory
from der_assets.registry.store import current_registry
from der_assets.warehouse.queries import capacity_site_days_for
from der_assets.warehouse.schema import registry_imports

iso_partitions = dg.StaticPartitionsDefinition(sorted(ISO_COLUMNS))
ISO_NAMES = {"ISONE": "ISO-NE", "NYISO": "NYISO", "PJM": "PJM"}
# a new registry version or capacity estimate re-exports; a missing upstream (no estimate yet) does not hold it back
EXPORT_AUTOMATION = ((dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated())
                     .since_last_handled() & ~dg.AutomationCondition.any_deps_in_progress()
                     & ~dg.AutomationCondition.in_progress()).with_label("export when the registry or capacity changes")


def registry_fingerprint(registry: pd.DataFrame) -> str:
    """A content hash of the current registry: equal registries, equal data versions."""
    text = to_text_frame(registry).to_csv(index=False, lineterminator="\n")
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dg.asset(
    group_name="registry",
    kinds={"sql", "pandas"},
    description="The current asset registry: subscribers, sites, meter points and devices (one row per device).",
)
def asset_registry(warehouse: WarehouseResource) -> dg.MaterializeResult:
    engine = warehouse.engine()
    registry = current_registry(engine)
    inventory = site_inventory(registry)
    with engine.connect() as conn:
        last_import = conn.execute(sa.select(sa.func.max(registry_imports.c.import_id))).scalar()
    by_edc = inventory.groupby("edc", dropna=False).size()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(registry),
            "subscribers": int(registry["subscriber_id"].nunique()),
            "sites": int(registry["site_id"].nunique()),
            "devices": len(registry),
            "pv_ac_kw": float(round(inventory["pv_ac_kw"].sum(), 3)),
            "battery_kw": float(round(inventory["battery_kw"].sum(), 3)),
            "battery_kwh": float(round(inventory["battery_kwh"].sum(), 3)),
            "sites_by_edc": dg.MetadataValue.json({str(k): int(v) for k, v in by_edc.items()}),
            "last_import_id": last_import if last_import is not None else 0,
            **_fleet_map(registry),
        },
        data_version=dg.DataVersion(registry_fingerprint(registry)),
    )


def _fleet_map(registry: pd.DataFrame) -> dict:
    """The fleet map (sites by latitude/longitude, coloured by ISO zone, sized by battery kWh) as metadata."""
    from der_assets.registry.plot import plot_fleet_map

    fleet_map = plot_fleet_map(registry)
    return {**plot_metadata("fleet_map", fleet_map.png, asset="asset_registry", alt="fleet map by ISO zone"),
            "sites_without_coordinates": len(fleet_map.unplaced)}


@dg.asset(
    group_name="registry",
    kinds={"csv"},
    deps=[asset_registry, dg.AssetDep("capacity_estimate", partition_mapping=dg.MultiToSingleDimensionPartitionMapping(
        partition_dimension_name="iso"))],
    partitions_def=iso_partitions,
    check_specs=[dg.AssetCheckSpec("sites_enrolled", asset="enrollment_package", partitions_def=iso_partitions,
                                   description="The export lists at least one site, unless the registry has no "
                                               "site in the ISO at all (then it says so).")],
    automation_condition=EXPORT_AUTOMATION,
    description="Per-ISO asset inventory with the data elements the ISO asks of a DER aggregator (docs/iso-export.md), "
                "and each site's deliverable and accredited kW from the ISO's latest capacity estimate.",
)
def enrollment_package(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    iso = context.partition_key
    engine = warehouse.engine()
    registry = current_registry(engine)
    inventory = iso_inventory(registry, iso)
    rows, summary = capacity_site_days_for(engine, iso)
    capacity_columns = ["capacity_delivery_year", "accreditation_class", "deliverable_p50_kw", "deliverable_p90_kw",
                        "accredited_kw"]
    if summary is not None and not rows.empty:
        # a site the estimate did not cover keeps empty capacity cells, never a zero
        inventory = inventory.merge(site_capacity_columns(rows, summary), on="site_id", how="left")
    else:
        inventory = inventory.assign(**{c: None for c in capacity_columns})
    out = config.data_home() / "exports" / f"enrollment_{iso.lower()}.csv"
    write_csv_atomic(escape_frame(inventory), out)  # no text cell runs as a spreadsheet formula
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(inventory),
            "path": dg.MetadataValue.path(str(out)),
            "battery_kw": float(round(inventory["battery_kw"].sum(), 3)) if len(inventory) else 0.0,
        }
    )
    yield sites_enrolled_result(iso, len(inventory), registry)


def sites_enrolled_result(iso: str, exported: int, registry: pd.DataFrame) -> dg.AssetCheckResult:
    """An empty export is never a silent pass: it fails (WARN) when the ISO has sites in the registry, and
    passes saying so when the registry has none there (an ISO the fleet does not operate in)."""
    name = ISO_NAMES.get(iso, iso)
    sites = registry.drop_duplicates("site_id") if not registry.empty else registry
    in_iso = sites[sites["iso"] == iso] if not sites.empty else sites
    by_status = in_iso["site_status"].value_counts().to_dict() if not in_iso.empty else {}
    metadata = {"sites_exported": exported, "registry_sites_in_iso": len(in_iso)}
    if exported:
        return dg.AssetCheckResult(check_name="sites_enrolled", passed=True, metadata=metadata,
                                   description=f"{exported} site(s) enrolled for {name}")
    if in_iso.empty:
        return dg.AssetCheckResult(check_name="sites_enrolled", passed=True, metadata=metadata,
                                   description=f"no sites enrolled for {name}: the registry has no {name} site, "
                                               "so the export is empty by design")
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    return dg.AssetCheckResult(check_name="sites_enrolled", passed=False, severity=dg.AssetCheckSeverity.WARN,
                               metadata=metadata,
                               description=f"no sites enrolled for {name}: the registry's {len(in_iso)} {name} "
                                           f"site(s) are all retired ({statuses})")


registry_automation = dg.AutomationConditionSensorDefinition(
    "registry_automation", target=dg.AssetSelection.assets(enrollment_package),
    default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=60)

registry_job = dg.define_asset_job(
    "registry_refresh", selection=dg.AssetSelection.assets(asset_registry), description="Re-read the registry."
)


@dg.sensor(job=registry_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def registry_import_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Materialize asset_registry after each import that changed the registry."""
    with warehouse.engine().connect() as conn:
        last = conn.execute(sa.select(sa.func.max(registry_imports.c.import_id))).scalar()
    if last is None:
        return dg.SkipReason("the registry has never been imported")
    if context.cursor and int(context.cursor) >= last:
        return dg.SkipReason(f"no import since import {context.cursor}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"registry-import-{last}")], cursor=str(last)
    )
