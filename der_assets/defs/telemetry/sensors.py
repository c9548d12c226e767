"""The AMI inbox sensor: Green Button files are landed as they arrive and their days rebuilt."""

import hashlib

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from der_assets.connectors.landing import land
from der_assets.connectors.settings import SettingsError, ami_inbox
from der_assets.defs.resources import WarehouseResource
from der_assets.defs.telemetry.assets import meter_intervals
from der_assets.registry.store import current_registry
from der_assets.telemetry import ParseError, parse_payload
from der_assets.telemetry.parsers.greenbutton import usage_point_ids
from der_assets.warehouse.schema import raw_payloads

AMI_PRIORITY = "-2"  # QueuedRunCoordinator launches higher priorities first
MAX_FILES_PER_TICK = 200  # keep a tick well inside the sensor timeout; the rest wait for the next tick

ami_job = dg.define_asset_job("ami_ingest", selection=dg.AssetSelection.assets(meter_intervals))


@dg.sensor(job=ami_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def ami_inbox_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    """Land each new inbox file (raw bytes first, content-addressed) and rebuild the days it covers."""
    try:
        inbox = ami_inbox()
    except SettingsError as exc:
        return dg.SkipReason(str(exc))
    if not inbox.is_dir():
        return dg.SkipReason(f"no AMI inbox at {inbox}")
    engine = warehouse.engine()
    with engine.connect() as conn:
        landed = set(conn.execute(sa.select(raw_payloads.c.sha256).where(raw_payloads.c.source == "greenbutton")).scalars())
    registry = current_registry(engine)
    sites = registry.drop_duplicates("site_id")
    site_of_meter = dict(zip(sites["meter_id"].astype(str), sites["site_id"], strict=True))
    tz_of_site = dict(zip(sites["site_id"], sites["timezone"], strict=True))
    days: dict[str, int] = {}
    new = 0
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() == ".xml"):
        content = path.read_bytes()
        sha = hashlib.sha256(content).hexdigest()
        if sha in landed:
            continue
        meters = usage_point_ids(content)
        site_id = next((site_of_meter[m] for m in meters if m in site_of_meter), None)
        received = pd.Timestamp.now(tz="UTC")
        window = (None, None)
        try:
            rows = parse_payload("greenbutton", "espi", content, site_id=site_id or "unknown",
                                 tz=tz_of_site.get(site_id), received_at=received.to_pydatetime())
            if not rows.empty:
                end = rows["interval_start"].max() + pd.to_timedelta(rows["interval_s"].max(), unit="s")
                window = (rows["interval_start"].min(), end)
        except ParseError as exc:
            context.log.warning(f"{path.name}: {exc}")  # landed anyway; meter_intervals quarantines it
        landed_payload = land(engine, content, source="greenbutton", endpoint="espi", site_id=site_id,
                              received_at=received.to_pydatetime(),
                              window_start=None if window[0] is None else window[0].to_pydatetime(),
                              window_end=None if window[1] is None else window[1].to_pydatetime())
        landed.add(sha)
        new += 1
        start, end = window if window[0] is not None else (received.floor("D"), received.floor("D") + pd.Timedelta(days=1))
        for day in pd.date_range(start.floor("D"), end - pd.Timedelta(seconds=1), freq="D"):
            key = day.strftime("%Y-%m-%d")
            days[key] = max(days.get(key, 0), landed_payload.payload_id)
        if new >= MAX_FILES_PER_TICK:
            break
    if not days:
        return dg.SkipReason("no new Green Button files")
    # AMI is a day or two late by nature: behind vendor pulls (0), backfills (-1) and dispatch (10) for a run
    # slot, so a first start's backlog of past files does not hold the fleet's own telemetry back
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=day, run_key=f"ami-{day}-{last}",
                                                       tags={"dagster/priority": AMI_PRIORITY})
                                         for day, last in sorted(days.items())])
