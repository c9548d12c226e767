"""Baseline rule parameters as data: der_assets/settlement/params/baselines.csv.

Each row is one number or choice of one method's rule, with its source and a tag (verified,
verified-secondary, unverified) from shared/reference/capacity-settlement-rules.md. An operator
fixes an unverified value from the ISO manual with PARAMS.json, without touching code.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from der_assets.errors import ValidationFailed

TAGS = ("verified", "verified-secondary", "unverified", "override")


@dataclasses.dataclass(frozen=True)
class Param:
    """One rule parameter: its value (JSON), unit, tag and where the value comes from."""

    method: str
    name: str
    value: Any
    unit: str
    tag: str
    source: str
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.method}.{self.name}"

    def warning(self) -> str:
        """The stderr line for an unverified parameter a run used."""
        return f"unverified: {self.key}={json.dumps(self.value)} (source: {self.source})"


@functools.cache
def table() -> dict[str, dict[str, Param]]:
    """method -> name -> Param, from the packaged CSV."""
    text = resources.files("der_assets").joinpath("settlement/params/baselines.csv").read_text(encoding="utf-8")
    out: dict[str, dict[str, Param]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        tag = row["tag"].strip()
        if tag not in TAGS:
            raise ValueError(f"baselines.csv: {row['method']}.{row['parameter']}: unknown tag {tag!r}")
        out.setdefault(row["method"], {})[row["parameter"]] = Param(
            row["method"], row["parameter"], json.loads(row["value"]), row["unit"] or "", tag, row["source"],
            row.get("note") or "")
    return out


# The allowed values of the parameters that name a choice (the code's branches).
CHOICES = {
    "adjustment": ("additive", "multiplicative", "none"),
    "adjustment_anchor": ("event_start", "notified_at"),
    "reading": ("plc_minus_load_times_lf", "plc_minus_load_all_times_lf"),
    "similarity": ("rmse", "mae"),
    "cbl_method": ("pjm_high_4_of_5", "pjm_same_day_3_2", "pjm_match_day"),
}
# Whole-number ranges by unit (inclusive); other whole-number parameters must be >= 1.
WHOLE_RANGES = {"local hour": (0, 23), "month": (1, 12)}


def _checked(param: Param, value: Any) -> Any:
    """An override's value within the rule's domain (ValueError naming what is allowed)."""
    if value is None:
        if param.value is None or param.name in ("adjustment_cap_fraction", "load_floor_kw", "low_usage_fraction"):
            return None
        raise ValueError("may not be null")
    if param.name in CHOICES:
        if value not in CHOICES[param.name]:
            raise ValueError(f"{value!r} is not one of {', '.join(CHOICES[param.name])}")
        return value
    if param.name == "peak_hours_utc":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of UTC hour starts like '2025-07-21T20:00:00Z'")
        import pandas as pd

        try:
            stamps = [pd.Timestamp(v) for v in value]
        except ValueError:
            raise ValueError("expected a list of UTC hour starts like '2025-07-21T20:00:00Z'") from None
        if any(t.tzinfo is None or t != t.floor("h") for t in stamps):
            raise ValueError("every hour needs a UTC offset ('Z') and must start on the hour")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"not a finite number: {value!r}")
    if param.unit in ("h", "fraction"):
        if value < 0:
            raise ValueError(f"must be >= 0, got {value!r}")
        return value
    if param.unit == "kW":
        return value
    if isinstance(param.value, int) and not isinstance(param.value, bool):
        if value != int(value):
            raise ValueError(f"expected a whole number, got {value!r}")
        value = int(value)
        low, high = WHOLE_RANGES.get(param.unit, (1, None))
        if value < low or (high is not None and value > high):
            raise ValueError(f"must be >= {low}, got {value}" if high is None else f"must be {low}..{high}, got {value}")
        if param.unit == "s" and 3600 % value and value % 3600:
            raise ValueError(f"{value} s neither divides nor is a multiple of an hour")
        return value
    return value


def _flatten(method: str, overrides: Mapping[str, Any], where: str) -> dict[tuple[str, str], Any]:
    """PARAMS.json forms: {"lookback_days": 60} (the run's method), {"pjm_high_4_of_5.lookback_days": 60}
    or {"pjm_high_4_of_5": {"lookback_days": 60}}."""
    known = table()
    flat: dict[tuple[str, str], Any] = {}
    problems = []
    for key, value in overrides.items():
        if key in known and isinstance(value, Mapping):
            for name, v in value.items():
                flat[(key, str(name))] = v
        elif "." in key:
            m, name = key.split(".", 1)
            flat[(m, name)] = value
        else:
            flat[(method, key)] = value
    for (m, name), value in flat.items():
        if m not in known:
            problems.append(f"{where}: key {m + '.' + name!r}: unknown method {m!r}")
        elif name not in known[m]:
            problems.append(f"{where}: key {m + '.' + name!r}: unknown parameter (known: {', '.join(known[m])})")
        else:
            default = known[m][name].value
            if default is not None and value is not None and type(default) is not type(value) and not (
                    isinstance(default, (int, float)) and isinstance(value, (int, float))
                    and not isinstance(value, bool)):
                problems.append(f"{where}: key {m + '.' + name!r}: expected {type(default).__name__}, got {value!r}")
                continue
            try:
                flat[(m, name)] = _checked(known[m][name], value)
            except ValueError as exc:
                problems.append(f"{where}: key {m + '.' + name!r}: {exc}")
    if problems:
        raise ValidationFailed(problems[0], []) if len(problems) == 1 else ValidationFailed(
            f"{where}: {len(problems)} problems", problems)
    return flat


def resolve(method: str, overrides: Mapping[str, Any] | None = None, *, where: str = "params",
            with_methods: tuple[str, ...] = ()) -> dict[str, Param]:
    """The parameters of `method` (and of `with_methods`, keyed "method.name"), overrides applied.

    The method's own parameters are keyed by bare name; an override gets tag "override" and
    source `where`.
    """
    known = table()
    flat = _flatten(method, overrides or {}, where)
    out: dict[str, Param] = {}
    for m in (method, *with_methods):
        for name, p in known[m].items():
            if (m, name) in flat:
                p = dataclasses.replace(p, value=flat[(m, name)], tag="override", source=where)
            out[name if m == method else f"{m}.{name}"] = p
    return out


class UsedParams(dict):
    """Parameters that remember which ones a rule read, so a run warns only about those."""

    def __init__(self, data: Mapping[str, Param], used: set[str] | None = None, prefix: str = ""):
        super().__init__(data)
        self.used = set() if used is None else used
        self.prefix = prefix

    def __getitem__(self, key: str) -> Param:
        self.used.add(self.prefix + key)
        return super().__getitem__(key)

    def used_params(self) -> dict[str, Param]:
        return {k: dict.__getitem__(self, k) for k in self if k in self.used}


def warnings_for(params: Mapping[str, Param]) -> list[str]:
    """One line per unverified parameter used (all of them unless `params` tracks use)."""
    chosen = params.used_params() if isinstance(params, UsedParams) else params
    return [p.warning() for p in chosen.values() if p.tag == "unverified"]


def sub_params(params: Mapping[str, Param], method: str) -> dict[str, Param]:
    """The "method.name" entries of `params` for another method, keyed by bare name."""
    prefix = method + "."
    sub = {k[len(prefix):]: p for k, p in params.items() if k.startswith(prefix)}
    if isinstance(params, UsedParams):
        return UsedParams(sub, params.used, params.prefix + prefix)
    return sub
