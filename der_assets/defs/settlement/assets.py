"""Settlement in Dagster, one partition per calendar month (UTC) of event intervals.

- `iso_statement`: every statement landed raw (the statement inbox sensor lands them) re-read from
  its bytes; the month's lines, checked against the registry's resources and the month's events.
- `event_baselines`: each dispatch event of the month settled at the meters: customer baseline, load
  and reduction per meter and interval, from AMI (meter_intervals), else the calibrated vendor
  estimate (reconciled_intervals), flagged; a meter with neither is counted missing, never zero.
- `settlement_reconciliation`: every statement line recomputed and classified, dollars at stake,
  a dispute package per discrepancy under $DER_HOME/settlement/<month>/.

Events are the month's dispatch instructions (not cancelled). Their baseline method and rate come
from `SettlementSettings` (DER_SETTLEMENT_METHOD_<ISO>, DER_SETTLEMENT_RATE_USD_MWH_<ISO>); ISO
market time is Eastern prevailing time for PJM, NYISO and ISO-NE alike.
"""

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from der_assets import config
from der_assets.connectors.landing import mark, read_payload
from der_assets.defs.plots import plot_metadata
from der_assets.defs.resources import WarehouseResource
from der_assets.defs.telemetry.assets import _table
from der_assets.errors import UserError
from der_assets.registry.resources import site_resource
from der_assets.registry.store import current_registry
from der_assets.settlement.events import Event
from der_assets.settlement.performance import calibrated_estimate, meter_frame_from_canonical, metered_performance
from der_assets.settlement.reconcile import reconcile
from der_assets.settlement.statements import STATEMENT_SOURCE, one_line
from der_assets.settlement.statements.template import parse_statement
from der_assets.warehouse.bulk import bulk_insert
from der_assets.warehouse.queries import instructions_between, interval_rows
from der_assets.warehouse.schema import event_baselines as baselines_table
from der_assets.warehouse.schema import raw_payloads, reconciled_intervals, settlement_discrepancies, statement_lines

monthly = dg.MonthlyPartitionsDefinition(start_date="2026-01-01", end_offset=1)
ISO_MARKET_TZ = "America/New_York"  # PJM, NYISO and ISO-NE settle in Eastern prevailing time
DEFAULT_METHOD = {"PJM": "pjm_same_day_3_2", "NYISO": "nyiso_average_day", "ISONE": "isone_mean_10_of_10"}
METER_LOOKBACK = pd.Timedelta(days=70)  # covers the longest baseline lookback in the rule parameters
# the month's meter days and those of the three months before it (the lookback), as lineage
METER_MONTHS = dg.TimeWindowPartitionMapping(start_offset=-3)
MAX_UNEXPLAINED_USD = 100.0


class SettlementSettings(dg.ConfigurableResource):
    """Baseline method, event rate and the unexplained-dollars threshold; unset fields come from
    DER_SETTLEMENT_METHOD_<ISO>, DER_SETTLEMENT_RATE_USD_MWH_<ISO> and DER_SETTLEMENT_MAX_UNEXPLAINED_USD."""

    max_unexplained_usd: float | None = None
    methods: dict[str, str] | None = None
    rates_usd_per_mwh: dict[str, float] | None = None

    def method(self, iso: str) -> str:
        return (self.methods or {}).get(iso) or os.environ.get(f"DER_SETTLEMENT_METHOD_{iso}", DEFAULT_METHOD[iso])

    def rate(self, iso: str) -> float | None:
        if self.rates_usd_per_mwh and iso in self.rates_usd_per_mwh:
            return float(self.rates_usd_per_mwh[iso])
        text = os.environ.get(f"DER_SETTLEMENT_RATE_USD_MWH_{iso}")
        return float(text) if text else None

    def threshold_usd(self) -> float:
        if self.max_unexplained_usd is not None:
            return self.max_unexplained_usd
        return float(os.environ.get("DER_SETTLEMENT_MAX_UNEXPLAINED_USD", MAX_UNEXPLAINED_USD))



