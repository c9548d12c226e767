"""Typed parse failure, so an operator sees which payload broke and why, in one line."""

from __future__ import annotations

from typing import Optional, Tuple

import pandas as pd

Window = Optional[Tuple[Optional[pd.Timestamp], Optional[pd.Timestamp]]]


def _fmt_ts(ts: Optional[pd.Timestamp]) -> str:
    if ts is None or pd.isna(ts):
        return "?"
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC")
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ts.strftime("%Y-%m-%dT%H:%M:%S(local)")


class ParseError(ValueError):
    """A payload we refuse to turn into rows.

    Raised instead of emitting zeros or guesses: malformed JSON/XML, wrong units,
    missing required fields, negative lifetime counters, impossible local times.
    """

    def __init__(
        self,
        reason: str,
        *,
        source: str,
        endpoint: str,
        site_id: Optional[str],
        window: Window = None,
    ) -> None:
        self.reason = " ".join(str(reason).split())
        self.source = source
        self.endpoint = endpoint
        self.site_id = site_id
        self.window = window
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.window is None:
            win = "?"
        else:
            win = f"{_fmt_ts(self.window[0])}..{_fmt_ts(self.window[1])}"
        return (
            f"{self.source}/{self.endpoint} site={self.site_id} window={win}: {self.reason}"
        )

    def __reduce__(self):  # keep it picklable for multiprocess executors
        return (
            _rebuild,
            (self.reason, self.source, self.endpoint, self.site_id, self.window),
        )


def _rebuild(reason, source, endpoint, site_id, window):
    return ParseError(reason, source=source, endpoint=endpoint, site_id=site_id, window=window)
