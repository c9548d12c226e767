"""Telemetry normalization core: vendor payload bytes -> one canonical interval table.

Pure Python on pandas; no Dagster here (the defs/ layer wires it up).
"""

from .errors import ParseError
from .parsers import normalize_to_csv, parse_payload, supported_endpoints, to_csv
from .schema import CANONICAL_COLUMNS, CHANNELS, QUALITIES, IntervalTelemetry, empty_frame, validate

__all__ = [
    "CANONICAL_COLUMNS",
    "CHANNELS",
    "QUALITIES",
    "IntervalTelemetry",
    "ParseError",
    "empty_frame",
    "normalize_to_csv",
    "parse_payload",
    "supported_endpoints",
    "to_csv",
    "validate",
]