def month_bounds(key: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(key, tz="UTC")
    return start, start + pd.offsets.MonthBegin(1)


def month_events(engine, key: str, settings: SettlementSettings) -> list[Event]:
    """The month's dispatch events (not cancelled) as settlement events, each with its method and rate."""
    start, end = month_bounds(key)
    rows = instructions_between(engine, start, end)
    rows = rows[rows["status"] != "cancelled"]
    days = sorted({t.tz_convert(ISO_MARKET_TZ).date() for t in rows["start"]})
    events = []
    for r in rows.itertuples():
        iso = r.iso.upper()
        own = r.start.tz_convert(ISO_MARKET_TZ).date()
        events.append(Event(event_id=r.instruction_id, iso=iso, start=r.start, end=r.end, timezone=ISO_MARKET_TZ,
                            notified_at=r.issued_at, other_event_days=tuple(d for d in days if d != own),
                            rate_usd_per_mwh=settings.rate(iso), method=settings.method(iso)))
    return events


def _meter(engine, key: str, registry: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The month's AMI (with the baseline lookback) as METER.csv rows, and the calibrated vendor estimate."""
    start, end = month_bounds(key)
    spans = [(start - METER_LOOKBACK, end + pd.Timedelta(days=1))]
    ami = interval_rows(engine, spans, channels=["grid_kwh"], sources=["ami"])
    reconciled = interval_rows(engine, spans, channels=["grid_kwh"], table=reconciled_intervals)
    estimate = calibrated_estimate(reconciled, registry) if not reconciled.empty else None
    return meter_frame_from_canonical(ami, registry), estimate


def _landed_statements(engine) -> list[dict]:
    t = raw_payloads
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(t).where(t.c.source == STATEMENT_SOURCE,
                                                                 t.c.status == "parsed").order_by(t.c.payload_id)).mappings()]


def _read_lines(engine, key: str, registry: pd.DataFrame, events: list[Event]) -> tuple[pd.DataFrame, list[dict]]:
    """Lines of every parsed statement whose intervals fall in the month (latest statement wins a line)."""
    start, end = month_bounds(key)
    resources = set(site_resource(registry)) if not registry.empty else set()
    by_id = {e.event_id: e for e in events}
    frames, rejected = [], []
    for row in _landed_statements(engine):
        content = read_payload(row["sha256"])
        try:
            lines = parse_statement(content, name=row["endpoint"], resources=resources)
        except UserError as exc:
            mark(engine, row["payload_id"], "quarantined", one_line(exc))
            rejected.append({"payload_id": row["payload_id"], "file": row["endpoint"], "error": one_line(exc)})
            continue
        inside = lines[(lines["interval_start"] >= start) & (lines["interval_start"] < end)]
        unknown = sorted(set(inside["event_id"]) - set(by_id))
        if unknown:
            error = f"{row['endpoint']}: event(s) {', '.join(unknown)} are not dispatch events of {key}"
            mark(engine, row["payload_id"], "quarantined", error)
            rejected.append({"payload_id": row["payload_id"], "file": row["endpoint"], "error": error})
            continue
        frames.append(inside.assign(raw_sha256=row["sha256"], payload_id=row["payload_id"]))
    if not frames:
        return pd.DataFrame(columns=[c.name for c in statement_lines.columns]), rejected
    lines = pd.concat(frames, ignore_index=True).sort_values("payload_id")
    lines = lines.drop_duplicates(["statement_id", "resource_id", "event_id", "interval_start"], keep="last")
    return lines.drop(columns=["payload_id"]).reset_index(drop=True), rejected


@dg.asset(
    group_name="settlement",
    partitions_def=monthly,
    kinds={"pandas", "sql"},
    deps=["asset_registry"],  # a line's resource must be one of the registry's
    check_specs=[dg.AssetCheckSpec("statements_parsed", asset="iso_statement", partitions_def=monthly, blocking=True,
                                   description="Every landed statement with lines in the month reads cleanly.")],
    description="ISO statement lines for the month, re-read from the raw statements landed by the inbox sensor.",
)
def iso_statement(context: dg.AssetExecutionContext, warehouse: WarehouseResource, settlement: SettlementSettings):
    engine = warehouse.engine()
    registry = current_registry(engine)
    events = month_events(engine, context.partition_key, settlement)
    lines, rejected = _read_lines(engine, context.partition_key, registry, events)
    columns = [c.name for c in statement_lines.columns]
    with engine.begin() as conn:
        conn.execute(statement_lines.delete().where(statement_lines.c.month == context.partition_key[:7]))
        bulk_insert(conn, statement_lines, lines.assign(month=context.partition_key[:7]).reindex(columns=columns))
    yield dg.MaterializeResult(metadata={"dagster/row_count": len(lines), "statements": int(lines["raw_sha256"].nunique())
                                         if len(lines) else 0, "events": len(events),
                                         "amount_usd": round(float(lines["amount_usd"].sum()), 2) if len(lines) else 0.0})
    yield dg.AssetCheckResult(check_name="statements_parsed", passed=not rejected, severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"rejected": _table(pd.DataFrame(rejected))})


