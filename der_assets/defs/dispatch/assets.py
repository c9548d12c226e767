"""Dispatch in Dagster: one dynamic partition per instruction; plan, commands, performance.

Lineage: the plan reads the registry and the latest day of interval_telemetry (SoC, history),
the commands the registry, the event's measurement interval_telemetry, and the settlement at
the meters meter_intervals; each is declared, so the graph is the data flow. Instructions are
dynamic partitions and days are time windows: Dagster has no mapping from an instruction to
the days its event touches, so the plan's edge uses the latest day (a plan is made for now, from
the newest telemetry) and the measurements' edges every day (an event is measured from its own
days, which the lineage cannot name).

Status: the dynamic partitions start empty, and nothing here materializes a dispatch asset
without an instruction (no automation condition, no schedule, no unpartitioned job). The UI
draws an asset with no partitions at all as "0 partitions" in green, since none is missing. A
check that should stop a run (no plan, no battery reachable) is blocking with ERROR severity,
which in Dagster 1.13 fails the step and so the run; a shortfall stays a WARN.
"""

import asyncio
import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from der_assets import config
from der_assets.atomic import write_csv_atomic
from der_assets.defs.dispatch.settings import final_after, final_coverage_pct
from der_assets.defs.plots import plot_metadata
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import _table
from der_assets.defs.telemetry.partitions import VENDOR_SOURCES
from der_assets.dispatch.adapters import send_setpoint
from der_assets.dispatch.contract import build_problem, plan_frame, summary_dict, validate_fleet, validate_forecast
from der_assets.dispatch.execution import IntervalProgress, execute_plan
from der_assets.dispatch.fleet_inputs import fleet_from_registry, forecast_from_history
from der_assets.dispatch.intake import store
from der_assets.dispatch.metered import BASELINE_METHOD, baseline_windows, metered_delivery
from der_assets.dispatch.optimizer import solve_fast
from der_assets.dispatch.performance import coverage, delivery, verdict
from der_assets.dispatch.plot import plot_dispatch, soc_bands
from der_assets.notify import alert
from der_assets.registry.store import current_registry
from der_assets.warehouse.bulk import bulk_insert
from der_assets.warehouse.schema import dispatch_commands, dispatch_event_log, dispatch_plans, interval_telemetry
from der_assets.warehouse.schema import event_performance as performance_table
from der_assets.warehouse.schema import event_performance_metered as metered_table

instructions = dg.DynamicPartitionsDefinition(name="instructions")
SOC_MAX_AGE = pd.Timedelta(hours=2)
HISTORY_DAYS = 7
RECOVERY = pd.Timedelta(hours=2)
MIN_DELIVERY_PCT = 95.0
DISPATCH_PRIORITY = "10"  # QueuedRunCoordinator launches higher priorities first
INTAKE_LOOKBACK = dt.timedelta(seconds=60)  # longer than any intake transaction takes to commit
GIVE_UP_LOOKBACK = dt.timedelta(days=7)  # how far back the sensor looks for events still provisional
# check_failure_alerts skips a check whose metadata carries this key: event_performance sends its own
# alert, once per modification and only on a final figure
ALERT_POLICY = "alert_policy"
ALERT_POLICY_TEXT = "event_performance alerts once, on the final figure"

LATEST_DAY = dg.LastPartitionMapping()
EVERY_DAY = dg.AllPartitionMapping()


def _telemetry(engine, start: pd.Timestamp, end: pd.Timestamp, channels: list[str],
               devices: list[str] | None = None) -> pd.DataFrame:
    t = interval_telemetry
    query = sa.select(t).where(t.c.interval_start >= start.to_pydatetime(), t.c.interval_start < end.to_pydatetime(),
                               t.c.channel.in_(channels), t.c.source.in_(VENDOR_SOURCES))
    if devices is not None:
        query = query.where(t.c.device_id.in_(devices))
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


