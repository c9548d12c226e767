"""The `der` command for operators.

A user's mistake (bad file, bad value, unreachable database) ends in one line on stderr and
a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from der_assets import config
from der_assets.errors import UserError, ValidationFailed

MAX_PROBLEMS_SHOWN = 200


def _engine(url: str | None):
    from der_assets.warehouse import connect_warehouse

    return connect_warehouse(url or config.warehouse_url())


url_option = click.option("--url", envvar=config.WAREHOUSE_URL_ENV, default=None,
                          help="Warehouse SQLAlchemy URL (default: $DER_WAREHOUSE_URL, else SQLite in $DER_HOME).")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """der_assets: run a DER fleet as one ISO capacity resource."""


# ---- db -------------------------------------------------------------------------------------
@cli.group()
def db() -> None:
    """The warehouse schema."""


@db.command("upgrade")
@url_option
def db_upgrade(url: str | None) -> None:
    """Apply the schema to the warehouse (safe to repeat)."""
    from der_assets.warehouse.engine import make_engine, upgrade

    engine = make_engine(url or config.warehouse_url())
    version = upgrade(engine)
    click.echo(f"warehouse {engine.url.render_as_string(hide_password=True)} at schema version {version}")


@db.command("ddl")
@click.option("--dialect", type=click.Choice(["postgresql", "sqlite"]), default="postgresql")
def db_ddl(dialect: str) -> None:
    """Print the CREATE statements for one dialect (as kept in sql/)."""
    from der_assets.warehouse.engine import render_ddl

    click.echo(render_ddl(dialect), nl=False)


# ---- registry -------------------------------------------------------------------------------
@cli.group()
def registry() -> None:
    """Subscribers, sites, meter points and devices."""


@registry.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only validate; write nothing.")
@url_option
def registry_import(file: Path, dry_run: bool, url: str | None) -> None:
    """Import a registry CSV or XLSX file: all rows or none."""
    from der_assets.registry.service import import_registry_file

    summary = import_registry_file(_engine(url), file, dry_run=dry_run)
    verb = "would write" if dry_run else "wrote"
    created = ", ".join(f"{n} {e}s" for e, n in summary.created.items() if n) or "nothing new"
    changed = ", ".join(f"{n} {e}s" for e, n in summary.changed.items() if n) or "nothing"
    click.echo(f"{file}: {summary.rows_read} rows valid; {verb} {summary.versions_created} versions "
               f"(created {created}; changed {changed})")


@registry.command("validate")
@url_option
def registry_validate(url: str | None) -> None:
    """Report ISO-enrollment completeness problems; exit 1 if there are any."""
    from der_assets.registry.service import completeness_problems

    problems = completeness_problems(_engine(url))
    if problems.empty:
        click.echo("registry complete: no enrollment problems")
        return
    lines = [f"{p.entity} {p.key}, column {p.column}: {p.problem} [{p.rule}]" for p in problems.itertuples()]
    raise ValidationFailed(f"registry has {len(lines)} enrollment problem(s)", lines)


@registry.command("export")
@click.option("--iso", type=click.Choice(["pjm", "nyiso", "isone"], case_sensitive=False), default=None,
              help="Write that ISO's asset inventory instead of the importable registry.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Output CSV (default: stdout).")
@url_option
def registry_export(iso: str | None, out: Path | None, url: str | None) -> None:
    """Write the current registry as CSV (importable, or an ISO inventory with --iso)."""
    from der_assets.registry.files import to_text_frame
    from der_assets.registry.service import export_registry

    frame = export_registry(_engine(url), out, iso=iso)
    if out is None:
        text = to_text_frame(frame) if iso is None else frame
        click.echo(text.to_csv(index=False, lineterminator="\n"), nl=False)
    else:
        click.echo(f"wrote {len(frame)} rows to {out}", err=True)


@registry.command("history")
@click.argument("entity", type=click.Choice(["subscriber", "site", "meter", "device"]))
@click.argument("key")
@url_option
def registry_history(entity: str, key: str, url: str | None) -> None:
    """Every version of one entity, with when and by what import it changed."""
    from der_assets.registry.store import history

    frame = history(_engine(url), entity, key)
    if frame.empty:
        raise UserError(f"{entity} {key!r} is not in the registry")
    click.echo(frame.to_csv(index=False, lineterminator="\n"), nl=False)


@registry.command("columns")
def registry_columns() -> None:
    """The import file's columns, as a Markdown table."""
    from der_assets.registry.columns import render_markdown

    click.echo(render_markdown(), nl=False)


# ---- simulator ------------------------------------------------------------------------------
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
@url_option
def simulate(ready_file, registry_file, start, speed, faults_file, inbox, seed, url) -> None:
    """Run the fleet twin: every vendor protocol on 127.0.0.1, until interrupted."""
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
                  faults=faults, stop=stop)

    click.echo(f"simulating {registry['site_id'].nunique()} sites; Ctrl-C to stop", err=True)
    asyncio.run(main_loop())


