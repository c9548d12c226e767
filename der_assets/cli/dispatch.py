"""`der dispatch`: plan an instruction across the fleet's batteries."""

from __future__ import annotations

import json
from pathlib import Path

import click

from der_assets.cli.base import cli, require_file
from der_assets.errors import ValidationFailed


@cli.group()
def dispatch() -> None:
    """Dispatch instructions across the fleet's batteries."""


@dispatch.command("plan")
@click.option("--fleet", "fleet_path", type=click.Path(path_type=Path), required=True, help="fleet.csv, one row per battery.")
@click.option("--forecast", "forecast_path", type=click.Path(path_type=Path), required=True, help="forecast.csv per site and interval.")
@click.option("--instruction", "instruction_path", type=click.Path(path_type=Path), required=True, help="instruction.json.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write plan.csv here.")
def dispatch_plan(fleet_path: Path, forecast_path: Path, instruction_path: Path, out: Path | None) -> None:
    """Plan setpoints for one instruction (file contract in docs/design.md); print the summary JSON."""
    for path in (fleet_path, forecast_path, instruction_path):
        require_file(path)
    from der_assets.dispatch.contract import plan_from_files
    from der_assets.dispatch.errors import DispatchInputError

    try:
        summary = plan_from_files(fleet_path, forecast_path, instruction_path, out)
    except DispatchInputError as exc:
        raise ValidationFailed(str(exc), []) from None
    click.echo(json.dumps(summary))
