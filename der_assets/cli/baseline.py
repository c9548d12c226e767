"""`der baseline`: an ISO customer baseline for one event from meter rows (contract in docs/design.md).

stdout is CSV: meter_id, interval_start, interval_s, baseline_kw, load_kw, reduction_kw (UTC,
kW; an empty cell where the meter data does not allow a value). Every unverified rule parameter
the run used, and every caveat, is one line on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from der_assets.cli.base import cli, progress, require_file
from der_assets.errors import UserError, ValidationFailed

METHOD_NAMES = ("pjm_high_4_of_5", "pjm_same_day_3_2", "pjm_match_day", "pjm_fsl", "pjm_gld", "nyiso_average_day",
                "nyiso_acl", "isone_mean_10_of_10")


def read_params(path: Path | None) -> dict:
    """PARAMS.json: an object of overrides (see docs/baselines.md)."""
    if path is None:
        return {}
    require_file(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(f"{path}: not JSON: {exc}", []) from None
    if not isinstance(data, dict):
        raise ValidationFailed(f"{path}: not a JSON object of parameter overrides", [])
    return data


def frame_csv(frame) -> str:
    """The contract's CSV: ISO 8601 'Z' times, 6 decimals, empty for NaN."""
    out = frame.copy()
    out["interval_start"] = out["interval_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False, float_format="%.6f", na_rep="", lineterminator="\n")


@cli.command("baseline")
@click.option("--method", type=click.Choice(METHOD_NAMES), required=True, help="Baseline method.")
@click.option("--meter", "meter_path", type=click.Path(path_type=Path), required=True,
              help="METER.csv: meter_id, interval_start, interval_s, grid_kwh.")
@click.option("--event", "event_path", type=click.Path(path_type=Path), required=True, help="EVENT.json.")
@click.option("--params", "params_path", type=click.Path(path_type=Path), default=None,
              help="PARAMS.json: rule parameter overrides.")
def baseline(method: str, meter_path: Path, event_path: Path, params_path: Path | None) -> None:
    """Baseline, load and reduction per meter and event interval, as CSV on stdout."""
    for path in (event_path, meter_path, params_path):
        if path is not None:
            require_file(path)
    with progress(4) as bar:
        bar.step("starting")
        from der_assets.settlement.baselines import compute_baseline, method_params
        from der_assets.settlement.events import read_event
        from der_assets.settlement.meter_csv import read_meter_csv

        event = read_event(event_path)
        overrides = read_params(params_path)
        where = str(params_path or "PARAMS.json")
        params = method_params(method, overrides, where=where)  # a bad PARAMS.json fails before the meter is read
        needed = ()
        if method == "pjm_fsl" or (method == "pjm_gld" and params["plc_cap"].value):
            needed = ("plc_kw", "loss_factor")
        elif method == "pjm_gld":
            needed = ("loss_factor",)
        for key in needed:
            if getattr(event, key) is None:
                raise ValidationFailed(f"{event_path}: key {key!r}: missing; {method} needs it", [])
        bar.step(f"reading {meter_path.name}")
        meter = read_meter_csv(meter_path)
        bar.step(f"computing {method}")
        result = compute_baseline(method, meter, event, overrides, params_source=where)
        bar.step("writing CSV")
        text = frame_csv(result.frame)
    for line in result.warnings:
        click.echo(line, err=True)
    sys.stdout.write(text)


@cli.command("baseline-accuracy")
@click.option("--meter", "meter_path", type=click.Path(path_type=Path), required=True, help="METER.csv with history.")
@click.option("--timezone", required=True, help="The ISO's local time zone, e.g. America/New_York.")
@click.option("--window", default="14-18", show_default=True,
              help="Pseudo-event window, local hours START-END (hour beginning START to END).")
@click.option("--iso", default="PJM", show_default=True)
@click.option("--event-day", "event_days", multiple=True, help="A real event day (YYYY-MM-DD) to leave out; repeatable.")
@click.option("--recommend", "show_recommendation", is_flag=True, help="Print the recommended method per site instead.")
def baseline_accuracy_cmd(meter_path: Path, timezone: str, window: str, iso: str, event_days: tuple[str, ...],
                          show_recommendation: bool) -> None:
    """RRMSE and bias (%) of each candidate baseline per meter over non-event days, as CSV."""
    import datetime as dt
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
        a, b = (int(x) for x in window.split("-"))
        days = [dt.date.fromisoformat(d) for d in event_days]
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"bad --timezone {timezone!r}, --window {window!r} or --event-day {event_days!r}") from None
    if not 0 <= a < b <= 23:
        raise UserError(f"--window {window!r}: need 0 <= START < END <= 23")
    require_file(meter_path)
    with progress(3) as bar:
        bar.step("starting")
        from der_assets.settlement.accuracy import baseline_accuracy, recommend
        from der_assets.settlement.meter_csv import read_meter_csv

        bar.step(f"reading {meter_path.name}")
        meter = read_meter_csv(meter_path)
        bar.step("scoring every candidate baseline on non-event days")
        acc = baseline_accuracy(meter, timezone=timezone, window_h=(a, b), iso=iso, event_days=days)
    out = recommend(acc) if show_recommendation else acc
    sys.stdout.write(out.to_csv(index=False, float_format="%.3f", lineterminator="\n"))
