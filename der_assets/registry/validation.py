"""Check every row of a registry file and turn it into typed entities, or say what is wrong.

Nothing is written unless every row passes; each problem names the row and column.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import zoneinfo
from dataclasses import dataclass, field
from functools import lru_cache

import sqlalchemy as sa

from der_assets.errors import ValidationFailed
from der_assets.registry.cell_escape import unescape_cell
from der_assets.registry.columns import BY_NAME, COLUMNS, ENTITY_KEYS, Column, entity_columns
from der_assets.registry.reading import RawTable
from der_assets.warehouse.schema import REGISTRY_TABLES

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_ISO_ALIASES = {"ISO-NE": "ISONE", "ISO NE": "ISONE"}


@dataclass
class ParsedRegistry:
    """Typed entities keyed by their id, each with the first row it came from."""

    entities: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)
    first_row: dict[str, dict[str, int]] = field(default_factory=dict)
    rows_read: int = 0


@lru_cache(maxsize=1)
def _time_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def coerce(column: Column, text: str) -> object:
    """Typed value of one cell; raises ValueError with a reason a person can act on."""
    if text == "":
        if column.required:
            raise ValueError("is empty but required")
        return None
    kind = column.kind
    if kind == "str":
        return unescape_cell(text)  # the quote an export put before a formula-like text
    if kind in ("float", "int"):
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{text!r} is not a finite number")
        if kind == "int":
            if not number.is_integer():
                raise ValueError(f"{text!r} is not a whole number")
            number = int(number)
        if column.min_value is not None and number < column.min_value:
            raise ValueError(f"{text} is below the minimum {column.min_value:g}")
        if column.max_value is not None and number > column.max_value:
            raise ValueError(f"{text} is above the maximum {column.max_value:g}")
        return number
    if kind == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{text!r} is not true or false")
    if kind == "enum":
        candidate = _ISO_ALIASES.get(text.upper(), text) if column.name == "iso" else text
        for choice in column.choices:
            if candidate.lower() == choice.lower():
                return choice
        raise ValueError(f"{text!r} is not one of {', '.join(column.choices)}")
    if kind == "tz":
        if text not in _time_zones():
            raise ValueError(f"{text!r} is not an IANA time zone (e.g. America/New_York)")
        return text
    if kind == "date":
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a date in YYYY-MM-DD form") from None
    raise AssertionError(f"unknown column kind {kind}")


@lru_cache(maxsize=1)
def _stored_limits() -> dict[str, tuple[str, int]]:
    """Column -> ("chars", n) or ("int", largest): what the warehouse column holds.

    Read from the tables themselves, so a value that PostgreSQL would refuse mid-write (varchar(n),
    32-bit integer) is refused here by row, and SQLite, which stores anything, refuses it the same.
    """
    limits: dict[str, tuple[str, int]] = {}
    for table in REGISTRY_TABLES.values():
        for col in table.columns:
            if col.name not in BY_NAME:
                continue
            if isinstance(col.type, sa.String) and col.type.length:
                limit = ("chars", col.type.length)
            elif isinstance(col.type, sa.Integer):
                limit = ("int", 2**63 - 1 if isinstance(col.type, sa.BigInteger) else 2**31 - 1)
            else:
                continue
            if col.name not in limits or limit[1] < limits[col.name][1]:
                limits[col.name] = limit
    return limits


def fits(column: Column, value: object) -> object:
    """The value, if its warehouse column can hold it; else ValueError saying what it holds."""
    limit = _stored_limits().get(column.name)
    if limit is None or value is None:
        return value
    kind, most = limit
    if kind == "chars" and isinstance(value, str) and len(value) > most:
        raise ValueError(f"is {len(value)} characters long; the registry keeps at most {most}")
    if kind == "int" and isinstance(value, int) and not -most - 1 <= value <= most:
        raise ValueError(f"{value} is outside the range the registry keeps ({-most - 1} to {most})")
    return value


def check_header(table: RawTable) -> list[str]:
    """Problems with the header: required columns missing, unknown columns present."""
    problems = []
    present = [h for h in table.header if h]
    for column in COLUMNS:
        if column.required and column.name not in present:
            problems.append(f"{table.path}: row 1, column {column.name}: missing required column")
    for name in present:
        if name not in BY_NAME:
            hint = difflib.get_close_matches(name, BY_NAME.keys(), n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            problems.append(f"{table.path}: row 1, column {name}: unknown column{suggestion}")
    return problems


def parse_registry(table: RawTable) -> ParsedRegistry:
    """All rows as typed entities; raises ValidationFailed listing every problem."""
    problems = check_header(table)
    if problems:
        raise ValidationFailed(f"{table.path}: the header has {len(problems)} problem(s); nothing written", problems)
    if not table.rows:
        raise ValidationFailed(f"{table.path}: no data rows; nothing written", [f"{table.path}: row 2: no data rows"])

    parsed = ParsedRegistry(rows_read=len(table.rows))
    for entity in ENTITY_KEYS:
        parsed.entities[entity] = {}
        parsed.first_row[entity] = {}
    present = {h for h in table.header if h}
    site_meter: dict[str, tuple[str, int]] = {}  # site_id -> (meter_id, first row): one meter point a site

    for number, cells in table.rows:
        typed: dict[str, object] = {}
        row_ok = True
        for column in COLUMNS:
            text = cells.get(column.name, "") if column.name in present else ""
            try:
                typed[column.name] = fits(column, coerce(column, text))
            except ValueError as exc:
                problems.append(f"{table.path}: row {number}, column {column.name}: {exc}")
                row_ok = False
        if not row_ok:
            continue
        for entity, key in ENTITY_KEYS.items():
            key_value = typed[key]
            if key_value is None:
                continue  # only meter_id may be empty: a site not yet given its meter point
            values = {name: typed[name] for name in entity_columns(entity)}
            if entity == "meter":
                other, on_row = site_meter.setdefault(values["site_id"], (key_value, number))
                if other != key_value:
                    problems.append(
                        f"{table.path}: row {number}, column meter_id: {key_value!r} differs from {other!r} on row "
                        f"{on_row} for site {values['site_id']!r}; a site has one meter point (a second meter is a "
                        "device row of type meter)")
                    continue
            seen = parsed.entities[entity].get(key_value)
            if seen is None:
                parsed.entities[entity][key_value] = values
                parsed.first_row[entity][key_value] = number
                continue
            first = parsed.first_row[entity][key_value]
            if entity == "device":
                problems.append(
                    f"{table.path}: row {number}, column device_id: duplicate device_id {key_value!r} (first on row {first})"
                )
                continue
            for name, value in values.items():
                if seen[name] != value:
                    problems.append(
                        f"{table.path}: row {number}, column {name}: {_show(value)} conflicts with "
                        f"{_show(seen[name])} on row {first} for {entity} {key_value!r}"
                    )
                    break
    if problems:
        raise ValidationFailed(f"{table.path}: {len(problems)} problem(s); nothing written", problems)
    return parsed


def _show(value: object) -> str:
    return "empty" if value is None else repr(str(value))