def _instructed_kw(instruction) -> pd.DataFrame:
    return pd.DataFrame({"interval_start": instruction.interval_start,
                         "instructed_kw": np.asarray(instruction.target_kw, dtype=float)})


def _records_table(frame: pd.DataFrame, limit: int = 300) -> dg.MetadataValue:
    """A typed metadata table (numbers stay numbers, times as ISO text): what the UI shows as a table."""
    kinds = {"i": "int", "u": "int", "f": "float", "b": "bool"}
    shown = frame.head(limit)
    columns = [dg.TableColumn(c, kinds.get(shown[c].dtype.kind, "string")) for c in shown.columns]

    def cell(value, kind):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return None
        if kind == "string":
            return value.isoformat() if isinstance(value, (pd.Timestamp, dt.datetime)) else str(value)
        return value.item() if hasattr(value, "item") else value

    records = [dg.TableRecord({c.name: cell(v, c.type) for c, v in zip(columns, row, strict=True)})
               for row in shown.itertuples(index=False)]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


@dg.asset(group_name="dispatch", partitions_def=instructions, kinds={"cvxpy", "sql"},
          deps=["asset_registry", dg.AssetDep("interval_telemetry", partition_mapping=LATEST_DAY)],
          check_specs=[dg.AssetCheckSpec("plan_meets_target", asset="dispatch_plan", partitions_def=instructions,
                                         description="The fleet can deliver the whole instruction."),
                       dg.AssetCheckSpec("plan_exists", asset="dispatch_plan", partitions_def=instructions,
                                         blocking=True,
                                         description="The plan gives some battery a discharge setpoint (when the "
                                                     "instruction asks for any): with none, no command goes out "
                                                     "and the run fails.")],
          description="Battery setpoints for an instruction: minimum shortfall first, then subscribers and fairness.")
def dispatch_plan(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                  clock: ClockResource):
    engine = warehouse.engine()
    stored = _instruction(engine, context.partition_key)
    if stored.status == "cancelled":
        yield dg.MaterializeResult(metadata={"status": "cancelled", "modification": stored.modification})
        yield dg.AssetCheckResult(check_name="plan_meets_target", passed=True, metadata={"status": "cancelled"})
        yield dg.AssetCheckResult(check_name="plan_exists", passed=True, metadata={"status": "cancelled"})
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
    context.log.info(f"plan {stored.instruction_id} m{stored.modification}: {summary['status']}, "
                     f"{summary['planned_kwh']:.1f} of {summary['target_kwh']:.1f} kWh planned over "
                     f"{summary['n_batteries']} batteries, shortfall {summary['shortfall_kwh']:.1f} kWh, "
                     f"solved in {summary['solve_s']:.2f} s")
    picture = _plan_picture(rows, problem, stored)
    yield dg.MaterializeResult(metadata={**{k: (v.item() if hasattr(v, "item") else v) for k, v in summary.items()
                                            if not isinstance(v, list)},
                                         "modification": stored.modification, "plan_csv": dg.MetadataValue.path(str(out)),
                                         "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "none"),
                                         **plot_metadata("planned_vs_instructed", picture, asset="dispatch_plan",
                                                         partition=context.partition_key,
                                                         alt="planned vs instructed kW and planned SoC band")})
    yield dg.AssetCheckResult(check_name="plan_meets_target", passed=summary["shortfall_kwh"] <= 1e-6,
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"shortfall_kwh": float(summary["shortfall_kwh"]),
                                        "target_kwh": float(summary["target_kwh"])})
    discharging = int(frame.loc[frame["setpoint_kw"] > 0, "battery_id"].nunique())
    wanted = float(summary["target_kwh"]) > 1e-6
    yield dg.AssetCheckResult(check_name="plan_exists", passed=bool(discharging > 0 or not wanted),
                              severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"batteries_discharging": discharging,
                                        "planned_kwh": float(summary["planned_kwh"]),
                                        "target_kwh": float(summary["target_kwh"]),
                                        "warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings)
                                                                        or "none")})


