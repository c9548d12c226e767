"""Dispatch in Dagster: one dynamic partition per instruction; plan, commands, performance."""

import asyncio
import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from der_assets import config
from der_assets.atomic import write_csv_atomic
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import _table
from der_assets.defs.telemetry.partitions import VENDOR_SOURCES
from der_assets.dispatch.adapters import send_setpoint
from der_assets.dispatch.contract import build_problem, plan_frame, summary_dict, validate_fleet, validate_forecast
from der_assets.dispatch.execution import execute_plan
from der_assets.dispatch.fleet_inputs import fleet_from_registry, forecast_from_history
from der_assets.dispatch.intake import store
from der_assets.dispatch.optimizer import solve_fast
from der_assets.dispatch.metered import BASELINE_METHOD, baseline_windows, metered_delivery
from der_assets.dispatch.performance import delivery
from der_assets.notify import alert
from der_assets.registry.store import current_registry
from der_assets.warehouse.bulk import bulk_insert
from der_assets.warehouse.schema import dispatch_commands, dispatch_plans, interval_telemetry
from der_assets.warehouse.schema import event_performance as performance_table
from der_assets.warehouse.schema import event_performance_metered as metered_table

instructions = dg.DynamicPartitionsDefinition(name="instructions")
SOC_MAX_AGE = pd.Timedelta(hours=2)
HISTORY_DAYS = 7
RECOVERY = pd.Timedelta(hours=2)
MIN_DELIVERY_PCT = 95.0
INTAKE_LOOKBACK = dt.timedelta(seconds=60)  # longer than any intake transaction takes to commit


def _telemetry(engine, start: pd.Timestamp, end: pd.Timestamp, channels: list[str]) -> pd.DataFrame:
    t = interval_telemetry
    query = sa.select(t).where(t.c.interval_start >= start.to_pydatetime(), t.c.interval_start < end.to_pydatetime(),
                               t.c.channel.in_(channels), t.c.source.in_(VENDOR_SOURCES))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in t.columns])
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    return frame


def _latest_soc(engine, now: pd.Timestamp) -> pd.Series:
    rows = _telemetry(engine, now - SOC_MAX_AGE, now + pd.Timedelta(minutes=5), ["soc_pct"]).dropna(subset=["value"])
    return rows.sort_values("interval_start").groupby("device_id")["value"].last()


def _instruction(engine, key: str) -> store.StoredInstruction:
    stored = store.latest(engine, key)
    if stored is None:
        raise dg.Failure(f"instruction {key!r} is not in the instruction store")
    return stored


def make_plan(engine, stored: store.StoredInstruction, now: pd.Timestamp, exclude: set[str] = frozenset()):
    """Problem, plan and warnings for an instruction, from the registry, latest SoC and history."""
    instruction = stored.to_instruction()
    registry = current_registry(engine)
    fleet, warnings = fleet_from_registry(registry, _latest_soc(engine, now), resource_id=stored.resource_id)
    if fleet.empty:
        raise dg.Failure(f"instruction {stored.instruction_id}: {'; '.join(warnings)}")
    if exclude:
        fleet["available"] &= ~fleet["battery_id"].isin(exclude)
    index = pd.date_range(instruction.start, instruction.end + RECOVERY, freq=f"{instruction.interval_minutes}min",
                          inclusive="left")
    history = _telemetry(engine, now - pd.Timedelta(days=HISTORY_DAYS), now,
                         ["pv_kwh", "load_kwh", "grid_kwh", "battery_kwh"])
    forecast, more = forecast_from_history(history, registry, index, event_end=instruction.end)
    problem = build_problem(validate_fleet(fleet), validate_forecast(forecast, instruction), instruction)
    return problem, solve_fast(problem), warnings + more + list(problem.warnings or [])


@dg.asset(group_name="dispatch", partitions_def=instructions, kinds={"cvxpy", "sql"},
          check_specs=[dg.AssetCheckSpec("plan_meets_target", asset="dispatch_plan", partitions_def=instructions,
                                         description="The fleet can deliver the whole instruction.")],
          description="Battery setpoints for an instruction: minimum shortfall first, then subscribers and fairness.")
