"""The `der` group and what every domain's commands share.

Every module of this package is imported whenever `der` starts, to register its commands, so
at module top level they import only the standard library, click, this module,
der_assets.config and der_assets.errors; the domain packages (pandas, SQLAlchemy, dagster)
are imported inside the command functions, after the cheap checks of their arguments, so that
`der --help` and a mistyped path answer at once (benchmarks/cli_startup.py measures it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from der_assets import config
from der_assets.inputs import require_file  # noqa: F401  (stdlib only; re-exported for the command modules)

PROGRESS_OFF_ENV = "DER_NO_PROGRESS"

url_option = click.option("--url", envvar=config.WAREHOUSE_URL_ENV, default=None,
                          help="Warehouse SQLAlchemy URL (default: $DER_WAREHOUSE_URL, else SQLite in $DER_HOME).")


def engine_for(url: str | None):
    """The warehouse engine for --url, else the configured one."""
    from der_assets.warehouse import connect_warehouse

    return connect_warehouse(url or config.warehouse_url())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-q", "--quiet", is_flag=True,
              help=f"No progress bars (also ${PROGRESS_OFF_ENV}=1 or $NO_COLOR). They are drawn on stderr only, "
                   "and only when it is a terminal.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """der_assets: run a DER fleet as one ISO capacity resource.

    The files the commands read and write, and the design behind them, are described in
    docs/design.md ("File contracts").
    """
    ctx.ensure_object(dict)["quiet"] = quiet


def progress_enabled() -> bool:
    """Progress is for a person at a terminal: never on a pipe or a file, never with --quiet."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and (ctx.find_root().obj or {}).get("quiet"):
        return False
    if os.environ.get(PROGRESS_OFF_ENV, "") not in ("", "0") or os.environ.get("NO_COLOR", ""):
        return False
    stream = sys.stderr
    return bool(getattr(stream, "isatty", None) and stream.isatty())


class Steps:
    """A command's progress as steps: phases ("reading the telemetry") or items (one per file).

    `step(name)` finishes the step before it and shows `name` as the one under way: drawn at once
    for phases (so even a short one is seen), by the bar's own 10 Hz refresh for items (a redraw
    costs about a millisecond, more than a small file's parse). Without a terminal every call does
    nothing, so commands call it unconditionally.
    """

    def __init__(self, bar=None, task=None, draw_each_step: bool = True):
        self._bar, self._task, self._draw = bar, task, draw_each_step
        self._under_way = False

    def step(self, name: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=name, advance=1 if self._under_way else 0)
            if self._draw:
                self._bar.refresh()
        self._under_way = True


@contextmanager
def progress(total: int, *, items: bool = False) -> Iterator[Steps]:
    """A bar on stderr for `total` steps (phases, or with `items` one per file), cleared at the end."""
    if not progress_enabled():
        yield Steps()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(file=sys.stderr), transient=True, redirect_stdout=False) as bar:
        yield Steps(bar, bar.add_task("", total=total), draw_each_step=not items)
