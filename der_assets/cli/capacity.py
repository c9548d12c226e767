"""`der capacity estimate`: deliverable, accredited capacity and penalty risk (docs/design.md, "Capacity")."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import click

from der_assets.cli.base import cli, progress, require_file
from der_assets.errors import UserError, ValidationFailed

_CONTRACT = "the capacity contract's default (docs/design.md)"


@cli.group()
def capacity() -> None:
    """Capacity modeling: from history to ISO-reportable capacity and its risk."""


def _months(text: str) -> tuple[int, ...]:
    m = re.fullmatch(r"\s*(\d{1,2})\s*(?:-\s*(\d{1,2}))?\s*", text)
    if not m:
        raise UserError(f"--months {text!r} is not a month or a range like 6-9")
    a, b = int(m.group(1)), int(m.group(2) or m.group(1))
    if not (1 <= a <= 12 and 1 <= b <= 12):
        raise UserError(f"--months {text!r}: months run 1 to 12")
    return tuple(range(a, b + 1)) if a <= b else tuple(list(range(a, 13)) + list(range(1, b + 1)))


def _time(text: str) -> dt.time:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise UserError(f"--window-start {text!r} is not HH:MM")
    if int(m.group(2)) % 5:
        raise UserError(f"--window-start {text!r}: minutes must be a multiple of 5 (the telemetry grid)")
    return dt.time(int(m.group(1)), int(m.group(2)))


def _one_line(exc: ValidationFailed) -> ValidationFailed:
    """A rejected file as one line: its first problem, and how many more there are."""
    if not exc.problems:
        return exc
    more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
    return ValidationFailed(exc.problems[0] + more, [])


def _read_registry(path: Path):
    from der_assets.registry.reading import read_table
    from der_assets.registry.store import parsed_registry
    from der_assets.registry.validation import parse_registry

    require_file(path)
    try:
        return parsed_registry(parse_registry(read_table(path)))
    except ValidationFailed as exc:
        raise _one_line(exc) from None
    except UserError as exc:  # unreadable content: rejected data, not a setup problem
        raise ValidationFailed(str(exc), []) from None


def _read_commands(path: Path):
    import pandas as pd

    require_file(path)
    try:
        c = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"{path}: not a readable CSV ({exc.__class__.__name__})", []) from None
    for column in ("instruction_id", "battery_id", "site_id", "ok", "sent_at"):
        if column not in c:
            raise ValidationFailed(f"{path}: row 1, column {column}: missing required column", [])
    ok = c["ok"].str.strip().str.lower()
    bad = ~ok.isin(["true", "false", "1", "0"])
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise ValidationFailed(f"{path}: row {i + 2}, column ok: {c['ok'].iloc[i]!r} is not true/false", [])
    sent = pd.to_datetime(c["sent_at"], format="ISO8601", utc=True, errors="coerce")
    if sent.isna().any():
        i = int(sent.isna().to_numpy().argmax())
        raise ValidationFailed(f"{path}: row {i + 2}, column sent_at: {c['sent_at'].iloc[i]!r} is not an ISO 8601 time", [])
    return c.assign(ok=ok.isin(["true", "1"]), sent_at=sent)


@capacity.command("estimate")
@click.option("--registry", "registry_path", type=click.Path(path_type=Path), required=True,
              help="Registry import file (CSV/XLSX), as `der registry import` takes it.")
@click.option("--telemetry", "telemetry_path", type=click.Path(path_type=Path), required=True,
              help="Canonical interval CSV, as `der normalize` prints it (battery soc_pct rows at least; "
                   "load_kwh/pv_kwh or grid_kwh/battery_kwh for non-export sites).")
@click.option("--iso", required=True, help="pjm, nyiso or isone.")
@click.option("--delivery-year", required=True, help="Delivery (capability) year, e.g. 2027/2028.")
@click.option("--class", "accreditation_class", required=True,
              help="Accreditation class. PJM: demand_resource, storage_4h/6h/8h/10h, solar_fixed, solar_tracking; "
                   "NYISO: storage_2h/4h/6h/8h, solar, scr; ISO-NE: active_demand_capacity_resource "
                   "(der_assets/capacity/data/classes.csv).")
@click.option("--locality", default=None, help="NYISO locality ros, ghi, nyc or li (needed for NYISO CAF classes).")
@click.option("--months", default="6-9", show_default=True,
              help=f"Sample months (local), a month or a range. Default: {_CONTRACT}; June-September is the "
                   "summer peak season a screening estimate looks at (not an ISO rule).")
@click.option("--weekdays", is_flag=True, help="Sample weekdays only (default: all days, the capacity contract in docs/design.md).")
@click.option("--window-start", default="15:00", show_default=True,
              help=f"Window start, each site's local time. Default: {_CONTRACT}; a screening choice, not an ISO "
                   "window (PJM removed DR availability windows from 2027/28, RTO Insider ?p=99047).")
@click.option("--duration-h", type=float, default=1.0, show_default=True,
              help=f"Window length, hours. Default: {_CONTRACT}. Use the class's duration for storage classes.")
@click.option("--commit-kw", type=float, default=None,
              help="Commitment Q to price, kW ICAP. Default: the commitment at --risk (deliverable at that level).")
@click.option("--risk", type=float, default=0.9, show_default=True,
              help=f"Share of sample days a commitment must be met on; 0.9 = P90. Default: {_CONTRACT}.")
@click.option("--capacity-price-usd-mw-day", type=float, default=None,
              help="Capacity price, $/MW-day. Default: the auction price in der_assets/capacity/data/rates.csv "
                   "(PJM BRA results, RTO Insider / PJM releases); none for NYISO/ISO-NE, so give it.")
@click.option("--penalty-usd-mwh", type=float, default=None,
              help="Non-performance rate, $/MWh. Default: rates.csv (PJM: Net CONE/30, derived, unverified; "
                   "ISO-NE: PPR $9,337 from Market Rule 1 III.13.7.2.5).")
@click.option("--event-hours", type=float, default=None,
              help="Expected event hours per delivery year. Default: rates.csv (PJM: the 30 expected PAI hours "
                   "of its penalty formula, RTO Insider 125320).")
@click.option("--class-rating", type=float, default=None,
              help="Override the class rating as a fraction (0.65 = 65 %), for ratings not published or not "
                   "shipped (e.g. PJM 2028/29 demand_resource, NYISO scr). Default: data/class_ratings.csv.")
@click.option("--efficiency", type=float, default=0.9, show_default=True,
              help="Battery round-trip efficiency. Default: the project default shared with dispatch "
                   "(der_assets/dispatch/fleet_inputs.py), a typical Li-ion value, not measured.")
@click.option("--commands", "commands_path", type=click.Path(path_type=Path), default=None,
              help="Optional dispatch_commands CSV (instruction_id, battery_id, site_id, ok, sent_at): a refusal "
                   "makes the battery unavailable that day; events count against max_events_per_month.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write sites.csv and distribution.png here.")
def capacity_estimate(registry_path: Path, telemetry_path: Path, iso: str, delivery_year: str, accreditation_class: str,
                      locality: str | None, months: str, weekdays: bool, window_start: str, duration_h: float,
                      commit_kw: float | None, risk: float, capacity_price_usd_mw_day: float | None,
                      penalty_usd_mwh: float | None, event_hours: float | None, class_rating: float | None,
                      efficiency: float, commands_path: Path | None, out: Path | None) -> None:
    """Estimate deliverable P50/P90, accredited capacity and penalty risk; print the summary JSON."""
    sample_months, start = _months(months), _time(window_start)  # cheap checks before any import
    for path in (registry_path, telemetry_path, commands_path):
        if path is not None:
            require_file(path)
    with progress(6 if out is not None else 5) as bar:
        bar.step("starting")
        from der_assets.capacity import CapacityInputError, EstimateParams, estimate_capacity, write_outputs
        from der_assets.telemetry.canonical_csv import read_canonical_csv

        params = EstimateParams(
            iso=iso, delivery_year=delivery_year, accreditation_class=accreditation_class, locality=locality,
            months=sample_months, weekdays_only=weekdays, window_start=start, duration_h=duration_h,
            efficiency=efficiency, commit_kw=commit_kw, risk=risk, capacity_price_usd_mw_day=capacity_price_usd_mw_day,
            penalty_usd_mwh=penalty_usd_mwh, event_hours=event_hours, class_rating=class_rating)
        try:
            # the accreditation inputs first: a missing rating fails before reading large files
            from der_assets.capacity import accreditation as acc

            acc.class_rating(iso, delivery_year, accreditation_class, locality, class_rating)
            bar.step(f"reading {registry_path.name}")
            registry = _read_registry(registry_path)
            bar.step(f"reading {telemetry_path.name}")
            telemetry = read_canonical_csv(telemetry_path)
            bar.step(f"reading {commands_path.name}" if commands_path is not None else "reading")
            commands = _read_commands(commands_path) if commands_path is not None else None
            bar.step("estimating")
            estimate = estimate_capacity(registry, telemetry, params, commands)
        except CapacityInputError as exc:
            raise ValidationFailed(str(exc), []) from None
        if out is not None:
            bar.step(f"writing {out}")
            try:
                write_outputs(estimate, out)
            except OSError as exc:
                raise UserError(f"{out}: cannot write ({exc.strerror})") from None
    for warning in estimate.warnings:
        click.echo(f"der: warning: {warning}", err=True)
    click.echo(json.dumps(estimate.summary))