def dispatch_plan(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  clock: ClockResource):
    engine = warehouse.engine()
    stored = _instruction(engine, context.partition_key)
    if stored.status == "cancelled":
        yield dg.MaterializeResult(metadata={"status": "cancelled", "modification": stored.modification})
        yield dg.AssetCheckResult(check_name="plan_meets_target", passed=True, metadata={"status": "cancelled"})
        return
    problem, plan, warnings = make_plan(engine, stored, clock.clock().now())
    frame = plan_frame(problem, plan.setpoint_kw)
    rows = frame.assign(instruction_id=stored.instruction_id, modification=stored.modification,
                        interval_start=pd.to_datetime(frame["interval_start"], utc=True))
    with engine.begin() as conn:
        conn.execute(dispatch_plans.delete().where(dispatch_plans.c.instruction_id == stored.instruction_id,
                                                   dispatch_plans.c.modification == stored.modification))
        bulk_insert(conn, dispatch_plans, rows)
    out = config.data_home() / "dispatch" / stored.instruction_id / f"plan_m{stored.modification}.csv"
    write_csv_atomic(frame, out)
    summary = summary_dict(problem, plan.setpoint_kw, plan.solve_s)
    context.log.info(f"plan {stored.instruction_id} m{stored.modification}: {summary}")
    yield dg.MaterializeResult(metadata={**{k: (v.item() if hasattr(v, "item") else v) for k, v in summary.items()
                                            if not isinstance(v, list)},
                                         "modification": stored.modification, "plan_csv": dg.MetadataValue.path(str(out)),
                                         "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "none")})
    yield dg.AssetCheckResult(check_name="plan_meets_target", passed=summary["shortfall_kwh"] <= 1e-6,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"shortfall_kwh": float(summary["shortfall_kwh"]),
                                        "target_kwh": float(summary["target_kwh"])})


@dg.asset(group_name="dispatch", partitions_def=instructions, deps=[dispatch_plan], kinds={"python", "sql"},
          check_specs=[dg.AssetCheckSpec("all_batteries_acknowledged", asset="device_commands",
                                         partitions_def=instructions,
                                         description="Every commanded battery acknowledged its setpoints.")],
          description="Setpoints sent interval by interval over each vendor's control path; released at the end.")
def device_commands(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                    clock: ClockResource):
    engine = warehouse.engine()
    stored = _instruction(engine, context.partition_key)
    clock = clock.clock()  # the platform clock (the twin's when it replays)
    with engine.connect() as conn:
        plan = pd.DataFrame(conn.execute(sa.select(dispatch_plans).where(
            dispatch_plans.c.instruction_id == stored.instruction_id,
            dispatch_plans.c.modification == stored.modification)).mappings().all())
    registry = current_registry(engine)
    batteries = registry[registry["device_type"] == "battery"].rename(
        columns={"device_id": "battery_id", "telemetry_source": "source"})[["battery_id", "site_id", "source"]]
    if stored.status == "cancelled" or plan.empty:
        plan = pd.DataFrame(columns=["battery_id", "interval_start", "setpoint_kw"])
    instruction = stored.to_instruction()

    def replan(failed: set[str], at: pd.Timestamp) -> pd.DataFrame:
        problem, again, _ = make_plan(engine, stored, clock.now(), exclude=failed)
        frame = plan_frame(problem, again.setpoint_kw)
        return frame[pd.to_datetime(frame["interval_start"], utc=True) >= at]

    def cancelled() -> bool:
        latest = store.latest(engine, stored.instruction_id)
        return latest is None or latest.status == "cancelled" or latest.modification != stored.modification

    report = asyncio.run(execute_plan(plan, batteries, end=instruction.end, interval_s=instruction.interval_minutes * 60,
                                      send=send_setpoint, now=clock.now, sleep=clock.sleep, replan=replan,
                                      cancelled=cancelled, lead_s=config.command_lead_s()))
    acks = report.frame()
    if not acks.empty:
        with engine.begin() as conn:
            bulk_insert(conn, dispatch_commands, acks.rename(columns={"at": "sent_at"}).assign(
                instruction_id=stored.instruction_id, modification=stored.modification))
    failed = acks[~acks["ok"]] if not acks.empty else acks
    yield dg.MaterializeResult(metadata={"commands": len(acks), "failed_batteries": len(report.failed),
                                         "replans": report.replans, "released": len(report.released)})
    yield dg.AssetCheckResult(check_name="all_batteries_acknowledged", passed=not report.failed,
                              severity=dg.AssetCheckSeverity.WARN, metadata={"failures": _table(failed)})


@dg.asset(group_name="dispatch", partitions_def=instructions, deps=[device_commands], kinds={"pandas", "sql"},
          check_specs=[dg.AssetCheckSpec("delivery", asset="event_performance", partitions_def=instructions,
                                         description=f"The fleet delivered at least {MIN_DELIVERY_PCT:g} % of the instruction.")],
          description="Delivered against instructed per interval, from the canonical battery telemetry.")
def event_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    stored = _instruction(engine, context.partition_key)
    instruction = stored.to_instruction()
    commanded = _commanded(engine, stored)
    rows = _telemetry(engine, instruction.start - pd.Timedelta(hours=1), instruction.end, ["battery_kwh"])
    perf = delivery(rows, instruction.interval_start, np.asarray(instruction.target_kw), instruction.interval_minutes,
                    commanded)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(performance_table.delete().where(performance_table.c.instruction_id == stored.instruction_id,
                                                      performance_table.c.modification == stored.modification))
        bulk_insert(conn, performance_table, perf.assign(instruction_id=stored.instruction_id,
                                                         modification=stored.modification, computed_at=now))
    total_pct = float(100.0 * perf["delivered_kwh"].sum() / max(float(perf["instructed_kwh"].sum()), 1e-9))
    if total_pct < MIN_DELIVERY_PCT:
        alert("under_delivery", f"instruction {stored.instruction_id} delivered {total_pct:.1f} %",
              instruction_id=stored.instruction_id, modification=stored.modification,
              delivered_kwh=float(perf["delivered_kwh"].sum()), instructed_kwh=float(perf["instructed_kwh"].sum()))
    yield dg.MaterializeResult(metadata={"delivered_kwh": float(perf["delivered_kwh"].sum()),
                                         "instructed_kwh": float(perf["instructed_kwh"].sum()),
                                         "delivered_pct": round(total_pct, 2), "batteries": len(commanded)})
    yield dg.AssetCheckResult(check_name="delivery", passed=total_pct >= MIN_DELIVERY_PCT,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"delivered_pct": round(total_pct, 2), "per_interval": _table(perf)})


