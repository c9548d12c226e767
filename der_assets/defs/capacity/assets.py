"""Capacity in Dagster: site availability and the fleet's capacity estimate, per ISO x delivery year.

`site_availability` reads the registry, the battery telemetry in each sample day's event window
and the dispatch command history, and stores deliverable kW per site and day. `capacity_estimate`
prices those site-days: distribution, accreditation and screening risk, with the loss breakdown
and a plot of the distribution in its metadata. A weekly schedule re-estimates; the registry
sensor's imports and each newly complete month of telemetry re-run them too.
"""

import datetime as dt
import json
import os

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from der_assets.capacity import CapacityInputError, EstimateParams
from der_assets.capacity import accreditation as acc
from der_assets.capacity.availability import Window, site_availability as compute_availability
from der_assets.capacity.estimate import DEFAULT_EFFICIENCY, estimate_from_availability
from der_assets.capacity.plot import distribution_png
from der_assets.capacity.stored import availability_from_rows, availability_rows
from der_assets.defs.plots import plot_metadata
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import _table
from der_assets.registry.store import current_registry
from der_assets.warehouse.bulk import bulk_insert
from der_assets.warehouse.queries import command_history, interval_rows
from der_assets.warehouse.schema import capacity_estimates, capacity_site_days

ISOS = ["ISONE", "NYISO", "PJM"]  # sorted, as enrollment_package's ISO partitions: one dimension, one definition
DELIVERY_YEARS = ["2026-2027", "2027-2028", "2028-2029"]
capacity_partitions = dg.MultiPartitionsDefinition({
    "iso": dg.StaticPartitionsDefinition(ISOS),
    "delivery_year": dg.StaticPartitionsDefinition(DELIVERY_YEARS),
})
HISTORY_DAYS = 400  # the sample is the last summer(s) of history: a little over a year back
MIN_SAMPLE_DAYS = 20  # fewer sample days than this and the P90 rests on two or three days
MAX_UNAVAILABLE_PCT = 50.0  # more than half the site-days unable to deliver anything
DEFAULT_CLASS = {"PJM": "demand_resource", "NYISO": "scr", "ISONE": "active_demand_capacity_resource"}


class CapacitySettings(dg.ConfigurableResource):
    """The operator's capacity choices. Unset fields come from the environment (DER_CAPACITY_*), else the
    CLI's defaults: PJM demand_resource, NYISO scr, ISO-NE active_demand_capacity_resource, 15:00 local for
    one hour, June-September."""

    pjm_class: str | None = None
    nyiso_class: str | None = None
    isone_class: str | None = None
    nyiso_locality: str | None = None
    class_rating: float | None = None
    window_start: str | None = None
    duration_h: float | None = None
    months: str | None = None
    as_of: str | None = None  # ISO date the history ends (default: the platform clock's now)

    def history_end(self, now: pd.Timestamp) -> pd.Timestamp:
        text = self._get("as_of", None)
        return pd.Timestamp(text, tz="UTC") if text else now

    def _get(self, name: str, default: str | None) -> str | None:
        value = getattr(self, name)
        return str(value) if value is not None else os.environ.get(f"DER_CAPACITY_{name.upper()}", default)

    def params(self, iso: str, delivery_year: str) -> EstimateParams:
        cls = self._get(f"{iso.lower()}_class", DEFAULT_CLASS[iso])
        lo, _, hi = (self._get("months", "6-9") or "6-9").partition("-")
        rating = self._get("class_rating", None)
        return EstimateParams(iso=iso, delivery_year=delivery_year, accreditation_class=cls,
                              locality=self._get("nyiso_locality", None) if iso == "NYISO" else None,
                              months=tuple(range(int(lo), int(hi or lo) + 1)),
                              window_start=dt.time.fromisoformat(self._get("window_start", "15:00")),
                              duration_h=float(self._get("duration_h", "1")), efficiency=DEFAULT_EFFICIENCY,
                              class_rating=float(rating) if rating else None)



def _keys(context: dg.AssetExecutionContext) -> tuple[str, str]:
    key = context.partition_key.keys_by_dimension
    return key["iso"], key["delivery_year"].replace("-", "/")


