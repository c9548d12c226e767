"""Write registry frames in the import format, so export and re-import round-trip exactly."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pandas as pd

from der_assets.atomic import write_atomic, write_csv_atomic
from der_assets.errors import UserError
from der_assets.registry.cell_escape import escape_cell
from der_assets.registry.columns import BY_NAME, COLUMN_NAMES


def _cell(kind: str, value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return ""
    if kind == "bool":
        return "true" if bool(value) else "false"
    if kind == "int":
        return str(int(value))
    if kind == "float":
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    if kind == "date":
        return value.isoformat() if isinstance(value, (dt.date, pd.Timestamp)) else str(value)
    if kind == "str":
        return escape_cell(str(value))  # a spreadsheet never runs a stored text as a formula
    return str(value)


def to_text_frame(registry: pd.DataFrame) -> pd.DataFrame:
    """Every value as the exact text the importer reads back to the same value (text cells that
    would start a formula carry a leading quote, which the importer removes: cell_escape)."""
    return pd.DataFrame(
        {name: [_cell(BY_NAME[name].kind, v) for v in registry[name]] for name in COLUMN_NAMES},
        columns=list(COLUMN_NAMES),
    )


def write_registry_file(registry: pd.DataFrame, path: str | Path) -> Path:
    """CSV or XLSX by suffix; the file is written whole or not at all."""
    path = Path(path)
    text = to_text_frame(registry)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .xlsx")
    if suffix == ".csv":
        return write_csv_atomic(text, path)
    return write_atomic(path, lambda tmp: text.to_excel(tmp, index=False, engine="openpyxl"))