def _commanded(engine, stored: store.StoredInstruction, column: str = "battery_id") -> list[str]:
    """Batteries (or, with column="site_id", their sites) that acknowledged a discharge setpoint
    for this modification."""
    with engine.connect() as conn:
        return sorted(set(conn.execute(sa.select(dispatch_commands.c[column]).where(
            dispatch_commands.c.instruction_id == stored.instruction_id,
            dispatch_commands.c.modification == stored.modification,
            dispatch_commands.c.setpoint_kw > 0, dispatch_commands.c.ok.is_(True))).scalars()))


def _ami_grid(engine, sites: list[str], start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    t = interval_telemetry
    query = sa.select(t).where(t.c.source == "ami", t.c.channel == "grid_kwh", t.c.site_id.in_(sites),
                               t.c.interval_start >= start.to_pydatetime(), t.c.interval_start < end.to_pydatetime())
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in t.columns])
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    return frame


@dg.asset(group_name="dispatch", partitions_def=instructions, deps=[event_performance], kinds={"pandas", "sql"},
          check_specs=[dg.AssetCheckSpec("metered_delivery", asset="metered_performance", partitions_def=instructions,
                                         description=f"At the meters, against the {BASELINE_METHOD} baseline, the "
                                                     f"commanded sites delivered at least {MIN_DELIVERY_PCT:g} % "
                                                     "and every one of them has AMI data.")],
          description="Final performance at the utility meters (AMI) against a same-day customer baseline; "
                      "recomputed each time AMI data for the event's days arrives.")
