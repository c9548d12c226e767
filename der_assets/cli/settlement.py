"""`der settle`: reconcile an ISO statement against the meters (contract in docs/design.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from der_assets.cli.base import cli, engine_for, progress, require_file, url_option
from der_assets.errors import ValidationFailed

_file = click.Path(path_type=Path)


def _clean(obj):
    """JSON without NaN: an unknown figure is null, never a number."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    return obj


@cli.command("settle")
@click.option("--iso", required=True, type=click.Choice(["pjm", "nyiso", "isone", "iso-ne"], case_sensitive=False),
              help="The ISO whose statement this is.")
@click.option("--statement", "statement_path", type=_file, required=True, help="STATEMENT.csv (der's template).")
@click.option("--meter", "meter_path", type=_file, required=True, help="METER.csv: meter_id, interval_start, interval_s, grid_kwh.")
@click.option("--events", "events_path", type=_file, required=True, help="EVENTS.json: a list of events, each with its method.")
@click.option("--registry", "registry_path", type=_file, required=True, help="The registry import file (CSV or XLSX).")
@click.option("--out", type=_file, default=None, help="Write discrepancies.csv and a dispute package per discrepancy here.")
@url_option
def settle(iso: str, statement_path: Path, meter_path: Path, events_path: Path, registry_path: Path,
           out: Path | None, url: str | None) -> None:
    """Recompute every statement line from the meters; print n_lines, matched, discrepancies, usd_at_stake, by_class.

    The raw statement is landed (content-addressed, source "statement") before it is parsed, and
    quarantined with its error when it is rejected.
    """
    for path in (statement_path, meter_path, events_path, registry_path):
        require_file(path)
    with progress(6 if out is not None else 5) as bar:
        bar.step("starting")
        summary, warnings = _settle(bar, iso, statement_path, meter_path, events_path, registry_path, out, url)
    for warning in warnings:
        click.echo(f"der: note: {warning}", err=True)
    click.echo(json.dumps(_clean(summary)))


def _settle(bar, iso, statement_path, meter_path, events_path, registry_path, out, url):
    """The work of `der settle`, one progress step per phase; returns the summary and the notes."""
    from der_assets.registry.reading import read_table
    from der_assets.registry.store import parsed_registry
    from der_assets.registry.validation import parse_registry
    from der_assets.settlement.events import read_events
    from der_assets.settlement.meter_csv import read_meter_csv
    from der_assets.settlement.performance import PLC_METHODS, enrolled_sites, iso_key, site_table
    from der_assets.settlement.reconcile import reconcile
    from der_assets.settlement.statements import land_and_parse
    from der_assets.settlement.statements.template import parse_statement

    bar.step(f"reading {registry_path.name} and {events_path.name}")
    registry = parsed_registry(parse_registry(read_table(registry_path)))
    events = [e for e in read_events(events_path) if iso_key(e.iso) == iso_key(iso)]
    sites = site_table(registry)
    known = set(sites["resource_id"])
    for event in events:  # FSL/GLD need each counted site's PLC: the registry's, else the event's
        if event.method in PLC_METHODS and event.plc_kw is None:
            lacking = enrolled_sites(sites, event).query("plc_kw != plc_kw")["site_id"].tolist()
            if lacking:
                raise ValidationFailed(f"{events_path}: event {event.event_id}: key 'plc_kw': missing, and the registry "
                                       f"has no plc_kw for site(s) {', '.join(lacking[:5])}; {event.method} needs it", [])
    by_id = {e.event_id: e for e in events}
    bar.step(f"landing and parsing {statement_path.name}")
    from der_assets.inputs import read_input_bytes

    content = read_input_bytes(statement_path, "an ISO statement")  # refused if still being written
    _, lines = land_and_parse(engine_for(url), content, endpoint="template",
                              parse=lambda c: parse_statement(c, name=str(statement_path), resources=known,
                                                              events=by_id, iso=iso_key(iso)))
    bar.step(f"reading {meter_path.name}")
    meter = read_meter_csv(meter_path)
    bar.step(f"reconciling {len(lines)} statement lines")
    result = reconcile(lines, meter, events, registry, iso=iso)
    if out is not None:
        from der_assets.settlement.dispute import write_packages

        bar.step(f"writing dispute packages to {out}")
        write_packages(result, out)
    return result.summary, result.warnings
