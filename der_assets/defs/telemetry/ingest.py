"""Raw pulls in Dagster: one partition per UTC day and vendor, landed before anything parses them."""

import asyncio

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from der_assets.connectors.landing import land
from der_assets.connectors.pull import LastPull, pull_source
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import _table
from der_assets.defs.telemetry.partitions import PULL_SOURCES, day_by_source
from der_assets.registry.store import current_registry
from der_assets.telemetry.daily import SNAPSHOT_ENDPOINTS
from der_assets.warehouse.schema import raw_payloads as raw_table


@dg.asset(
    group_name="ingest",
    partitions_def=day_by_source,
    kinds={"python", "sql"},
    check_specs=[dg.AssetCheckSpec("pull_failures", asset="raw_payloads", partitions_def=day_by_source,
                                   description="Every site of the vendor answered (after retries).")],
    deps=["asset_registry"],  # the registry says which sites and devices to pull
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    retry_policy=dg.RetryPolicy(max_retries=2, delay=30, backoff=dg.Backoff.EXPONENTIAL),
    description="Every payload a vendor gave for one UTC day, kept content-addressed before parsing.",
)
def raw_payloads(context: dg.AssetExecutionContext, warehouse: WarehouseResource, clock: ClockResource):
    keys = context.partition_key.keys_by_dimension
    source, start = keys["source"], pd.Timestamp(keys["date"], tz="UTC")
    end = start + pd.Timedelta(days=1)
    engine = warehouse.engine()
    last = last_pulls(engine, source, start, end)
    result = asyncio.run(pull_source(source, current_registry(engine), start, end, now=clock.clock().now(), last=last))
    landed_bytes = 0
    for payload in result.payloads:
        land(engine, payload.content, **payload.land_kwargs())
        landed_bytes += len(payload.content)
    failures = pd.DataFrame(result.failures)
    context.log.info(f"{source} {keys['date']}: {len(result.payloads)} payloads, {len(result.failures)} site failures")
    yield dg.MaterializeResult(metadata={"payloads": len(result.payloads), "bytes": landed_bytes,
                                         "sites_failed": len(result.failures)})
    yield dg.AssetCheckResult(check_name="pull_failures", passed=failures.empty, severity=dg.AssetCheckSeverity.WARN,
                              metadata={"failures": _table(failures)})


SNAPSHOT_NAMES = sorted({endpoint for _, endpoint in SNAPSHOT_ENDPOINTS})


def last_pulls(engine, source: str, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, LastPull]:
    """Each site's cursor for the day: its latest landed payload of a history endpoint inside the window."""
    t = raw_table
    query = (sa.select(t.c.site_id, sa.func.max(t.c.received_at), sa.func.max(t.c.window_end))
             .where(t.c.source == source, t.c.window_start >= start.to_pydatetime(),
                    t.c.window_start < end.to_pydatetime(), t.c.window_end.is_not(None),
                    t.c.endpoint.not_in(SNAPSHOT_NAMES))  # a poll log's window is the poll, not history
             .group_by(t.c.site_id))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    utc = lambda v: pd.Timestamp(v).tz_localize("UTC") if pd.Timestamp(v).tzinfo is None else pd.Timestamp(v)  # noqa: E731
    return {site: LastPull(utc(received), utc(window_end)) for site, received, window_end in rows if site}


ingest_job = dg.define_asset_job("telemetry_pull", selection=dg.AssetSelection.assets(raw_payloads))


@dg.schedule(cron_schedule="*/15 * * * *", job=ingest_job, default_status=dg.DefaultScheduleStatus.RUNNING)
def telemetry_pull_schedule(context: dg.ScheduleEvaluationContext):
    """Every 15 minutes: today's partition of every vendor (a tag per vendor keeps one run per API)."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    stamp = context.scheduled_execution_time.strftime("%H%M")
    for source in PULL_SOURCES:
        yield dg.RunRequest(run_key=f"{day}-{source}-{stamp}",
                            partition_key=dg.MultiPartitionKey({"date": day, "source": source}),
                            tags={"der/vendor": source})