def metered_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    engine = warehouse.engine()
    stored = _instruction(engine, context.partition_key)
    instruction = stored.to_instruction()
    sites = _commanded(engine, stored, "site_id")
    windows = baseline_windows(instruction.start, instruction.end)
    ami = _ami_grid(engine, sites, windows[0][0], windows[1][1])
    perf = metered_delivery(ami, sites, instruction.interval_start, np.asarray(instruction.target_kw),
                            instruction.interval_minutes)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(metered_table.delete().where(metered_table.c.instruction_id == stored.instruction_id,
                                                  metered_table.c.modification == stored.modification))
        bulk_insert(conn, metered_table, perf.assign(instruction_id=stored.instruction_id, modification=stored.modification,
                                                     baseline_method=BASELINE_METHOD, computed_at=now))
    instructed = float(perf["instructed_kwh"].sum())
    reduction = float(perf["reduction_kwh"].sum())
    total_pct = round(100.0 * reduction / max(instructed, 1e-9), 2)
    missing = int(perf["sites_missing"].max()) if len(perf) else len(sites)
    yield dg.MaterializeResult(metadata={"reduction_kwh": reduction, "instructed_kwh": instructed,
                                         "delivered_pct": total_pct, "sites": len(sites), "sites_missing": missing,
                                         "baseline_method": BASELINE_METHOD})
    yield dg.AssetCheckResult(check_name="metered_delivery", passed=bool(total_pct >= MIN_DELIVERY_PCT and missing == 0),
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"delivered_pct": total_pct, "sites_missing": missing,
                                        "per_interval": _table(perf)})


dispatch_job = dg.define_asset_job("dispatch", selection=dg.AssetSelection.assets(
    dispatch_plan, device_commands, event_performance), tags={"der/vendor": "dispatch"})


@dg.sensor(job=dispatch_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def dispatch_instruction_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """A run within seconds of each new, modified or cancelled instruction (one partition per instruction).

    Rows are re-read for INTAKE_LOOKBACK behind the cursor, so an instruction whose transaction
    committed after a later one was already seen still gets its run; a run key runs only once.
    """
    pending = store.pending(warehouse.engine(), context.cursor, lookback=INTAKE_LOOKBACK)
    cursor = store.later_cursor(context.cursor, pending[-1].cursor if pending else None)
    if not pending:
        return dg.SkipReason("no new instruction")
    keys = sorted({p.instruction_id for p in pending})
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=p.instruction_id,
                                    run_key=f"{p.instruction_id}:{p.modification}:{p.status}")
                      for p in pending if p.status in ("active", "cancelled")],
        dynamic_partitions_requests=[instructions.build_add_request(keys)],
        cursor=cursor,
    )


metered_job = dg.define_asset_job("settle_on_meters", selection=dg.AssetSelection.assets(metered_performance))


@dg.sensor(job=metered_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def ami_performance_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Each day of AMI data that lands (a meter_intervals materialization) re-settles the events it
    can measure: their baseline windows reach four hours before and three after the event."""
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("meter_intervals"), after_storage_id=after), limit=200,
        ascending=True)
    if not found.records:
        return dg.SkipReason("no new day of AMI data")
    requests, days = [], []
    for record in found.records:
        day = record.partition_key
        if not day:
            continue
        days.append(day)
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        for e in store.overlapping(warehouse.engine(), start, start + dt.timedelta(days=1), pad=dt.timedelta(hours=4)):
            requests.append(dg.RunRequest(partition_key=e.instruction_id,
                                          run_key=f"{e.instruction_id}:{e.modification}:ami:{day}:{record.storage_id}"))
    cursor = str(found.records[-1].storage_id)
    if not requests:
        return dg.SensorResult(skip_reason=f"no dispatch event near {', '.join(days) or 'an unpartitioned run'}",
                               cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
