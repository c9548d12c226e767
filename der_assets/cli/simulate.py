"""`der simulate`: the fleet twin."""

from __future__ import annotations

from pathlib import Path

import click

from der_assets import config
from der_assets.cli.base import cli, engine_for as _engine, require_file, url_option
from der_assets.errors import UserError


@cli.command("simulate")
@click.option("--ready-file", type=click.Path(path_type=Path), default=None,
              help="Write base URLs, SunSpec devices, inbox and credentials here once every server listens.")
@click.option("--registry", "registry_file", type=click.Path(path_type=Path), default=None,
              help="Registry file to simulate (default: the warehouse's current registry).")
@click.option("--start", default=None, help="Replay from this UTC time (default: now, in real time).")
@click.option("--speed", type=click.FloatRange(min=0.001), default=1.0, show_default=True,
              help="Simulated seconds per wall second when replaying.")
@click.option("--faults", "faults_file", type=click.Path(path_type=Path), default=None, help="Fault plan JSON.")
@click.option("--inbox", type=click.Path(path_type=Path), default=None,
              help="Where Green Button files are delivered (default: $DER_HOME/ami_inbox).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--history-days", type=click.IntRange(min=0, max=366), default=7, show_default=True,
              envvar="DER_TWIN_HISTORY_DAYS",
              help="Serve this many days of past (from UTC midnight that many days back) as if the twin had "
                   "been running; 0 starts the twin now with no past (also $DER_TWIN_HISTORY_DAYS).")
@url_option
def simulate(ready_file, registry_file, start, speed, faults_file, inbox, seed, history_days, url) -> None:
    """Run the fleet twin: every vendor protocol on 127.0.0.1, until interrupted."""
    for path in (registry_file, faults_file):
        if path is not None:
            require_file(path)
    import asyncio
    import signal

    from der_assets.simulator.faults import FaultPlan
    from der_assets.simulator.service import parse_start, run

    if registry_file is not None:
        from der_assets.registry.reading import read_table
        from der_assets.registry.store import parsed_registry
        from der_assets.registry.validation import parse_registry

        registry = parsed_registry(parse_registry(read_table(registry_file)))
    else:
        from der_assets.registry.store import current_registry

        registry = current_registry(_engine(url))
    if registry.empty:
        raise UserError("the registry is empty; run `der registry import FILE` or pass --registry")
    try:
        start_ts = parse_start(start)
        faults = FaultPlan.from_file(faults_file) if faults_file else None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    inbox = inbox or config.data_home() / "ami_inbox"

    async def main_loop() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(registry, ready_file=ready_file, inbox=inbox, start=start_ts, speed=speed, seed=seed,
                  faults=faults, stop=stop, history_days=history_days)

    click.echo(f"simulating {registry['site_id'].nunique()} sites; Ctrl-C to stop", err=True)
    asyncio.run(main_loop())