def _plan_picture(rows: pd.DataFrame, problem, stored: store.StoredInstruction) -> bytes:
    """Planned against instructed kW, and the planned SoC band of the batteries given a discharge."""
    instruction = stored.to_instruction()
    kw = _instructed_kw(instruction)
    planned = rows.groupby("interval_start")["setpoint_kw"].sum()
    kw["planned_kw"] = kw["interval_start"].map(planned).astype(float)
    capacity = pd.Series(problem.capacity_kwh, index=problem.battery_id)
    used = rows[rows["battery_id"].isin(rows.loc[rows["setpoint_kw"] > 0, "battery_id"].unique())]
    soc_rows = pd.DataFrame({"device_id": used["battery_id"], "channel": "soc_pct",
                             "interval_start": used["interval_start"], "interval_s": instruction.interval_minutes * 60,
                             "value": 100.0 * used["soc_end_kwh"] / used["battery_id"].map(capacity)})
    soc = soc_bands(soc_rows, sorted(used["battery_id"].unique()))
    return plot_dispatch(kw, soc, title=f"{stored.instruction_id} m{stored.modification}: planned "
                                        f"{float(planned.sum() * instruction.interval_minutes / 60):.1f} of "
                                        f"{float(kw['instructed_kw'].sum() * instruction.interval_minutes / 60):.1f} kWh")


class _EventLog:
    """The live event view: each interval's progress as one log line and one dispatch_event_log row."""

    def __init__(self, context, engine, stored: store.StoredInstruction, observe=None):
        """observe(metadata): shows the table so far on the asset while the step runs (an AssetObservation)."""
        self.context, self.engine, self.stored, self.observe = context, engine, stored, observe
        self.instruction = stored.to_instruction()
        self.discharging: set[str] = set()
        self.rows: list[dict] = []
        with engine.begin() as conn:
            conn.execute(dispatch_event_log.delete().where(dispatch_event_log.c.instruction_id == stored.instruction_id,
                                                           dispatch_event_log.c.modification == stored.modification))

    def delivered_so_far(self, until: pd.Timestamp) -> tuple[float | None, float, tuple[int, int]]:
        """Measured delivery, instructed energy and (batteries reporting, discharging) over the event's
        intervals that ended before `until`."""
        ins = self.instruction
        ended = ins.interval_start < until
        instructed = round(float(np.asarray(ins.target_kw, dtype=float)[ended].sum() * ins.interval_minutes / 60), 6)
        batteries = sorted(self.discharging)
        if not ended.any() or not batteries:
            return None, instructed, (0, len(batteries))
        rows = _telemetry(self.engine, ins.start - pd.Timedelta(hours=1), until, ["battery_kwh"], batteries)
        rows = rows[rows["interval_start"] < until]
        perf = delivery(rows, ins.interval_start[ended], np.asarray(ins.target_kw, dtype=float)[ended],
                        ins.interval_minutes, batteries)
        measured = perf["delivered_kwh"].dropna()
        reporting = int(rows.loc[rows["value"].notna(), "device_id"].nunique())
        return (round(float(measured.sum()), 3) if not measured.empty else None), instructed, (reporting, len(batteries))

    def __call__(self, progress: IntervalProgress) -> None:
        self.discharging |= set(progress.discharging)
        try:
            delivered, instructed, reporting = self.delivered_so_far(progress.interval_start)
        except sa.exc.SQLAlchemyError as exc:  # the event goes on without its progress figure
            self.context.log.warning(f"delivered-so-far unavailable: {str(exc).splitlines()[0]}")
            delivered, instructed, reporting = None, None, None
        line = progress.line(delivered, instructed, reporting)
        self.context.log.info(line)
        kw = dict(zip(self.instruction.interval_start, np.asarray(self.instruction.target_kw, dtype=float),
                      strict=True))
        row = {"instruction_id": self.stored.instruction_id, "modification": self.stored.modification,
               "interval_start": progress.interval_start.to_pydatetime(), "logged_at": dt.datetime.now(dt.UTC),
               "setpoints_sent": progress.sent, "acknowledged": progress.acknowledged, "failed": len(progress.failed),
               "failed_batteries": ", ".join(progress.failed) or None, "replans": progress.replanned,
               "commanded_kw": progress.commanded_kw, "instructed_kw": kw.get(progress.interval_start),
               "instructed_so_far_kwh": instructed, "delivered_so_far_kwh": delivered, "line": line}
        # plain Python numbers: psycopg2 would send a numpy float as the text "np.float64(5.4)"
        row = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        self.rows.append(row)
        try:
            with self.engine.begin() as conn:
                conn.execute(dispatch_event_log.delete().where(
                    dispatch_event_log.c.instruction_id == row["instruction_id"],
                    dispatch_event_log.c.modification == row["modification"],
                    dispatch_event_log.c.interval_start == row["interval_start"]))
                conn.execute(dispatch_event_log.insert().values(**row))
        except sa.exc.SQLAlchemyError as exc:
            self.context.log.warning(f"event log row for {progress.interval_start:%H:%MZ} not stored: "
                                     f"{str(exc).splitlines()[0]}")
        if self.observe is not None:
            self.observe({"event_log": _records_table(self.frame()), "last_interval": line})

    def frame(self) -> pd.DataFrame:
        columns = ["interval_start", "setpoints_sent", "acknowledged", "failed", "failed_batteries", "replans",
                   "commanded_kw", "instructed_kw", "instructed_so_far_kwh", "delivered_so_far_kwh"]
        return pd.DataFrame(self.rows, columns=["instruction_id", "modification", "logged_at", "line", *columns])[columns]


