"""der's statement template, STATEMENT.csv: the importable format for ISOs whose export cannot be verified.

Columns (DESIGN.md, "Baseline and settlement contract"):
`statement_id, iso, resource_id, event_id, interval_start, interval_s, iso_baseline_kw, iso_load_kw,
iso_reduction_kwh, rate_usd_per_mwh, amount_usd` (amount: + credit, - charge).

- interval_start is an ISO-8601 instant with its offset (`Z` or `+00:00`; a local offset is converted
  to UTC here, at the edge); a naive time is refused, since it cannot be placed on a DST day.
- interval_s is a whole number of seconds; the line must sit on its event's grid: inside
  [event start, event end) and a whole number of interval_s from the event start.
- every line of one event has the same interval_s.
- iso_baseline_kw and iso_load_kw may be blank (the ISO did not report them); the reduction, rate and
  amount may not.

`parse_statement(content, name=..., resources=..., events=..., iso=...)` returns one typed row per
line with its spreadsheet `row` (header = row 1), or raises ValidationFailed with one line naming the
row and column of the first problem (and how many more there are). Exit code 1 in the CLI.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd

from der_assets.errors import ValidationFailed

COLUMNS = ("statement_id", "iso", "resource_id", "event_id", "interval_start", "interval_s", "iso_baseline_kw",
           "iso_load_kw", "iso_reduction_kwh", "rate_usd_per_mwh", "amount_usd")
KEY = ("statement_id", "resource_id", "event_id", "interval_start")
REQUIRED_NUMBERS = ("iso_reduction_kwh", "rate_usd_per_mwh", "amount_usd")
OPTIONAL_NUMBERS = ("iso_baseline_kw", "iso_load_kw")
_ISO_ALIASES = {"ISO-NE": "ISONE", "ISO NE": "ISONE"}


def normalize_iso(text: str) -> str:
    """PJM / NYISO / ISONE, whatever the case or the ISO-NE spelling."""
    upper = text.strip().upper()
    return _ISO_ALIASES.get(upper, upper)


def empty_lines() -> pd.DataFrame:
    """A typed, empty statement frame (for callers that have no statement yet)."""
    frame = pd.DataFrame({c: pd.Series(dtype="float64" if c in REQUIRED_NUMBERS + OPTIONAL_NUMBERS else "object")
                          for c in COLUMNS})
    frame["interval_start"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["interval_s"] = pd.Series(dtype="int64")
    frame.insert(0, "row", pd.Series(dtype="int64"))
    return frame


def _number(text: str, *, required: bool) -> float:
    if text == "":
        if required:
            raise ValueError("is empty but required")
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _instant(text: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not an ISO-8601 time") from None
    if stamp is pd.NaT or pd.isna(stamp):
        raise ValueError("is empty but required")
    if stamp.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; write it as e.g. 2026-07-15T18:00:00Z")
    return stamp.tz_convert("UTC")


def _off_grid(start: pd.Timestamp, interval_s: int, event: Any) -> str | None:
    """Why a line is not on its event's interval grid, or None."""
    ev_start, ev_end = pd.Timestamp(event.start), pd.Timestamp(event.end)
    end = start + pd.Timedelta(seconds=interval_s)
    if start < ev_start or end > ev_end:
        return (f"{start.isoformat()} + {interval_s} s is outside event {event.event_id} "
                f"[{ev_start.isoformat()}, {ev_end.isoformat()})")
    offset_s = (start - ev_start).total_seconds()
    if offset_s % interval_s:
        return (f"{start.isoformat()} is off event {event.event_id}'s {interval_s} s grid "
                f"(starting {ev_start.isoformat()})")
    return None