# ---- telemetry ------------------------------------------------------------------------------
@cli.command("normalize")
@click.option("--source", required=True, help="solaredge, enphase, sma, sonnen, fronius or greenbutton.")
@click.option("--endpoint", required=True, help="The vendor's own name for the call, e.g. energyDetails.")
@click.option("--tz", default=None, help="The site's IANA time zone, for vendors that send local time.")
@click.option("--site-id", default="unknown", show_default=True)
@click.option("--device-id", default=None)
@click.option("--received-at", default=None, help="RFC 3339 time the payload arrived (default: now).")
@click.argument("file", type=click.Path(path_type=Path))
def normalize(source: str, endpoint: str, tz: str | None, site_id: str, device_id: str | None,
              received_at: str | None, file: Path) -> None:
    """Print the canonical interval CSV for one payload file."""
    import datetime as dt

    from der_assets.telemetry import ParseError, normalize_to_csv

    try:
        payload = file.read_bytes()
    except OSError as exc:
        raise UserError(f"{file}: cannot be read ({exc.strerror})") from None
    when = None
    if received_at:
        try:
            when = dt.datetime.fromisoformat(received_at.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--received-at {received_at!r} is not an RFC 3339 time") from None
        if when.tzinfo is None:
            raise UserError(f"--received-at {received_at!r} needs a UTC offset")
    try:
        text = normalize_to_csv(source, endpoint, payload, site_id=site_id, device_id=device_id, tz=tz,
                                received_at=when)
    except ParseError as exc:
        raise ValidationFailed(f"{file}: {exc}", []) from None
    except (KeyError, ValueError) as exc:
        raise UserError(f"{file}: {exc}") from None
    click.echo(text, nl=False)


# ---- dispatch -------------------------------------------------------------------------------
@cli.group()
def dispatch() -> None:
    """Dispatch instructions across the fleet's batteries."""


@dispatch.command("plan")
@click.option("--fleet", "fleet_path", type=click.Path(path_type=Path), required=True, help="fleet.csv, one row per battery.")
@click.option("--forecast", "forecast_path", type=click.Path(path_type=Path), required=True, help="forecast.csv per site and interval.")
@click.option("--instruction", "instruction_path", type=click.Path(path_type=Path), required=True, help="instruction.json.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write plan.csv here.")
def dispatch_plan(fleet_path: Path, forecast_path: Path, instruction_path: Path, out: Path | None) -> None:
    """Plan setpoints for one instruction (file contract in DESIGN.md); print the summary JSON."""
    from der_assets.dispatch.contract import plan_from_files
    from der_assets.dispatch.errors import DispatchInputError

    for path in (fleet_path, forecast_path, instruction_path):
        if not path.is_file():
            raise UserError(f"{path}: no such file")
    try:
        summary = plan_from_files(fleet_path, forecast_path, instruction_path, out)
    except DispatchInputError as exc:
        raise ValidationFailed(str(exc), []) from None
    click.echo(json.dumps(summary))


# ---- demo -----------------------------------------------------------------------------------
@cli.group()
def demo() -> None:
    """Demo data."""


@demo.command("fleet")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Registry file to write (.csv or .xlsx).")
@click.option("--sites", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo_fleet_cmd(out: Path, sites: int, seed: int) -> None:
    """Write the demo fleet as an importable registry file."""
    from der_assets.registry.demo import demo_fleet
    from der_assets.registry.files import write_registry_file

    fleet = demo_fleet(sites, seed)
    write_registry_file(fleet, out)
    click.echo(f"wrote {sites} sites ({len(fleet)} devices) to {out}")


# ---- dev ------------------------------------------------------------------------------------
@cli.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=3000, show_default=True)
@click.option("--sites", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--setup-only", is_flag=True, help="Prepare the data home and demo fleet, do not start Dagster.")
@click.option("--no-twin", is_flag=True, help="Do not start the fleet twin beside the UI.")
def dev(host: str, port: int, sites: int, setup_only: bool, no_twin: bool) -> None:
    """Set up the data home and demo fleet, then start the Dagster UI."""
    from der_assets.devserver import prepare, run_dagster_dev

    env = prepare(n_sites=sites, echo=lambda m: click.echo(m, err=True))
    if setup_only:
        click.echo(json.dumps({k: env[k] for k in sorted(env) if k.startswith(("DER_", "DAGSTER_"))}, indent=1))
        return
    sys.exit(run_dagster_dev(env, host=host, port=port, twin=not no_twin))


def main(argv: list[str] | None = None) -> None:
    try:
        result = cli.main(args=argv, prog_name="der", standalone_mode=False)
    except ValidationFailed as exc:
        for line in exc.problems[:MAX_PROBLEMS_SHOWN]:
            click.echo(line, err=True)
        if len(exc.problems) > MAX_PROBLEMS_SHOWN:
            click.echo(f"... and {len(exc.problems) - MAX_PROBLEMS_SHOWN} more", err=True)
        click.echo(f"der: {exc}", err=True)
        sys.exit(exc.exit_code)
    except UserError as exc:
        click.echo(f"der: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("der: aborted", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