@dg.asset(
    group_name="settlement",
    partitions_def=monthly,
    deps=["asset_registry", dg.AssetDep("meter_intervals", partition_mapping=METER_MONTHS),
          dg.AssetDep("reconciled_intervals", partition_mapping=METER_MONTHS)],
    kinds={"pandas", "sql"},
    check_specs=[dg.AssetCheckSpec("ami_complete", asset="event_baselines", partitions_def=monthly,
                                   description="Every enrolled site has AMI for every event interval it is settled on.")],
    description="Each event's customer baseline, metered load and reduction per meter and interval, from AMI.",
)
def event_baselines(context: dg.AssetExecutionContext, warehouse: WarehouseResource, settlement: SettlementSettings):
    engine = warehouse.engine()
    key = context.partition_key
    registry = current_registry(engine)
    events = month_events(engine, key, settlement)
    meter, estimate = _meter(engine, key, registry)
    perf = metered_performance(meter, events, registry, estimate=estimate) if events else None
    computed_at = dt.datetime.now(dt.UTC)
    rows = pd.DataFrame(columns=[c.name for c in baselines_table.columns])
    if perf is not None and not perf.sites.empty:
        s = perf.sites
        method = {e.event_id: e.method for e in events}
        rows = pd.DataFrame({"month": key[:7], "event_id": s["event_id"], "resource_id": s["resource_id"],
                             "site_id": s["site_id"], "meter_id": s["meter_id"].fillna(s["site_id"]),
                             "interval_start": s["interval_start"], "interval_s": s["interval_s"],
                             "method": s["event_id"].map(method), "baseline_kw": s["baseline_kw"],
                             "load_kw": s["load_kw"], "reduction_kw": s["reduction_kw"], "computed_at": computed_at})
    with engine.begin() as conn:
        conn.execute(baselines_table.delete().where(baselines_table.c.month == key[:7]))
        bulk_insert(conn, baselines_table, rows)
    basis = perf.sites["basis"].value_counts().to_dict() if perf is not None and not perf.sites.empty else {}
    missing = (perf.sites[perf.sites["basis"] != "ami"] if perf is not None and not perf.sites.empty
               else pd.DataFrame(columns=["event_id", "site_id", "interval_start", "basis"]))
    yield dg.MaterializeResult(metadata={"dagster/row_count": len(rows), "events": len(events),
                                         "intervals_ami": int(basis.get("ami", 0)),
                                         "intervals_estimated": int(basis.get("estimated", 0)),
                                         "intervals_missing": int(basis.get("missing", 0)),
                                         "warnings": "\n".join(perf.warnings) if perf is not None else "no event"})
    yield dg.AssetCheckResult(check_name="ami_complete", passed=missing.empty, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"site_intervals_without_ami": len(missing),
                                        "sites": _table(missing[["event_id", "site_id", "interval_start", "basis"]])})


def _usd_plot(by_class: dict) -> bytes:
    """US$ at stake per discrepancy class, as PNG bytes (700 x 320 px)."""
    from der_assets.figures import figure_png, pyplot

    plt = pyplot()
    names = list(by_class)
    values = [by_class[n].get("usd_at_stake", 0.0) or 0.0 for n in names]
    counts = [by_class[n].get("n", 0) for n in names]
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    ax.barh(names, values, color=["#e45756" if v < 0 else "#4c78a8" for v in values])
    for i, (v, n) in enumerate(zip(values, counts, strict=True)):
        ax.annotate(f"{n} line(s), ${v:,.2f}", (v, i), fontsize=8, va="center")
    ax.axvline(0, color="#333333", linewidth=0.8)
    ax.set_xlabel("US$ at stake (+ the ISO owes us)")
    fig.tight_layout()
    return figure_png(fig)


