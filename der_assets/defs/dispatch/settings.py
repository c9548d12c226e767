"""When an event's delivery figure is final: settings from the environment."""

from __future__ import annotations

import os

import pandas as pd

from der_assets.errors import UserError

FINAL_COVERAGE_ENV = "DER_DISPATCH_FINAL_COVERAGE_PCT"
FINAL_AFTER_ENV = "DER_DISPATCH_FINAL_AFTER_H"
DEFAULT_FINAL_COVERAGE_PCT = 95.0  # of the commanded battery-seconds: a few late or dead batteries do not hold it up
DEFAULT_FINAL_AFTER_H = 48.0  # vendors' late uploads arrive within a day or two; after that, judge what there is


def _number(name: str, default: float, low: float, high: float, unit: str) -> float:
    configured = os.environ.get(name)
    if not configured:
        return default
    try:
        value = float(configured)
    except ValueError:
        raise UserError(f"{name}={configured!r} is not a number ({unit})") from None
    if not low <= value <= high:
        raise UserError(f"{name}={configured!r} must be between {low:g} and {high:g} ({unit})")
    return value


def final_coverage_pct() -> float:
    """Telemetry coverage of the event (% of commanded battery-seconds) at which delivery is final."""
    return _number(FINAL_COVERAGE_ENV, DEFAULT_FINAL_COVERAGE_PCT, 0.0, 100.0, "percent")


def final_after() -> pd.Timedelta:
    """How long after an event its delivery may stay provisional; then it is final, flagged incomplete."""
    return pd.Timedelta(hours=_number(FINAL_AFTER_ENV, DEFAULT_FINAL_AFTER_H, 0.0, 24.0 * 31, "hours"))