def window_spans(days: list[dt.date], timezones: list[str], window: Window) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """UTC spans covering each day's event window in every time zone, with the interval that ends at its start."""
    spans = []
    for tz in timezones:
        for day in days:
            start = pd.Timestamp(dt.datetime.combine(day, window.window_start)).tz_localize(
                tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
            spans.append((start - pd.Timedelta(hours=1), start + pd.Timedelta(hours=window.duration_h)))
    return spans


def _sample_days(now: pd.Timestamp, months: tuple[int, ...]) -> list[dt.date]:
    first = (now - pd.Timedelta(days=HISTORY_DAYS)).date()
    return [d.date() for d in pd.date_range(first, now.date(), freq="D") if d.month in months]


@dg.asset(
    group_name="capacity",
    partitions_def=capacity_partitions,
    deps=["asset_registry", dg.AssetDep("interval_telemetry", partition_mapping=dg.AllPartitionMapping()),
          dg.AssetDep("device_commands", partition_mapping=dg.AllPartitionMapping())],  # refusals in the command history
    kinds={"pandas", "sql"},
    check_specs=[
        dg.AssetCheckSpec("sample_day_coverage", asset="site_availability", partitions_def=capacity_partitions,
                          description=f"At least {MIN_SAMPLE_DAYS} sample days with battery telemetry."),
        dg.AssetCheckSpec("unavailable_share", asset="site_availability", partitions_def=capacity_partitions,
                          description=f"At most {MAX_UNAVAILABLE_PCT:g} % of site-days deliver nothing."),
    ],
    description="Deliverable kW per site and sample day: SoC at window start, reserve, program limits, "
                "inverter and non-export caps, silent batteries and refusals.",
)
def site_availability(context: dg.AssetExecutionContext, warehouse: WarehouseResource, clock: ClockResource,
                      capacity: CapacitySettings):
    iso, year = _keys(context)
    engine = warehouse.engine()
    params = capacity.params(iso, year)
    window = Window(months=params.months, weekdays_only=params.weekdays_only, window_start=params.window_start,
                    duration_h=params.duration_h, efficiency=params.efficiency)
    registry = current_registry(engine)
    enrolled = registry[registry["iso"] == iso]
    if enrolled.empty:
        raise dg.Failure(f"no site in the registry is enrolled in {iso}")
    now = capacity.history_end(clock.clock().now())
    days = _sample_days(now, params.months)
    spans = window_spans(days, sorted(enrolled["timezone"].dropna().unique()), window)
    telemetry = interval_rows(engine, spans, channels=["soc_pct", "load_kwh", "pv_kwh", "grid_kwh", "battery_kwh"])
    telemetry = telemetry[telemetry["site_id"].isin(set(enrolled["site_id"]))]
    commands = command_history(engine, now - pd.Timedelta(days=HISTORY_DAYS), now)
    try:
        av = compute_availability(registry, telemetry, iso, window, commands)
    except CapacityInputError as exc:
        raise dg.Failure(f"{iso} {year}: {exc}") from None
    rows = availability_rows(av)
    computed_at = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(capacity_site_days.delete().where(capacity_site_days.c.iso == iso,
                                                       capacity_site_days.c.delivery_year == year))
        bulk_insert(conn, capacity_site_days, rows.drop(columns=["timezone"]).assign(
            iso=iso, delivery_year=year, computed_at=computed_at))
    n_site_days = int(av.deliverable_kw.size)
    unavailable = int((av.deliverable_kw <= 0).sum())
    unavailable_pct = round(100.0 * unavailable / max(1, n_site_days), 2)
    reasons = rows["reason"].value_counts().rename_axis("reason").reset_index(name="site_days")
    yield dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows), "sites": len(av.sites), "sample_days": len(av.days),
        "first_day": str(av.days[0]), "last_day": str(av.days[-1]), "unavailable_site_days": unavailable,
        "reasons": _table(reasons), "warnings": "\n".join(av.warnings) or "none"})
    yield dg.AssetCheckResult(check_name="sample_day_coverage", passed=len(av.days) >= MIN_SAMPLE_DAYS,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"sample_days": len(av.days), "threshold_days": MIN_SAMPLE_DAYS})
    yield dg.AssetCheckResult(check_name="unavailable_share", passed=unavailable_pct <= MAX_UNAVAILABLE_PCT,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"unavailable_pct": unavailable_pct, "threshold_pct": MAX_UNAVAILABLE_PCT,
                                        "by_reason": _table(reasons)})


