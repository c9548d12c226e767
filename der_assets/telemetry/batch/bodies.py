"""What the SMA and Fronius batch readers share: which bodies msgspec may decode as load_json
would, and per-body counts over rows laid body after body."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo

import numpy as np

# load_json sends a body with 19 or more digits in a row to the stdlib decoder (ints past int64
# stay ints there): those bodies are the one-body parser's.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def decodable(body) -> bool:
    """load_json's contract (bytes, valid UTF-8 throughout: msgspec does not check skipped fields),
    and numbers msgspec reads as orjson does."""
    if not isinstance(body, (bytes, bytearray)) or _LONG_DIGITS.search(body):
        return False
    if body.isascii():
        return True
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def zone_ok(tz) -> bool:
    """An IANA zone parse_payload accepts (it refuses unknown names before parsing)."""
    if not isinstance(tz, str) or not tz:
        return False
    try:
        ZoneInfo(tz)
        return True
    except (ValueError, KeyError, OSError):
        return False


def segment_of_rows(lengths: np.ndarray) -> np.ndarray:
    """Segment index of each row, segments of `lengths` rows laid one after another."""
    return np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)


def per_segment(mask: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """How many rows of each segment `mask` holds."""
    counts = np.r_[0, np.cumsum(mask, dtype=np.int64)]
    ends = np.cumsum(lengths)
    return counts[ends] - counts[ends - lengths]
