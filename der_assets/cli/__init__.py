"""The `der` command for operators, one module per domain.

A user's mistake (bad file, bad value, unreachable database) ends in one line on stderr and
a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from der_assets.cli.base import cli
from der_assets.errors import UserError, ValidationFailed

MAX_PROBLEMS_SHOWN = 200

# Every module in this package registers its commands on `cli` when imported.
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in ("base", "__main__")):
    importlib.import_module(f"{__name__}.{_module}")


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