@dg.asset(group_name="dispatch", partitions_def=instructions, deps=[dispatch_plan, "asset_registry"],
          kinds={"python", "sql"},
          check_specs=[dg.AssetCheckSpec("all_batteries_acknowledged", asset="device_commands",
                                         partitions_def=instructions,
                                         description="Every commanded battery acknowledged its setpoints."),
                       dg.AssetCheckSpec("commands_reached_fleet", asset="device_commands",
                                         partitions_def=instructions, blocking=True,
                                         description="Some battery acknowledged a discharge setpoint (when the plan "
                                                     "had any): with none, the event was not carried out and the "
                                                     "run fails.")],
          description="Setpoints sent interval by interval over each vendor's control path; released at the end. "
                      "Each interval is logged as it happens and kept in dispatch_event_log.")
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
    event_log = _EventLog(context, engine, stored, observe=lambda metadata: context.log_event(dg.AssetObservation(
        asset_key=context.asset_key, partition=context.partition_key, metadata=metadata)))

    def replan(failed: set[str], at: pd.Timestamp) -> pd.DataFrame:
        problem, again, _ = make_plan(engine, stored, clock.now(), exclude=failed)
        frame = plan_frame(problem, again.setpoint_kw)
        return frame[pd.to_datetime(frame["interval_start"], utc=True) >= at]

    def cancelled() -> bool:
        latest = store.latest(engine, stored.instruction_id)
        return latest is None or latest.status == "cancelled" or latest.modification != stored.modification

    context.log.info(f"{stored.instruction_id} m{stored.modification}: {plan['battery_id'].nunique()} batteries "
                     f"planned, {instruction.start:%Y-%m-%d %H:%MZ} to {instruction.end:%H:%MZ}, "
                     f"setpoints {config.command_lead_s():g} s ahead of each interval")
    report = asyncio.run(execute_plan(plan, batteries, end=instruction.end, interval_s=instruction.interval_minutes * 60,
                                      send=send_setpoint, now=clock.now, sleep=clock.sleep, replan=replan,
                                      cancelled=cancelled, lead_s=config.command_lead_s(), on_interval=event_log))
    acks = report.frame()
    if not acks.empty:
        with engine.begin() as conn:
            bulk_insert(conn, dispatch_commands, acks.rename(columns={"at": "sent_at"}).assign(
                instruction_id=stored.instruction_id, modification=stored.modification))
    failed = acks[~acks["ok"]] if not acks.empty else acks
    discharged = sorted({a.battery_id for a in report.acks if a.ok and a.setpoint_kw})
    context.log.info(f"{stored.instruction_id} m{stored.modification} done: {len(acks)} commands, "
                     f"{len(discharged)} batteries discharged, {len(report.failed)} failed, {report.replans} re-plans, "
                     f"{len(report.released)} released")
    yield dg.MaterializeResult(metadata={"commands": len(acks), "failed_batteries": len(report.failed),
                                         "batteries_discharged": len(discharged),
                                         "replans": report.replans, "released": len(report.released),
                                         "event_log": _records_table(event_log.frame())})
    yield dg.AssetCheckResult(check_name="all_batteries_acknowledged", passed=not report.failed,
                              severity=dg.AssetCheckSeverity.WARN, metadata={"failures": _table(failed)})
    wanted = bool((pd.to_numeric(plan["setpoint_kw"]) > 0).any()) and stored.status != "cancelled"
    yield dg.AssetCheckResult(check_name="commands_reached_fleet", passed=bool(discharged or not wanted),
                              severity=dg.AssetCheckSeverity.ERROR,
                              metadata={"batteries_discharged": len(discharged), "failed_batteries": len(report.failed),
                                        "failures": _table(failed)})


