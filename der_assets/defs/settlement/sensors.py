"""Settlement triggers: a statement arriving in the inbox, and late AMI for a month already reconciled.

The statement inbox follows the AMI inbox: each file is landed raw (raw_payloads, source
"statement") before it is read, then moved to done/ or, when it does not parse, to rejected/
with the one-line reason beside it. A parsed statement requests `settle_month` for every month
its lines fall in.
"""

import datetime as dt
import os
from pathlib import Path

import dagster as dg

from der_assets import config
from der_assets.defs.resources import WarehouseResource
from der_assets.defs.settlement.assets import settle_month_job
from der_assets.errors import UserError
from der_assets.registry.resources import site_resource
from der_assets.registry.store import current_registry
from der_assets.settlement.statements import land_and_parse, one_line
from der_assets.settlement.statements.template import parse_statement

MAX_FILES_PER_TICK = 50


def statement_inbox() -> Path:
    return Path(os.environ.get("DER_STATEMENT_INBOX") or config.data_home() / "statement_inbox")


def _move(path: Path, folder: str, reason: str | None = None) -> None:
    target = path.parent / folder
    target.mkdir(exist_ok=True)
    path.replace(target / path.name)
    if reason is not None:
        (target / f"{path.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")


@dg.sensor(job=settle_month_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Lands each statement dropped in the statement inbox and settles the months it covers.")
def statement_inbox_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource):
    inbox = statement_inbox()
    files = sorted(p for p in inbox.glob("*.csv") if p.is_file())[:MAX_FILES_PER_TICK] if inbox.is_dir() else []
    if not files:
        return dg.SkipReason(f"no statement in {inbox}")
    engine = warehouse.engine()
    registry = current_registry(engine)
    resources = set(site_resource(registry)) if not registry.empty else set()
    requests, rejected = [], []
    for path in files:
        content = path.read_bytes()
        try:
            landed, lines = land_and_parse(engine, content, endpoint=path.name,
                                           parse=lambda b, name=path.name: parse_statement(b, name=name,
                                                                                             resources=resources))
        except UserError as exc:
            _move(path, "rejected", one_line(exc))
            rejected.append(path.name)
            continue
        _move(path, "done")
        months = sorted({t.strftime("%Y-%m-01") for t in lines["interval_start"]})
        for month in months:
            requests.append(dg.RunRequest(partition_key=month, run_key=f"statement:{landed.sha256}:{month}",
                                          tags={"der/statement": path.name}))
    if not requests:
        return dg.SkipReason(f"rejected {len(rejected)} statement(s): {', '.join(rejected)} (see rejected/)")
    return dg.SensorResult(run_requests=requests)


@dg.sensor(job=settle_month_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING,
           description="AMI that lands for a month already reconciled re-settles that month.")
def late_ami_settlement_sensor(context: dg.SensorEvaluationContext):
    after = int(context.cursor) if context.cursor else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("meter_intervals"), after_storage_id=after), limit=500,
        ascending=True)
    if not found.records:
        return dg.SkipReason("no new day of AMI data")
    cursor = str(found.records[-1].storage_id)
    # a day's AMI settles its own month's events, and the next month's through the baseline lookback
    days = [dt.date.fromisoformat(r.partition_key) for r in found.records if r.partition_key]
    months = sorted({m for d in days for m in (d.replace(day=1), (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1))})
    months = [m.isoformat() for m in months]
    reconciled = set()
    for month in months:
        done = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("settlement_reconciliation"), asset_partitions=[month]), limit=1)
        if done.records:
            reconciled.add(month)
    if not reconciled:
        return dg.SensorResult(skip_reason=f"AMI landed for {', '.join(months)}, none reconciled yet", cursor=cursor)
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=m, run_key=f"late-ami:{m}:{cursor}")
                                         for m in sorted(reconciled)], cursor=cursor)
