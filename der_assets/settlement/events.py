"""EVENT.json / EVENTS.json: the dispatch event a baseline is computed for (contract in DESIGN.md).

Times are UTC inside. `timezone` is the ISO's local zone, used only to pick baseline days and
local hours; a rule's "hour ending 15" means local wall-clock time on that day.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from der_assets.errors import ValidationFailed
from der_assets.inputs import require_file

REQUIRED_KEYS = ("event_id", "iso", "start", "end", "timezone")
OPTIONAL_KEYS = ("notified_at", "other_event_days", "plc_kw", "loss_factor", "rate_usd_per_mwh", "method")
ISOS = ("PJM", "NYISO", "ISO-NE")
NEEDS_LOSS_FACTOR = ("pjm_fsl", "pjm_gld")  # plc_kw too, unless the registry gives each site's (der settle)


@dataclasses.dataclass(frozen=True)
class Event:
    """One dispatch event. start/end/notified_at are UTC; other_event_days are local dates that
    baselines must skip (the days of other events, emergency or economic)."""

    event_id: str
    iso: str
    start: pd.Timestamp
    end: pd.Timestamp
    timezone: str
    notified_at: pd.Timestamp | None = None
    other_event_days: tuple[dt.date, ...] = ()
    plc_kw: float | None = None
    loss_factor: float | None = None
    rate_usd_per_mwh: float | None = None
    method: str | None = None

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def local_date(self) -> dt.date:
        """The local calendar day the event starts on (the "event day" of every rule)."""
        return self.start.tz_convert(self.timezone).date()


def _utc(value: Any) -> pd.Timestamp:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not an ISO 8601 time with a UTC offset: {value!r}")
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    if ts is pd.NaT or ts.tzinfo is None:
        raise ValueError(f"needs a UTC offset ('Z' or '+00:00'): {value!r}")
    return ts.tz_convert("UTC")


def _number(value: Any, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if positive and value <= 0:
        raise ValueError(f"must be > 0: {value!r}")
    return float(value)


def event_from_dict(obj: Any, where: str, *, require_method: bool = False) -> Event:
    """Validate one EVENT.json object; every problem is one line starting with `where`."""
    if not isinstance(obj, dict):
        raise ValidationFailed(f"{where}: not a JSON object", [])
    problems: list[str] = []
    fields: dict[str, Any] = {}
    for key in obj:
        if key not in REQUIRED_KEYS + OPTIONAL_KEYS:
            problems.append(f"{where}: key {key!r}: unknown key (expected one of {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})")
    required = REQUIRED_KEYS + (("method",) if require_method else ())
    for key in required:
        if key not in obj or obj[key] is None:
            problems.append(f"{where}: key {key!r}: missing")

    def check(key, parse):
        if key in obj and obj[key] is not None:
            try:
                fields[key] = parse(obj[key])
            except ValueError as exc:
                problems.append(f"{where}: key {key!r}: {exc}")

    def text(value):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"not a non-empty string: {value!r}")
        return value.strip()

    def iso(value):
        name = text(value).upper().replace("_", "-")
        name = "ISO-NE" if name in ("ISONE", "ISO-NE", "NE") else name
        if name not in ISOS:
            raise ValueError(f"unknown ISO {value!r} (expected one of {', '.join(ISOS)})")
        return name

    def zone(value):
        try:
            ZoneInfo(text(value))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value.strip()

    def days(value):
        if not isinstance(value, list):
            raise ValueError("not a list of YYYY-MM-DD dates")
        out = []
        for item in value:
            try:
                out.append(dt.date.fromisoformat(item))
            except (TypeError, ValueError):
                raise ValueError(f"not a YYYY-MM-DD date: {item!r}") from None
        return tuple(sorted(set(out)))

    def method(value):
        from der_assets.settlement.baselines import METHODS

        name = text(value)
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r} (expected one of {', '.join(METHODS)})")
        return name

    check("event_id", text)
    check("iso", iso)
    check("start", _utc)
    check("end", _utc)
    check("timezone", zone)
    check("notified_at", _utc)
    check("other_event_days", days)
    check("plc_kw", lambda v: _number(v, positive=False))
    check("loss_factor", lambda v: _number(v, positive=True))
    check("rate_usd_per_mwh", lambda v: _number(v, positive=False))
    check("method", method)
    if fields.get("method") in NEEDS_LOSS_FACTOR and "loss_factor" not in fields and "loss_factor" not in obj:
        problems.append(f"{where}: key 'loss_factor': missing; {fields['method']} needs the EDC's loss factor")
    if "start" in fields and "end" in fields and fields["end"] <= fields["start"]:
        problems.append(f"{where}: key 'end': must be after start ({obj['start']})")
    if problems:
        raise ValidationFailed(problems[0], []) if len(problems) == 1 else ValidationFailed(
            f"{where}: {len(problems)} problems", problems)
    return Event(**fields)


def _load_json(path: Path) -> Any:
    path = Path(path)
    require_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValidationFailed(f"{path}: not UTF-8 text", []) from None
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", []) from None


def read_event(path: str | Path) -> Event:
    """EVENT.json -> Event; ValidationFailed (one line naming file and key) when it is wrong."""
    return event_from_dict(_load_json(path), str(path))


def read_events(path: str | Path) -> list[Event]:
    """EVENTS.json (a list of EVENT.json objects, each with "method") -> [Event]."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise ValidationFailed(f"{path}: not a JSON list of events", [])
    problems: list[str] = []
    events: list[Event] = []
    for i, obj in enumerate(data):
        try:
            events.append(event_from_dict(obj, f"{path}: event {i}", require_method=True))
        except ValidationFailed as exc:
            problems.extend(exc.problems or [str(exc)])
    ids = [e.event_id for e in events]
    for i, event_id in enumerate(ids):
        if event_id in ids[:i]:
            problems.append(f"{path}: event {i}: key 'event_id': duplicate {event_id!r}")
    if problems:
        raise ValidationFailed(problems[0], []) if len(problems) == 1 else ValidationFailed(
            f"{path}: {len(problems)} problems", problems)
    return events