def _latest_performance(instance: dg.DagsterInstance, partition: str) -> dict | None:
    """The last event_performance materialization's status and modification for an instruction, if any."""
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("event_performance"), asset_partitions=[partition]), limit=1)
    if not found.records:
        return None
    metadata = found.records[0].asset_materialization.metadata
    return {k: metadata[k].value for k in ("status", "modification") if k in metadata}


def _previous_alert(engine, stored: store.StoredInstruction):
    t = performance_table
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(t.c.alerted_at)).where(
            t.c.instruction_id == stored.instruction_id, t.c.modification == stored.modification)).scalar()


@dg.asset(group_name="dispatch", partitions_def=instructions, kinds={"pandas", "sql"},
          deps=[device_commands, dg.AssetDep("interval_telemetry", partition_mapping=EVERY_DAY)],
          check_specs=[dg.AssetCheckSpec("delivery", asset="event_performance", partitions_def=instructions,
                                         description=f"The fleet delivered at least {MIN_DELIVERY_PCT:g} % of the "
                                                     "instruction, judged once the telemetry covers the event "
                                                     "(until then the result is provisional, a warning, no alert).")],
          description="Delivered against instructed per interval, from the canonical battery telemetry; provisional "
                      "until the telemetry covers the event, re-run by event_telemetry_sensor as it lands.")
