"""`der demo`: demo data."""

from __future__ import annotations

from pathlib import Path

import click

from der_assets.cli.base import cli, progress


@cli.group()
def demo() -> None:
    """Demo data."""


@demo.command("fleet")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Registry file to write (.csv or .xlsx).")
@click.option("--sites", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo_fleet_cmd(out: Path, sites: int, seed: int) -> None:
    """Write the demo fleet as an importable registry file."""
    with progress(3) as bar:
        bar.step("starting")
        from der_assets.registry.demo import demo_fleet
        from der_assets.registry.files import write_registry_file

        bar.step(f"drawing {sites} sites")
        fleet = demo_fleet(sites, seed)
        bar.step(f"writing {out.name}")
        write_registry_file(fleet, out)
    click.echo(f"wrote {sites} sites ({len(fleet)} devices) to {out}")
