"""The AMI inbox sensor: Green Button files and utility interval CSVs are landed as they arrive and their days rebuilt."""

import hashlib

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from der_assets.connectors import utility_csv as csv_inbox
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
        landed = set(conn.execute(sa.select(raw_payloads.c.sha256)
                                  .where(raw_payloads.c.source.in_(["greenbutton", csv_inbox.SOURCE]))).scalars())
    registry = current_registry(engine)
    sites = registry.drop_duplicates("site_id")
    site_of_meter = dict(zip(sites["meter_id"].astype(str), sites["site_id"], strict=True))
    tz_of_site = dict(zip(sites["site_id"], sites["timezone"], strict=True))
    site_of_account = {str(a): s for a, s in zip(sites["edc_account"], sites["site_id"], strict=True) if pd.notna(a)}
    edc_of_site = {s: str(e) for s, e in zip(sites["site_id"], sites["edc"], strict=True) if pd.notna(e)}
    days: dict[str, int] = {}
    new = 0
    suffixes = (".xml", *csv_inbox.SUFFIXES)
    for path in sorted(p for p in inbox.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                       and not p.name.startswith(".")):
        content = path.read_bytes()
        sha = hashlib.sha256(content).hexdigest()
        if sha in landed:
            continue
        if path.suffix.lower() == ".xml":
            source, endpoint = "greenbutton", "espi"
            meters = usage_point_ids(content)
            site_id = next((site_of_meter[m] for m in meters if m in site_of_meter), None)
        else:  # a utility's own CSV export: site and layout mapping chosen here, kept as the endpoint
            try:
                choice = csv_inbox.choose(path.name, content, meters=site_of_meter, accounts=site_of_account,
                                          edc_of_site=edc_of_site)
            except ValueError as exc:  # a bad DER_AMI_CSV_MAPPING: nothing is landed until it is fixed
                return dg.SkipReason(f"{path.name}: {exc}")
            source, endpoint, site_id = csv_inbox.SOURCE, choice.mapping, choice.site_id
            context.log.info(f"{path.name}: utility CSV mapping {choice.mapping} ({choice.how}), site {site_id}")
        received = pd.Timestamp.now(tz="UTC")
        window = (None, None)
        try:
            rows = parse_payload(source, endpoint, content, site_id=site_id or "unknown",
                                 tz=tz_of_site.get(site_id), received_at=received.to_pydatetime())
            if not rows.empty:
                end = rows["interval_start"].max() + pd.to_timedelta(rows["interval_s"].max(), unit="s")
                window = (rows["interval_start"].min(), end)
        except ParseError as exc:
            context.log.warning(f"{path.name}: {exc}")  # landed anyway; meter_intervals quarantines it
        landed_payload = land(engine, content, source=source, endpoint=endpoint, site_id=site_id,
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
        return dg.SkipReason("no new Green Button or utility CSV files")
    # AMI is a day or two late by nature: behind vendor pulls (0), backfills (-1) and dispatch (10) for a run
    # slot, so a first start's backlog of past files does not hold the fleet's own telemetry back
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=day, run_key=f"ami-{day}-{last}",
                                                       tags={"dagster/priority": AMI_PRIORITY})
                                         for day, last in sorted(days.items())])