def event_performance(context: dg.AssetExecutionContext, warehouse: WarehouseResource, clock: ClockResource):
    engine = warehouse.engine()
    stored = _instruction(engine, context.partition_key)
    instruction = stored.to_instruction()
    now = clock.clock().now()
    commanded = _commanded(engine, stored)
    step = pd.Timedelta(minutes=instruction.interval_minutes)
    rows = _telemetry(engine, instruction.start - pd.Timedelta(hours=1), instruction.end + step,
                      ["battery_kwh", "soc_pct"], commanded)
    battery_rows = rows[(rows["channel"] == "battery_kwh") & (rows["interval_start"] < instruction.end)]
    perf = delivery(battery_rows, instruction.interval_start, np.asarray(instruction.target_kw), instruction.interval_minutes,
                    commanded)
    per_battery = coverage(battery_rows, instruction.start, instruction.end, commanded)
    judged = verdict(per_battery, threshold_pct=final_coverage_pct(), now=now, event_end=instruction.end,
                     give_up=final_after())
    plan = _stored_plan(engine, stored)
    unmeasured_kwh = _unmeasured_planned_kwh(plan, per_battery, instruction.interval_minutes)
    instructed = float(perf["instructed_kwh"].sum())
    measured = float(perf["delivered_kwh"].sum())  # NaN intervals (nobody reported) add nothing: unknown
    total_pct = round(100.0 * measured / max(instructed, 1e-9), 2)
    short = judged.final and bool(commanded) and stored.status != "cancelled" and total_pct < MIN_DELIVERY_PCT
    alerted_at = _previous_alert(engine, stored)
    if short and alerted_at is None:
        alert("under_delivery", f"instruction {stored.instruction_id} m{stored.modification} delivered "
              f"{total_pct:.1f} % ({measured:.1f} of {instructed:.1f} kWh), final"
              + (f", incomplete: {len(judged.missing)} batteries not fully measured" if judged.incomplete else ""),
              instruction_id=stored.instruction_id, modification=stored.modification, delivered_kwh=measured,
              instructed_kwh=instructed, coverage_pct=judged.coverage_pct, incomplete=judged.incomplete,
              run_id=context.run_id, asset="event_performance", check="delivery")
        alerted_at = dt.datetime.now(dt.UTC)
    stored_rows = perf[perf["delivered_kwh"].notna()].assign(  # an interval nobody reported in has no row
        instruction_id=stored.instruction_id, modification=stored.modification,
        computed_at=dt.datetime.now(dt.UTC), status=judged.status, coverage_pct=judged.coverage_pct,
        incomplete=judged.incomplete, alerted_at=alerted_at)
    with engine.begin() as conn:
        conn.execute(performance_table.delete().where(performance_table.c.instruction_id == stored.instruction_id,
                                                      performance_table.c.modification == stored.modification))
        bulk_insert(conn, performance_table, stored_rows)
    context.log.info(f"{stored.instruction_id} m{stored.modification}: {judged.status}"
                     f"{' (incomplete)' if judged.incomplete else ''}, telemetry covers {judged.coverage_pct:.1f} % "
                     f"of {len(commanded)} batteries' event time, {len(judged.missing)} not fully measured; "
                     f"measured delivery {measured:.1f} of {instructed:.1f} kWh ({total_pct:.1f} %), "
                     f"{unmeasured_kwh:.1f} kWh planned for battery-time not yet measured")
    missing = dg.MetadataValue.md("\n".join(f"- {b}" for b in judged.missing[:100])
                                  + (f"\n- ... {len(judged.missing) - 100} more" if len(judged.missing) > 100 else "")
                                  or "none")
    kw = _instructed_kw(instruction).assign(
        planned_kw=lambda f: f["interval_start"].map(plan.groupby("interval_start")["setpoint_kw"].sum()).astype(float),
        delivered_kw=perf["delivered_kwh"].to_numpy(dtype=float) / (instruction.interval_minutes / 60))
    picture = plot_dispatch(kw, soc_bands(rows, commanded),
                            title=f"{stored.instruction_id} m{stored.modification}: {judged.status}, "
                                  f"telemetry {judged.coverage_pct:.0f} %, delivered {total_pct:.1f} %")
    common = {"status": judged.status, "coverage_pct": judged.coverage_pct, "incomplete": judged.incomplete,
              "delivered_pct": total_pct, "unmeasured_planned_kwh": unmeasured_kwh, "missing_batteries": missing,
              ALERT_POLICY: ALERT_POLICY_TEXT}
    yield dg.MaterializeResult(metadata={"delivered_kwh": measured, "instructed_kwh": instructed, **common,
                                         "modification": stored.modification, "batteries": len(commanded),
                                         "batteries_missing": len(judged.missing),
                                         "final_coverage_pct": final_coverage_pct(),
                                         "alert_sent_at": alerted_at.isoformat() if alerted_at else "none",
                                         "per_interval": _records_table(perf),
                                         **plot_metadata("delivery_plot", picture, asset="event_performance",
                                                         partition=context.partition_key,
                                                         alt="instructed, planned and delivered kW; SoC band")})
    cancelled = stored.status == "cancelled"  # nothing was asked of the fleet: nothing to judge
    yield dg.AssetCheckResult(check_name="delivery",
                              passed=bool(cancelled or (judged.final and total_pct >= MIN_DELIVERY_PCT)),
                              severity=dg.AssetCheckSeverity.WARN,
                              description="cancelled: not judged" if cancelled else None if judged.final else
                              f"provisional: the telemetry covers {judged.coverage_pct:.1f} % of the event so far "
                              f"(final at {final_coverage_pct():g} %); not judged yet",
                              metadata={**common, "per_interval": _table(perf)})


