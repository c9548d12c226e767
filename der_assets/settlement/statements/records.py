"""A statement file's CSV records, or one line saying why it is not readable text."""

from __future__ import annotations

import csv
import io

from der_assets.errors import ValidationFailed


def csv_records(content: bytes, name: str) -> list[list[str]]:
    """Every CSV record of the bytes (a UTF-8 BOM allowed); not UTF-8 or malformed CSV is ValidationFailed."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        row = content[: exc.start].count(b"\n") + 1
        raise ValidationFailed(f"{name}: row {row}: not UTF-8 text", []) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        return list(reader)
    except csv.Error as exc:
        raise ValidationFailed(f"{name}: row {reader.line_num}: malformed CSV ({exc})", []) from None
