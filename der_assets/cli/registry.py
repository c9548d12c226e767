"""`der registry`: import, validate, export and history of the registry."""

from __future__ import annotations

from pathlib import Path

import click

from der_assets.cli.base import cli, engine_for as _engine, progress, require_file, url_option
from der_assets.errors import UserError, ValidationFailed


@cli.group()
def registry() -> None:
    """Subscribers, sites, meter points and devices."""


@registry.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Only validate; write nothing.")
@url_option
def registry_import(file: Path, dry_run: bool, url: str | None) -> None:
    """Import a registry CSV or XLSX file: all rows or none."""
    require_file(file)  # before the registry code loads: a mistyped path answers at once
    with progress(4) as bar:
        bar.step("starting")
        from der_assets.registry.service import import_registry_file

        summary = import_registry_file(_engine(url), file, dry_run=dry_run,
                                       on_phase=lambda name: bar.step(f"{name} {file.name}"))
    verb = "would write" if dry_run else "wrote"
    created = ", ".join(f"{n} {e}s" for e, n in summary.created.items() if n) or "nothing new"
    changed = ", ".join(f"{n} {e}s" for e, n in summary.changed.items() if n) or "nothing"
    closed = f"; closed {summary.versions_closed} replaced meters" if summary.versions_closed else ""
    click.echo(f"{file}: {summary.rows_read} rows valid; {verb} {summary.versions_created} versions "
               f"(created {created}; changed {changed}{closed})")


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
    from der_assets.registry.cell_escape import escape_frame
    from der_assets.registry.files import to_text_frame
    from der_assets.registry.service import export_registry

    frame = export_registry(_engine(url), out, iso=iso)
    if out is None:
        text = to_text_frame(frame) if iso is None else escape_frame(frame)
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