def _stored_plan(engine, stored: store.StoredInstruction) -> pd.DataFrame:
    t = dispatch_plans
    with engine.connect() as conn:
        plan = pd.DataFrame(conn.execute(sa.select(t.c.battery_id, t.c.interval_start, t.c.setpoint_kw).where(
            t.c.instruction_id == stored.instruction_id, t.c.modification == stored.modification)).mappings().all(),
            columns=["battery_id", "interval_start", "setpoint_kw"])
    plan["interval_start"] = pd.to_datetime(plan["interval_start"], utc=True)
    return plan


def _unmeasured_planned_kwh(plan: pd.DataFrame, per_battery: pd.DataFrame, interval_minutes: int) -> float:
    """Planned discharge of the battery-time the telemetry does not cover: how much the measured floor
    could be short of the truth if those batteries did as planned."""
    planned = plan[plan["setpoint_kw"] > 0].groupby("battery_id")["setpoint_kw"].sum() * interval_minutes / 60
    uncovered = 1.0 - per_battery.set_index("battery_id")["coverage_pct"] / 100.0
    return round(float((planned.reindex(uncovered.index).fillna(0.0) * uncovered).sum()), 3)


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


@dg.asset(group_name="dispatch", partitions_def=instructions, kinds={"pandas", "sql"},
          deps=[event_performance, dg.AssetDep("meter_intervals", partition_mapping=EVERY_DAY)],
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
    if not sites:
        raise dg.Failure(f"instruction {stored.instruction_id} m{stored.modification}: no command reached a site, "
                         "so there is nothing to measure at the meters")
    windows = baseline_windows(instruction.start, instruction.end)
    ami = _ami_grid(engine, sites, windows[0][0], windows[1][1])
    perf = metered_delivery(ami, sites, instruction.interval_start, np.asarray(instruction.target_kw),
                            instruction.interval_minutes)
    now = dt.datetime.now(dt.UTC)
    with engine.begin() as conn:
        conn.execute(metered_table.delete().where(metered_table.c.instruction_id == stored.instruction_id,
                                                  metered_table.c.modification == stored.modification))
        # only intervals some commanded site could be measured in have rows: the rest is unknown, not 0
        measured = perf["reduction_kwh"].notna()
        bulk_insert(conn, metered_table, perf[measured].assign(
            instruction_id=stored.instruction_id, modification=stored.modification, baseline_method=BASELINE_METHOD,
            computed_at=now))
    instructed = float(perf["instructed_kwh"].sum())
    # no interval measurable yet (no AMI for the event): the figure is unknown, not 0 % delivered
    reduction = float(perf.loc[measured, "reduction_kwh"].sum()) if measured.any() else None
    total_pct = round(100.0 * reduction / max(instructed, 1e-9), 2) if reduction is not None else None
    missing = int(perf["sites_missing"].max()) if len(perf) else len(sites)
    shown = {"reduction_kwh": reduction, "delivered_pct": total_pct}
    shown = {k: (v if v is not None else "unknown: no interval has AMI for a commanded site yet") for k, v in shown.items()}
    yield dg.MaterializeResult(metadata={**shown, "instructed_kwh": instructed, "sites": len(sites),
                                         "sites_missing": missing, "intervals_measured": int(measured.sum()),
                                         "baseline_method": BASELINE_METHOD})
    yield dg.AssetCheckResult(check_name="metered_delivery",
                              passed=bool(total_pct is not None and total_pct >= MIN_DELIVERY_PCT and missing == 0),
                              severity=dg.AssetCheckSeverity.WARN,
                              metadata={"delivered_pct": shown["delivered_pct"], "sites_missing": missing,
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
        # an ISO instruction goes ahead of queued pulls and backfills (priority -1) for the run slots
        run_requests=[dg.RunRequest(partition_key=p.instruction_id, tags={"dagster/priority": DISPATCH_PRIORITY},
                                    run_key=f"{p.instruction_id}:{p.modification}:{p.status}")
                      for p in pending if p.status in ("active", "cancelled")],
        dynamic_partitions_requests=[instructions.build_add_request(keys)],
        cursor=cursor,
    )


measure_job = dg.define_asset_job("measure_delivery", selection=dg.AssetSelection.assets(event_performance))


def _provisional(instance: dg.DagsterInstance, event: store.StoredInstruction) -> bool:
    """The event was measured (the dispatch run reached event_performance) and its figure is not final."""
    last = _latest_performance(instance, event.instruction_id)
    return bool(last) and last.get("modification") == event.modification and last.get("status") == "provisional"


@dg.sensor(job=measure_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def event_telemetry_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, clock: ClockResource):
    """Re-measures an event whose delivery is still provisional each time a day of interval_telemetry
    the event touches is rebuilt (after every pull), and once more when the give-up horizon passes."""
    engine = warehouse.engine()
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("interval_telemetry"), after_storage_id=after), limit=200,
        ascending=True)
    requests, seen = [], set()
    for record in found.records:
        day = record.partition_key
        if not day:
            continue
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        for event in store.overlapping(engine, start, start + dt.timedelta(days=1)):
            if (event.instruction_id, event.modification) in seen or not _provisional(context.instance, event):
                continue
            seen.add((event.instruction_id, event.modification))
            requests.append(dg.RunRequest(
                partition_key=event.instruction_id,
                run_key=f"{event.instruction_id}:{event.modification}:telemetry:{day}:{record.storage_id}"))
    now = clock.clock().now().to_pydatetime()
    horizon = final_after().to_pytimedelta()
    for event in store.overlapping(engine, now - horizon - GIVE_UP_LOOKBACK, now - horizon):
        if (event.end + horizon <= now and (event.instruction_id, event.modification) not in seen
                and _provisional(context.instance, event)):
            requests.append(dg.RunRequest(partition_key=event.instruction_id,
                                          run_key=f"{event.instruction_id}:{event.modification}:final-after-horizon"))
    cursor = str(found.records[-1].storage_id) if found.records else context.cursor
    if not requests:
        return dg.SensorResult(skip_reason="no provisional event touched by new telemetry", cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)


