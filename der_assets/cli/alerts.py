"""`der alerts`: the alerts operators were sent, as stored in the warehouse."""

from __future__ import annotations

import datetime as dt
import json

import click

from der_assets.cli.base import cli, engine_for, url_option


@cli.group()
def alerts() -> None:
    """Alerts sent for failed runs, failed checks and under-delivery."""


@alerts.command("list")
@click.option("--kind", default=None, help="Only this kind (run_failed, check_failed, under_delivery).")
@click.option("--since", default=None, help="Only alerts at or after this UTC time (YYYY-MM-DD[THH:MM]).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of text.")
@url_option
def alerts_list(kind: str | None, since: str | None, limit: int, as_json: bool, url: str | None) -> None:
    """The latest alerts, newest first: time, kind, what happened and the link to the run or check."""
    from der_assets.notify import stored_alerts

    start = None
    if since:
        try:
            start = dt.datetime.fromisoformat(since)
        except ValueError:
            raise click.BadParameter(f"{since!r} is not a time (YYYY-MM-DD[THH:MM])", param_hint="--since") from None
        start = start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start.astimezone(dt.UTC)
    frame = stored_alerts(engine_for(url), kind=kind, since=start, limit=limit)
    if as_json:
        records = [{**{k: v for k, v in r.items() if k != "details_json"},
                    "created_at": r["created_at"].strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "details": json.loads(r["details_json"] or "{}")} for r in frame.to_dict("records")]
        click.echo(json.dumps(records, default=str))
        return
    if frame.empty:
        click.echo("no alerts")
        return
    for r in frame.itertuples():
        click.echo(f"#{r.alert_id} {r.created_at:%Y-%m-%dT%H:%M:%SZ} {r.kind} [{r.channels or 'log only'}] {r.text}")