@dg.asset(
    group_name="settlement",
    partitions_def=monthly,
    deps=[iso_statement, event_baselines, "asset_registry", dg.AssetDep("meter_intervals", partition_mapping=METER_MONTHS),
          dg.AssetDep("reconciled_intervals", partition_mapping=METER_MONTHS)],
    kinds={"pandas", "sql", "html"},
    check_specs=[dg.AssetCheckSpec("unexplained_usd", asset="settlement_reconciliation", partitions_def=monthly,
                                   description="The dollars in discrepancies stay under the operator's threshold."),
                 dg.AssetCheckSpec("ami_for_settled_events", asset="settlement_reconciliation",
                                   partitions_def=monthly,
                                   description="No settled event line lacks AMI for a site it counts.")],
    description="Every statement line recomputed from the meters and classified; dispute packages per discrepancy.",
)
def settlement_reconciliation(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                              settlement: SettlementSettings):
    engine = warehouse.engine()
    key = context.partition_key
    registry = current_registry(engine)
    events = month_events(engine, key, settlement)
    t = statement_lines
    with engine.connect() as conn:
        lines = pd.DataFrame(conn.execute(sa.select(t).where(t.c.month == key[:7])).mappings().all(),
                             columns=[c.name for c in t.columns])
    lines["interval_start"] = pd.to_datetime(lines["interval_start"], utc=True)
    lines = lines.drop(columns=["month", "raw_sha256"])
    lines["row"] = range(2, len(lines) + 2)
    meter, estimate = _meter(engine, key, registry)
    rec = reconcile(lines, meter, events, registry, estimate=estimate)
    computed_at = dt.datetime.now(dt.UTC)
    disc = rec.discrepancies
    with engine.begin() as conn:
        conn.execute(settlement_discrepancies.delete().where(settlement_discrepancies.c.month == key[:7]))
        bulk_insert(conn, settlement_discrepancies, disc.assign(month=key[:7], computed_at=computed_at)
                    .reindex(columns=[c.name for c in settlement_discrepancies.columns]))
    out = config.data_home() / "settlement" / key[:7]
    if not disc.empty:
        from der_assets.settlement.dispute import write_packages

        staging = Path(tempfile.mkdtemp(prefix=f".{key[:7]}-", dir=out.parent if out.parent.exists() else None))
        write_packages(rec, staging)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        staging.replace(out)
    s = rec.summary
    unexplained = float(disc["usd_at_stake"].abs().sum()) if not disc.empty else 0.0
    missing_ami = disc[disc["class"] == "missing_ami"] if not disc.empty else disc
    yield dg.MaterializeResult(metadata={
        "n_lines": s["n_lines"], "matched": s["matched"], "discrepancies": s["discrepancies"],
        "usd_at_stake": s["usd_at_stake"], "by_class": json.dumps(s["by_class"]),
        "discrepancy_table": _table(disc.drop(columns=["evidence"], errors="ignore")),
        **plot_metadata("usd_by_class", _usd_plot(s["by_class"]), asset="settlement_reconciliation", partition=key,
                        alt="dollars at stake by class"),
        "dispute_packages": dg.MetadataValue.path(str(out)),
        "warnings": "\n".join(rec.warnings) or "none"})
    threshold = settlement.threshold_usd()
    yield dg.AssetCheckResult(check_name="unexplained_usd", passed=unexplained <= threshold,
                              severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"unexplained_usd": round(unexplained, 2), "threshold_usd": threshold})
    yield dg.AssetCheckResult(check_name="ami_for_settled_events", passed=missing_ami.empty,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"lines_missing_ami": len(missing_ami),
                                        "lines": _table(missing_ami.drop(columns=["evidence"], errors="ignore"))})


settle_month_job = dg.define_asset_job("settle_month",
                                       selection=[iso_statement, event_baselines, settlement_reconciliation])
