"""Registry operations shared by the `der` command and the Dagster assets."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine

from der_assets.atomic import write_csv_atomic
from der_assets.registry.cell_escape import escape_frame
from der_assets.registry.completeness import evaluate
from der_assets.registry.files import write_registry_file
from der_assets.registry.iso_export import iso_inventory
from der_assets.registry.reading import read_table
from der_assets.registry.store import ImportSummary, apply_import, current_registry
from der_assets.registry.validation import parse_registry


def import_registry_file(engine: Engine, path: str | Path, *, dry_run: bool = False,
                         changed_by: str | None = None, on_phase=lambda name: None) -> ImportSummary:
    """Validate every row, then write all versions in one transaction (or none).

    `on_phase(name)` is called as reading, validating and writing begin (the CLI's progress bar).
    """
    on_phase("reading")
    table = read_table(path)
    on_phase("validating")
    parsed = parse_registry(table)
    on_phase("checking" if dry_run else "writing")
    return apply_import(engine, parsed, file_name=Path(path).name, content=table.content,
                        changed_by=changed_by, dry_run=dry_run)


def completeness_problems(engine: Engine) -> pd.DataFrame:
    return evaluate(current_registry(engine))


def export_registry(engine: Engine, out: str | Path | None, iso: str | None = None) -> pd.DataFrame:
    """The importable registry (no iso) or one ISO's asset inventory; written if `out` is given."""
    registry = current_registry(engine)
    if iso is None:
        if out is not None:
            write_registry_file(registry, out)
        return registry
    inventory = iso_inventory(registry, iso)
    if out is not None:
        write_csv_atomic(escape_frame(inventory), out)
    return inventory