metered_job = dg.define_asset_job("settle_on_meters", selection=dg.AssetSelection.assets(metered_performance))


@dg.sensor(job=metered_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def ami_performance_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, clock: ClockResource):
    """Each day of AMI data that lands (a meter_intervals materialization) re-settles the events it
    can measure: their baseline windows reach four hours before and three after the event. An
    event still to end, or one no command reached, has nothing at the meters yet and is left alone."""
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("meter_intervals"), after_storage_id=after), limit=200,
        ascending=True)
    if not found.records:
        return dg.SkipReason("no new day of AMI data")
    requests, days = [], []
    now = clock.clock().now().to_pydatetime()
    for record in found.records:
        day = record.partition_key
        if not day:
            continue
        days.append(day)
        start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
        for e in store.overlapping(warehouse.engine(), start, start + dt.timedelta(days=1), pad=dt.timedelta(hours=4)):
            if e.end > now or not _commanded(warehouse.engine(), e):
                continue
            requests.append(dg.RunRequest(partition_key=e.instruction_id,
                                          run_key=f"{e.instruction_id}:{e.modification}:ami:{day}:{record.storage_id}"))
    cursor = str(found.records[-1].storage_id)
    if not requests:
        return dg.SensorResult(skip_reason=f"no dispatch event near {', '.join(days) or 'an unpartitioned run'}",
                               cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
