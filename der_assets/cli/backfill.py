"""`der backfill`: the twin's past pulled and normalized through Dagster, with progress.

For each UTC day from N days ago to today: raw_payloads for every vendor, then interval_telemetry,
meter_intervals and reconciled_intervals. Two ways to run it, both visible in the UI:

- against the running webserver (the default, and what `der dev` does): one Dagster asset
  backfill, launched over GraphQL (launchPartitionBackfill). The daemon runs it, so it is listed
  under Overview > Backfills with every partition's status, honours the instance's run queue and
  keeps the eager automation from running the same days twice (an asset in a backfill counts as
  in progress). Today's partitions go as a backfill of their own at dagster/priority 1, ahead of
  the vendors' scheduled pulls, so the fleet's latest SoC (what dispatch plans from) lands within
  minutes of a first start; the past days follow at priority -1, so an operator's own runs go first.
- `--in-process`: every partition executed here, one run after another, against the instance in
  $DAGSTER_HOME (runs tagged der/backfill=<id>, materializations on the assets' partitions), for
  when no webserver runs. The AMI inbox is landed first, as the inbox sensor would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click

from der_assets import config
from der_assets.cli.base import cli, progress, progress_enabled
from der_assets.errors import UserError

DAGSTER_URL_ENV = "DER_DAGSTER_URL"
DEV_BACKFILL_DAYS_ENV = "DER_DEV_BACKFILL_DAYS"
DEFAULT_DAYS = 7
DAILY_ASSETS = ("interval_telemetry", "meter_intervals", "reconciled_intervals")
TAG = "der/backfill"
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

LAUNCH = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""

STATUS = """
query ($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      assetBackfillData { assetBackfillStatuses { __typename
        ... on AssetPartitionsStatusCounts { assetKey { path } numPartitionsTargeted numPartitionsInProgress
                                             numPartitionsMaterialized numPartitionsFailed } } }
    }
    ... on Error { message }
  }
}
"""


@cli.command("backfill")
@click.option("--days", type=click.IntRange(min=0, max=366), default=DEFAULT_DAYS, show_default=True,
              help="Backfill the N UTC days before today, and today (the twin serves 7 days of past by default).")
@click.option("--dagster-url", envvar=DAGSTER_URL_ENV, default="http://127.0.0.1:3000", show_default=True,
              help=f"The running Dagster webserver (also ${DAGSTER_URL_ENV}).")
@click.option("--in-process", is_flag=True,
              help="Execute every partition in this process against $DAGSTER_HOME's instance (no webserver needed).")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds to wait for the twin's ready file and the webserver to come up (der dev uses it).")
@click.option("--log-progress", is_flag=True, help="Progress as plain lines (for a log or a shared terminal).")
@click.option("--detach", is_flag=True, help="Launch the backfill and leave it to the UI (do not follow it).")
@click.option("--missing-only", is_flag=True,
              help="Leave out partitions $DAGSTER_HOME's instance already has materialized (today and yesterday "
                   "are always backfilled: they were still filling when last materialized).")
def backfill(days: int, dagster_url: str, in_process: bool, wait_s: float, log_progress: bool, detach: bool,
             missing_only: bool) -> None:
    """Pull and normalize the last DAYS days of telemetry through Dagster, with progress."""
    ready_file = config.twin_ready_file()
    ready = _wait_for_ready(ready_file, wait_s)
    if not in_process:
        _wait_for_webserver(dagster_url, wait_s)
    plan = backfill_plan(ready, days)
    if missing_only:
        plan = without_materialized(plan)
    if not any(plan["partitions"].values()):
        click.echo(json.dumps({"dates": plan["dates"], "targeted": 0, "materialized": 0, "failed": 0}))
        return
    for note in plan["notes"]:
        click.echo(f"der backfill: {note}", err=True)
    # a bar at a terminal; plain lines otherwise (a log, a pipe), so a long backfill is never silent
    quiet = (click.get_current_context().find_root().obj or {}).get("quiet")
    log_progress = log_progress or (not progress_enabled() and not quiet)
    say = (lambda m: click.echo(m, err=True)) if log_progress or in_process else (lambda m: None)
    if in_process:
        summary = run_in_process(plan, say=say, log_progress=log_progress)
    else:
        summary = run_as_dagster_backfill(plan, dagster_url, say=say, log_progress=log_progress, retry_s=wait_s,
                                          follow=not detach)
    click.echo(json.dumps(summary))
    if summary["failed"]:
        raise UserError(f"{summary['failed']} of {summary['targeted']} partitions failed; see {summary['where']}")


def _wait_for_ready(path: Path, wait_s: float) -> dict:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            if time.monotonic() >= deadline:
                raise UserError(f"no twin is running: {path} does not exist (start `der dev`, or "
                                f"`der simulate --ready-file {path}`)") from None
        except (OSError, ValueError) as exc:
            if time.monotonic() >= deadline:
                raise UserError(f"twin ready file {path} is unreadable: {exc}") from None
        time.sleep(0.5)


def _wait_for_webserver(url: str, wait_s: float) -> None:
    import httpx

    deadline = time.monotonic() + wait_s
    while True:
        try:
            if httpx.get(f"{url.rstrip('/')}/server_info", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() >= deadline:
            raise UserError(f"no Dagster webserver answers at {url} (start `der dev`, or pass --in-process)")
        time.sleep(1.0)


def backfill_plan(ready: dict, days: int) -> dict:
    """The UTC days to backfill (N days before the platform's today, and today), limited to the
    past the twin serves, and each asset's partition keys."""
    import dagster as dg
    import pandas as pd

    from der_assets.defs.telemetry.partitions import PULL_SOURCES
    from der_assets.dispatch.clock import DispatchClock

    clock = DispatchClock.from_ready(ready) if os.environ.get("DER_CLOCK") == "twin" else DispatchClock.wall()
    today = clock.now().floor("D")
    first = today - pd.Timedelta(days=days)
    notes = []
    served = (ready.get("history") or {}).get("start")
    if served is not None and pd.Timestamp(served) > first:
        since = pd.Timestamp(served).ceil("D")
        notes.append(f"the twin serves its past from {served}; the days before {since:%Y-%m-%d} would be empty, "
                     f"so they are left out")
        first = since
    dates = [d.strftime("%Y-%m-%d") for d in pd.date_range(first, today, freq="D")]
    raw = [str(dg.MultiPartitionKey({"date": d, "source": s})) for d in dates for s in PULL_SOURCES]
    return {"dates": dates, "sources": list(PULL_SOURCES), "partitions": {"raw_payloads": raw,
            **{name: list(dates) for name in DAILY_ASSETS}}, "notes": notes, "now": clock.now().isoformat()}


def without_materialized(plan: dict) -> dict:
    """The plan less what the instance already has, except the last two days (a day materialized while
    it was still going on is incomplete). Needs DAGSTER_HOME; without it the plan is unchanged."""
    if not os.environ.get("DAGSTER_HOME"):
        return plan
    import dagster as dg

    recent = set(plan["dates"][-2:])
    with dg.DagsterInstance.get() as instance:
        done = {name: set(instance.get_materialized_partitions(dg.AssetKey(name))) for name in plan["partitions"]}
    keep = {name: [k for k in keys if k not in done[name] or k.split("|")[0] in recent]
            for name, keys in plan["partitions"].items()}
    skipped = sum(len(v) for v in plan["partitions"].values()) - sum(len(v) for v in keep.values())
    notes = plan["notes"] + ([f"{skipped} partitions already materialized are left out"] if skipped else [])
    return {**plan, "partitions": keep, "notes": notes}


def _graphql(url: str, query: str, variables: dict) -> dict:
    import httpx

    try:
        response = httpx.post(f"{url.rstrip('/')}/graphql", json={"query": query, "variables": variables}, timeout=60)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise UserError(f"Dagster webserver {url}: {exc}") from None
    if body.get("errors"):
        raise UserError(f"Dagster webserver {url}: {body['errors'][0].get('message')}")
    return body["data"]


def _line(say, done: int, total: int, failed: int, started: float) -> None:
    say(f"der backfill: {done}/{total} partitions done, {failed} failed, {time.monotonic() - started:.0f} s")


def split_today(plan: dict) -> list[tuple[dict, str]]:
    """The plan as (part, priority) to launch in order: today first, ahead of the vendors' own pulls
    (priority 1 against their 0), since today is what dispatch plans from (the fleet's latest SoC) and
    what the operator looks at first; then the past at -1, behind everything an operator starts."""
    today = plan["dates"][-1]
    parts = []
    for dates, priority in (([today], "1"), (plan["dates"][:-1], "-1")):
        keys = {name: [k for k in keys if k.split("|")[0] in dates] for name, keys in plan["partitions"].items()}
        keys = {name: ks for name, ks in keys.items() if ks}
        if keys:
            parts.append(({**plan, "dates": dates, "partitions": keys}, priority))
    return parts


def launch_backfill(plan: dict, url: str, *, priority: str = "-1", retry_s: float = 0.0) -> tuple[str, str]:
    """Launch one asset backfill over GraphQL: (backfill id, its page in the UI)."""
    title = f"der backfill {plan['dates'][0]}..{plan['dates'][-1]}"
    params = {
        "title": title,
        "description": "The twin's past: every vendor's raw pulls, then the canonical series, AMI and reconciliation.",
        "tags": [{"key": TAG, "value": title}, {"key": "dagster/priority", "value": priority}],
        "partitionsByAssets": [{"assetKey": {"path": [name]},
                                "partitions": {"ranges": [{"start": k, "end": k} for k in keys]}}
                               for name, keys in plan["partitions"].items() if keys],
    }
    deadline = time.monotonic() + retry_s  # right after start-up the code location may still be loading
    while True:
        try:
            launched = _graphql(url, LAUNCH, {"params": params})["launchPartitionBackfill"]
            if launched["__typename"] == "LaunchBackfillSuccess":
                break
            problem = UserError(f"Dagster refused the backfill: {launched.get('message') or launched['__typename']}")
        except UserError as exc:
            problem = exc
        if time.monotonic() >= deadline:
            raise problem
        time.sleep(3.0)
    backfill_id = launched["backfillId"]
    where = f"{url.rstrip('/')}/runs/b/{backfill_id}"
    click.echo(f"der backfill: launched {title} ({backfill_id}, priority {priority}): {where}", err=True)
    return backfill_id, where


def run_as_dagster_backfill(plan: dict, url: str, *, say, log_progress: bool, poll_s: float = 2.0,
                            retry_s: float = 0.0, follow: bool = True) -> dict:
    """Launch the plan as asset backfills (today's first, see split_today) and follow them until they end."""
    launched = [launch_backfill(part, url, priority=priority, retry_s=retry_s) for part, priority in split_today(plan)]
    backfill_id, where = launched[-1]
    total = sum(len(keys) for keys in plan["partitions"].values())
    summary = {"backfill_id": backfill_id, "backfill_ids": [b for b, _ in launched], "dates": plan["dates"],
               "targeted": total, "materialized": 0, "failed": 0, "where": where}
    if not follow:
        return {**summary, "status": "REQUESTED"}
    started, last, shown = time.monotonic(), None, 0
    with progress(total) as steps:
        while True:
            done = failed = 0
            statuses = []
            for bid, _ in launched:
                state = _graphql(url, STATUS, {"id": bid})["partitionBackfillOrError"]
                if state["__typename"] != "PartitionBackfill":
                    raise UserError(f"backfill {bid}: {state.get('message') or state['__typename']}")
                counts = [c for c in (state.get("assetBackfillData") or {}).get("assetBackfillStatuses") or []
                          if c["__typename"] == "AssetPartitionsStatusCounts"]
                done += sum(c["numPartitionsMaterialized"] + c["numPartitionsFailed"] for c in counts)
                failed += sum(c["numPartitionsFailed"] for c in counts)
                statuses.append(state["status"])
            for _ in range(done - shown):
                steps.step(f"backfill {done}/{total}")
            shown = max(shown, done)
            if (done, failed) != last:
                _line(say, done, total, failed, started)
                last = (done, failed)
            if all(status in DONE for status in statuses):
                break
            time.sleep(poll_s)
    status = next((s for s in statuses if s != "COMPLETED_SUCCESS" and s != "COMPLETED"), statuses[-1])
    return {**summary, "status": status, "materialized": done - failed, "failed": failed}


def run_in_process(plan: dict, *, say, log_progress: bool) -> dict:
    """Every partition executed here against $DAGSTER_HOME's instance: every raw pull first, then the daily assets."""
    if not os.environ.get("DAGSTER_HOME"):
        raise UserError("--in-process needs DAGSTER_HOME (the Dagster instance the UI reads); `der dev` sets it "
                        "to $DER_HOME/dagster")
    import dagster as dg

    from der_assets.defs.resources import ClockResource, WarehouseResource
    from der_assets.defs.telemetry.assets import interval_telemetry, meter_intervals, reconciled_intervals
    from der_assets.defs.telemetry.ingest import raw_payloads
    from der_assets.defs.telemetry.sensors import ami_inbox_sensor

    instance = dg.DagsterInstance.get()
    resources = {"warehouse": WarehouseResource(), "clock": ClockResource()}
    backfill_id = f"in-process-{uuid.uuid4().hex[:8]}"
    tags = {TAG: backfill_id}
    landed = _land_ami_inbox(ami_inbox_sensor, instance, resources)
    say(f"der backfill: {landed} AMI inbox ticks landed")
    wanted = {name: set(keys) for name, keys in plan["partitions"].items()}
    steps_all = [(raw_payloads, dg.MultiPartitionKey({"date": d, "source": s}), f"{d} raw_payloads {s}")
                 for d in plan["dates"] for s in plan["sources"]
                 if str(dg.MultiPartitionKey({"date": d, "source": s})) in wanted["raw_payloads"]]
    steps_all += [(asset, d, f"{d} {asset.key.to_user_string()}") for d in plan["dates"]
                  for asset in (meter_intervals, interval_telemetry, reconciled_intervals)
                  if d in wanted[asset.key.to_user_string()]]
    failed: list[str] = []
    started = time.monotonic()
    with progress(len(steps_all)) as steps:
        for n, (asset, key, name) in enumerate(steps_all, start=1):
            steps.step(name)
            result = dg.materialize([asset], partition_key=key, resources=resources, instance=instance, tags=tags,
                                    raise_on_error=False)
            if not result.success:
                failed.append(name)
            if log_progress or n == len(steps_all):
                _line(say, n, len(steps_all), len(failed), started)
    return {"backfill_id": backfill_id, "status": "COMPLETED_FAILED" if failed else "COMPLETED_SUCCESS",
            "dates": plan["dates"], "targeted": len(steps_all), "materialized": len(steps_all) - len(failed),
            "failed": len(failed), "failed_partitions": failed, "where": f"the UI's Runs, tag {TAG}={backfill_id}"}


def _land_ami_inbox(sensor, instance, resources, max_ticks: int = 1000) -> int:
    """Run the AMI inbox sensor's landing until the inbox has nothing new (its run requests are dropped:
    the backfill materializes those days itself)."""
    import dagster as dg

    for tick in range(max_ticks):
        result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
        if not isinstance(result, dg.SensorResult):
            return tick
    return max_ticks


def start_dev_backfill(env: dict[str, str], *, host: str, port: int) -> list[subprocess.Popen]:
    """`der dev`'s week of data: `der backfill` in the background once the UI and the twin are up.

    DER_DEV_BACKFILL_DAYS (default 7; 0 turns it off) says how many days. Progress goes to
    $DER_HOME/backfill.log and the backfill shows in the UI; `der dev` stops the process with the rest.
    """
    days = env.get(DEV_BACKFILL_DAYS_ENV, str(DEFAULT_DAYS)).strip()
    if days in ("", "0"):
        return []
    if not days.isdigit():  # said, not raised: the twin is already running and `der dev` goes on without it
        print(f"backfill: {DEV_BACKFILL_DAYS_ENV}={days!r} is not a number of days; no backfill", file=sys.stderr)
        return []
    home = Path(env[config.DER_HOME_ENV])
    log = open(home / "backfill.log", "a")
    der = Path(sys.executable).parent / "der"
    proc = subprocess.Popen([str(der) if der.exists() else "der", "backfill", "--days", days, "--missing-only",
                             "--dagster-url", f"http://{host}:{port}", "--wait", "300", "--log-progress"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    print(f"backfill: the last {days} days of the twin's past as a Dagster backfill once the UI is up "
          f"(log {home / 'backfill.log'}; {DEV_BACKFILL_DAYS_ENV}=0 turns it off)", file=sys.stderr)
    return [proc]
