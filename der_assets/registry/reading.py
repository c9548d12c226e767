"""Read a registry file (CSV or XLSX) into rows of text, with spreadsheet row numbers.

Row numbers are the ones a person sees in a spreadsheet: the header is row 1, the first
data row is row 2. Every error here names the file.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

from der_assets.errors import UserError
from der_assets.inputs import STILL_WRITING, read_input_bytes


@dataclass(frozen=True)
class RawTable:
    path: Path
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (spreadsheet row number, column -> text)
    content: bytes


def read_table(path: str | Path) -> RawTable:
    """Read a .csv or .xlsx file; other suffixes are refused by name."""
    path = Path(path)
    content = read_input_bytes(path, "a registry file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header, rows = _read_csv(path, content)
    elif suffix in (".xlsx", ".xlsm"):
        header, rows = _read_xlsx(path, content)
    else:
        raise UserError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .xlsx")
    return RawTable(path=path, header=header, rows=rows, content=content)


def _read_csv(path: Path, content: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}: row {line}: not UTF-8 text (byte 0x{content[exc.start]:02x} at offset "
            f"{exc.start}); save the file as CSV UTF-8"
        ) from None
    if "\x00" in text:
        raise UserError(f"{path}: contains NUL bytes; it is not a CSV text file")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        all_rows = list(reader)
    except csv.Error as exc:
        raise UserError(f"{path}: row {reader.line_num}: malformed CSV ({exc})") from None
    _require_whole_last_row(path, text, all_rows)
    return _to_dicts(path, all_rows)


def _require_whole_last_row(path: Path, text: str, all_rows: list[list[str]]) -> None:
    """A CSV cut off by a writer still at work: no newline after the last row, a quoted cell left
    open at the end, or a last row shorter than the one before it."""
    rows = list(all_rows)
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # blank lines at the end are not rows
    if not rows:
        return
    last = len(rows)
    why = None
    if not text.endswith(("\n", "\r")):
        why = "no newline after the last row"
    else:
        try:
            for _ in csv.reader(io.StringIO(text, newline=""), strict=True):
                pass
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                why = "a quoted cell is not closed"
        if why is None and last > 2 and len(rows[-1]) < min(len(rows[0]), len(rows[-2])):
            why = f"{len(rows[-1])} cells where the header has {len(rows[0])}"
    if why:
        raise UserError(f"{path}: row {last}: the file ends mid-row ({why}); {STILL_WRITING}")


def _read_xlsx(path: Path, content: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable XLSX workbook ({exc.__class__.__name__})") from None
    sheet = workbook.worksheets[0]
    all_rows = [[_cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    workbook.close()
    return _to_dicts(path, all_rows)


def _cell_text(value: object) -> str:
    """A spreadsheet cell as the text a person would type: 7.6 not 7.6000000001, TRUE as true."""
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _to_dicts(path: Path, all_rows: list[list[str]]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not all_rows or not any(cell.strip() for cell in all_rows[0]):
        raise UserError(f"{path}: row 1: empty file or missing header row")
    header = [cell.strip() for cell in all_rows[0]]
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if not name:
            continue
        if name in seen:
            raise UserError(f"{path}: row 1, column {name}: appears twice in the header (columns {seen[name]} and {index})")
        seen[name] = index
    rows: list[tuple[int, dict[str, str]]] = []
    for number, cells in enumerate(all_rows[1:], start=2):
        if not any((c or "").strip() for c in cells):
            continue  # blank lines are not rows
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            raise UserError(f"{path}: row {number}: has {len(cells)} cells but the header has {len(header)}")
        padded = list(cells) + [""] * (len(header) - len(cells))
        rows.append((number, {name: padded[i].strip() for i, name in enumerate(header) if name}))
    return header, rows
