"""`der review`: the operators' review queue (gaps, suspect values, quarantined payloads)."""

from __future__ import annotations

import datetime as dt
import getpass
import json

import click

from der_assets.cli.base import cli, engine_for, url_option

SHOWN = ["review_id", "status", "day", "origin", "site_id", "device_id", "channel", "issue", "first_interval",
         "n_intervals", "detected_at", "resolved_by", "resolution_note", "detail"]


@cli.group()
def review() -> None:
    """List and resolve review items; a resolution is kept with who, when and why."""


def _day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint="--day") from None


@review.command("list")
@click.option("--open", "which", flag_value="open", default=True, help="Only open items (the default).")
@click.option("--all", "which", flag_value="all", help="Every item: open, resolved and cleared.")
@click.option("--origin", default=None, help="Only items of this origin (interval_telemetry, meter_intervals).")
@click.option("--day", default=None, help="Only items of this UTC day (YYYY-MM-DD).")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@url_option
def review_list(which: str, origin: str | None, day: str | None, as_json: bool, url: str | None) -> None:
    """Review items, oldest first."""
    from der_assets.review import as_records, list_items

    items = list_items(engine_for(url), status="open" if which == "open" else None, origin=origin, day=_day(day))
    if as_json:
        click.echo(json.dumps(as_records(items[SHOWN + ["source", "last_interval", "resolved_at"]])))
        return
    if items.empty:
        click.echo("no open review items" if which == "open" else "no review items")
        return
    table = items[SHOWN].copy()
    for column in ("first_interval", "detected_at"):
        table[column] = table[column].dt.strftime("%Y-%m-%dT%H:%MZ")
    table["detail"] = table["detail"].str.slice(0, 80)
    click.echo(table.astype(object).where(table.notna(), "").astype(str).to_string(index=False))
    click.echo(f"{len(items)} item(s)")


@review.command("resolve")
@click.argument("review_id", type=int)
@click.option("--note", required=True, help="What was found or done: kept in the item's history.")
@click.option("--by", default=None, help="Who resolved it (default: the login name).")
@url_option
def review_resolve(review_id: int, note: str, by: str | None, url: str | None) -> None:
    """Close one item with a note."""
    from der_assets.review import resolve

    row = resolve(engine_for(url), review_id, note=note, by=by or getpass.getuser())
    click.echo(f"review item {review_id} ({row['issue']} at {row['site_id']}, {row['day']}) resolved by "
               f"{row['resolved_by']}: {note}")


@review.command("history")
@click.argument("review_id", type=int)
@url_option
def review_history(review_id: int, url: str | None) -> None:
    """Every resolution and reopening of one item."""
    from der_assets.review import history_of

    history = history_of(engine_for(url), review_id)
    if history.empty:
        click.echo(f"review item {review_id} has no history")
        return
    for r in history.itertuples():
        click.echo(f"{r.at:%Y-%m-%dT%H:%M:%SZ} {r.action} by {r.by}: {r.note}")
