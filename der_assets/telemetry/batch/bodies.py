"""What the SMA and Fronius batch readers share: which bodies msgspec may decode as load_json
would, and per-body counts over rows laid body after body."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np


def decodable(body) -> bool:
    """load_json's contract: bytes, valid UTF-8 throughout (msgspec does not check skipped fields).

    Numbers are each reader's to guard: load_json hands a body with 19 digits in a row to the
    stdlib decoder, which keeps such integers exact where orjson rounds them, so a reader takes
    only integers that fit int64 and values below 2**53, which both decoders read alike (the
    same test over the whole body cost half the SMA reader's time)."""
    if not isinstance(body, (bytes, bytearray)):
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