@dg.asset(
    group_name="capacity",
    partitions_def=capacity_partitions,
    deps=[site_availability, "asset_registry"],
    kinds={"pandas", "sql"},
    check_specs=[dg.AssetCheckSpec("unverified_inputs", asset="capacity_estimate", partitions_def=capacity_partitions,
                                   description="Every rating, price and rate the estimate used is verified.")],
    description="The fleet's deliverable P50/P90, accredited capacity, expected revenue and penalty, and the "
                "recommended commitment, for one ISO and delivery year.",
)
def capacity_estimate(context: dg.AssetExecutionContext, warehouse: WarehouseResource, capacity: CapacitySettings):
    iso, year = _keys(context)
    engine = warehouse.engine()
    t = capacity_site_days
    with engine.connect() as conn:
        rows = pd.DataFrame(conn.execute(sa.select(t).where(t.c.iso == iso, t.c.delivery_year == year)).mappings().all())
    if rows.empty:
        raise dg.Failure(f"no stored site availability for {iso} {year}; materialize site_availability first")
    registry = current_registry(engine).drop_duplicates("site_id").set_index("site_id")
    rows["timezone"] = rows["site_id"].map(registry["timezone"])
    try:
        estimate = estimate_from_availability(availability_from_rows(rows), capacity.params(iso, year))
    except CapacityInputError as exc:
        raise dg.Failure(f"{iso} {year}: {exc}") from None
    s = estimate.summary
    with engine.begin() as conn:
        conn.execute(capacity_estimates.delete().where(capacity_estimates.c.iso == iso,
                                                       capacity_estimates.c.delivery_year == year))
        conn.execute(capacity_estimates.insert().values(
            iso=iso, delivery_year=year, accreditation_class=s["accreditation_class"], n_sites=s["n_sites"],
            n_days=s["n_days"], nameplate_kw=s["nameplate_kw"], deliverable_p50_kw=s["deliverable_p50_kw"],
            deliverable_p90_kw=s["deliverable_p90_kw"], accredited_p90_kw=s["accredited_p90_kw"],
            recommended_commit_kw=s["recommended_commit_kw"], summary_json=json.dumps(s),
            computed_at=dt.datetime.now(dt.UTC)))
    plot = plot_metadata("distribution", distribution_png(estimate), asset="capacity_estimate",
                         partition=f"{iso}_{year}", alt="deliverable kW distribution")
    unverified = [w for w in estimate.warnings if w.startswith("unverified")]
    yield dg.MaterializeResult(metadata={
        **{k: v for k, v in s.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "class_rating_source": s["class_rating_source"], "accreditation_class": s["accreditation_class"],
        "losses": _table(estimate.losses.round(3)), "by_group": _table(estimate.by_group.round(3)),
        **plot, "warnings": "\n".join(estimate.warnings) or "none"})
    yield dg.AssetCheckResult(check_name="unverified_inputs", passed=not unverified, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"unverified": "\n".join(unverified) or "none",
                                        "class_rating_verified": bool(s["class_rating_verified"])})


capacity_job = dg.define_asset_job("estimate_capacity", selection=[site_availability, capacity_estimate])


def _enrolled_partitions(engine) -> list[str]:
    registry = current_registry(engine)
    isos = [i for i in ISOS if (registry["iso"] == i).any()] if not registry.empty else []
    return [dg.MultiPartitionKey({"iso": iso, "delivery_year": year}) for iso in isos for year in DELIVERY_YEARS
            if _rating_known(iso, year)]


def _rating_known(iso: str, delivery_year: str) -> bool:
    """A delivery year the shipped data (or the operator's rating) can accredit for the configured class."""
    settings = CapacitySettings()
    try:
        params = settings.params(iso, delivery_year.replace("-", "/"))
        acc.class_rating(iso, params.delivery_year, params.accreditation_class, params.locality, params.class_rating)
    except (CapacityInputError, ValueError):
        return False
    return True


@dg.schedule(cron_schedule="0 6 * * 1", job=capacity_job, default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Every Monday 06:00 UTC: re-estimate every enrolled ISO's delivery years.")
def capacity_schedule(context: dg.ScheduleEvaluationContext, warehouse: WarehouseResource):
    keys = _enrolled_partitions(warehouse.engine())
    if not keys:
        return dg.SkipReason("no site is enrolled in any ISO, or no class rating is known")
    stamp = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [dg.RunRequest(partition_key=k, run_key=f"capacity:{k}:{stamp}") for k in keys]


@dg.sensor(job=capacity_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Re-estimate when the registry changes or a month of telemetry completes.")
def capacity_inputs_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Cursor: the last asset_registry materialization and the last complete telemetry month seen."""
    cursor = json.loads(context.cursor) if context.cursor else {"registry": None, "month": None}
    registry_events = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("asset_registry"), after_storage_id=cursor["registry"]),
        limit=1, ascending=False)
    telemetry = context.instance.fetch_materializations(dg.AssetKey("interval_telemetry"), limit=1, ascending=False)
    latest_day = telemetry.records[0].partition_key if telemetry.records else None
    month = None  # the latest calendar month whose every day is in (its last day materialized)
    if latest_day:
        day = dt.date.fromisoformat(latest_day)
        last_of_month = (day + dt.timedelta(days=1)).month != day.month
        month = (day if last_of_month else day.replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    reasons = []
    if registry_events.records:
        reasons.append(f"registry:{registry_events.records[0].storage_id}")
        cursor["registry"] = registry_events.records[0].storage_id
    if month and month != cursor["month"]:
        reasons.append(f"telemetry:{month}")
        cursor["month"] = month
    if not reasons:
        return dg.SensorResult(skip_reason="no registry change and no newly complete month of telemetry",
                               cursor=json.dumps(cursor))
    keys = _enrolled_partitions(warehouse.engine())
    tag = "+".join(reasons)
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=k, run_key=f"capacity:{k}:{tag}") for k in keys],
                           cursor=json.dumps(cursor))