def parse_statement(content: bytes, *, name: str = "STATEMENT.csv", resources: Collection[str] | None = None,
                    events: Mapping[str, Any] | None = None, iso: str | None = None) -> pd.DataFrame:
    """STATEMENT.csv bytes -> one typed row per line (plus `row`), or ValidationFailed (one line).

    resources: the resource ids the registry knows (None skips the check); events: event_id -> Event
    (None skips the event and grid checks); iso: the ISO every line must be for.
    """
    problems: list[str] = []

    def fail() -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ValidationFailed(f"{first}{more}", [])

    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        problems.append(f"{name}: row {line}: not UTF-8 text (byte 0x{content[exc.start]:02x}); save it as CSV UTF-8")
        fail()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        records = list(reader)
    except csv.Error as exc:
        problems.append(f"{name}: row {reader.line_num}: malformed CSV ({exc})")
        fail()
    if not records or not any(c.strip() for c in records[0]):
        problems.append(f"{name}: row 1: empty file or missing header row")
        fail()
    header = [c.strip() for c in records[0]]
    for position, column in enumerate(header, start=1):
        if column and column not in COLUMNS:
            problems.append(f"{name}: row 1, column {column}: unknown column (position {position}); "
                            f"the template's columns are {', '.join(COLUMNS)}")
        elif column and header.index(column) != position - 1:
            problems.append(f"{name}: row 1, column {column}: appears twice in the header")
    for column in COLUMNS:
        if column not in header:
            problems.append(f"{name}: row 1, column {column}: missing column")
    if problems:
        fail()

    want_iso = normalize_iso(iso) if iso else None
    out: list[dict[str, object]] = []
    first_seen: dict[tuple, int] = {}
    event_length: dict[str, tuple[int, int]] = {}  # event_id -> (interval_s, first row)
    for number, cells in enumerate(records[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header) and any(c.strip() for c in cells[len(header):]):
            problems.append(f"{name}: row {number}: has {len(cells)} cells but the header has {len(header)}")
            continue
        padded = [c.strip() for c in cells] + [""] * (len(header) - len(cells))
        raw = {column: padded[i] for i, column in enumerate(header) if column}
        row: dict[str, object] = {"row": number}
        bad = False
        for column in ("statement_id", "iso", "resource_id", "event_id"):
            if raw[column] == "":
                problems.append(f"{name}: row {number}, column {column}: is empty but required")
                bad = True
            row[column] = raw[column]
        if not bad:
            row["iso"] = normalize_iso(raw["iso"])
            if want_iso and row["iso"] != want_iso:
                problems.append(f"{name}: row {number}, column iso: {raw['iso']!r} is not the ISO settled ({want_iso})")
                bad = True
        try:
            row["interval_start"] = _instant(raw["interval_start"])
        except ValueError as exc:
            problems.append(f"{name}: row {number}, column interval_start: {exc}")
            bad = True
        try:
            seconds = _number(raw["interval_s"], required=True)
            if not seconds.is_integer() or seconds <= 0:
                raise ValueError(f"{raw['interval_s']!r} is not a positive whole number of seconds")
            row["interval_s"] = int(seconds)
        except ValueError as exc:
            problems.append(f"{name}: row {number}, column interval_s: {exc}")
            bad = True
        for column in REQUIRED_NUMBERS + OPTIONAL_NUMBERS:
            try:
                row[column] = _number(raw[column], required=column in REQUIRED_NUMBERS)
            except ValueError as exc:
                problems.append(f"{name}: row {number}, column {column}: {exc}")
                bad = True
        if bad:
            continue
        if resources is not None and row["resource_id"] not in resources:
            problems.append(f"{name}: row {number}, column resource_id: unknown resource {row['resource_id']!r} "
                            "(no site in the registry is enrolled in it)")
            continue
        if events is not None:
            event = events.get(str(row["event_id"]))
            if event is None:
                problems.append(f"{name}: row {number}, column event_id: unknown event {row['event_id']!r} "
                                "(not in EVENTS.json)")
                continue
            why = _off_grid(row["interval_start"], row["interval_s"], event)
            if why:
                problems.append(f"{name}: row {number}, column interval_start: {why}")
                continue
        key = tuple(row[k] for k in KEY)
        if key in first_seen:
            problems.append(f"{name}: row {number}, column interval_start: duplicate line for statement "
                            f"{row['statement_id']!r}, resource {row['resource_id']!r}, event {row['event_id']!r} "
                            f"at {row['interval_start'].isoformat()} (first on row {first_seen[key]})")
            continue
        seen = event_length.setdefault(str(row["event_id"]), (row["interval_s"], number))
        if seen[0] != row["interval_s"]:
            problems.append(f"{name}: row {number}, column interval_s: {row['interval_s']} s, but event "
                            f"{row['event_id']!r} has {seen[0]} s lines (row {seen[1]}); one interval length per event")
            continue
        first_seen[key] = number
        out.append(row)
    if problems:
        fail()
    if not out:
        return empty_lines()
    frame = pd.DataFrame(out, columns=["row", *COLUMNS])
    frame["interval_start"] = pd.to_datetime(frame["interval_start"], utc=True)
    frame["interval_s"] = frame["interval_s"].astype("int64")
    return frame
