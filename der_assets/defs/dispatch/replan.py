"""Plan again when the data a failed plan lacked lands before the event starts.

A first start is the common case: the instruction arrives before the fleet's first pull, the
plan finds no battery with a recent SoC, plan_exists fails and no command goes out. Nothing
else would try again, so an event that the fleet could still serve would pass unserved. This
sensor re-runs dispatch for such an instruction each time a day of interval_telemetry the
platform's now falls in is rebuilt (after every pull), while the event is still far enough ahead
for its first setpoint to go out in time.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from der_assets import config
from der_assets.defs.dispatch.assets import DISPATCH_PRIORITY, _commanded, dispatch_job
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.dispatch.intake import store


def _last_dispatch_run(instance: dg.DagsterInstance, instruction_id: str) -> dg.DagsterRun | None:
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=dispatch_job.name,
                                                   tags={"dagster/partition": instruction_id}), limit=1)
    return runs[0] if runs else None


def needs_replan(instance: dg.DagsterInstance, engine, event: store.StoredInstruction, now: dt.datetime,
                 lead: dt.timedelta) -> str | None:
    """Why this event should be planned again now, or None: its latest dispatch run failed, no
    setpoint of its current modification went out, and its start is still more than the command
    lead ahead (a setpoint sent later would miss the first interval)."""
    if event.status != "active" or event.start - lead <= now:
        return None
    run = _last_dispatch_run(instance, event.instruction_id)
    if run is None or run.status != dg.DagsterRunStatus.FAILURE:
        return None
    if _commanded(engine, event):
        return None  # commands went out: the command step's own re-planning owns this event now
    return f"run {run.run_id[:8]} failed before any command went out"


@dg.sensor(job=dispatch_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def replan_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource, clock: ClockResource):
    """Re-runs dispatch for a future event whose plan failed (no SoC yet, say) once today's telemetry
    is rebuilt; one try per rebuild, so a fleet that stays silent costs a run per pull, no more."""
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("interval_telemetry"), after_storage_id=after), limit=200,
        ascending=True)
    if not found.records:
        return dg.SensorResult(skip_reason="no new interval_telemetry", cursor=context.cursor)
    cursor = str(found.records[-1].storage_id)
    now = clock.clock().now().to_pydatetime()
    today = now.strftime("%Y-%m-%d")
    fresh = [r for r in found.records if r.partition_key == today]
    if not fresh:
        return dg.SensorResult(skip_reason=f"no rebuild of today's ({today}) telemetry", cursor=cursor)
    engine = warehouse.engine()
    lead = dt.timedelta(seconds=config.command_lead_s())
    requests = []
    for event in store.current(engine, status="active", limit=500):
        why = needs_replan(context.instance, engine, event, now, lead)
        if why is None:
            continue
        context.log.info(f"re-planning {event.instruction_id} m{event.modification}: {why}; "
                         f"telemetry for {today} was rebuilt")
        requests.append(dg.RunRequest(
            partition_key=event.instruction_id, tags={"dagster/priority": DISPATCH_PRIORITY, "der/replan": "true"},
            run_key=f"{event.instruction_id}:{event.modification}:replan:{fresh[-1].storage_id}"))
    if not requests:
        return dg.SensorResult(skip_reason="no future event waits on a failed plan", cursor=cursor)
    return dg.SensorResult(run_requests=requests, cursor=cursor)
