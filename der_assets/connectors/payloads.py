"""What every connector hands back: raw bytes plus who/what/when, ready for landing.land().

Connectors never parse. A pull returns RawPayload items whose `endpoint` is the parser's own
endpoint name, so `parse_payload(p.source, p.endpoint, p.content, site_id=p.site_id,
tz=p.tz, received_at=p.received_at)` is the whole hand-off. Also here: the generic pieces
the vendor modules share (SiteRef, window splitting, poll logs for snapshot endpoints, and
time cursors), none of which knows a vendor quirk.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Optional

import pandas as pd

UTC = dt.timezone.utc


def utc_now() -> dt.datetime:
    return dt.datetime.now(UTC)


def as_utc(when) -> dt.datetime:
    """Any tz-aware time (datetime or pandas) as a UTC datetime; naive times are refused."""
    ts = pd.Timestamp(when)
    if ts.tzinfo is None:
        raise ValueError(f"{when!r} must be timezone-aware")
    return ts.tz_convert("UTC").to_pydatetime()


@dataclass(frozen=True)
class RawPayload:
    """One vendor answer, byte for byte, with its provenance.

    window_start/window_end: the part of the caller's UTC window this request answers
    (None when the payload is not window-based, e.g. a file from the AMI inbox).
    tz: the site zone the parser needs for vendors that send local times without an offset.
    """

    content: bytes
    source: str
    endpoint: str
    site_id: Optional[str]
    window_start: Optional[dt.datetime]
    window_end: Optional[dt.datetime]
    received_at: dt.datetime
    tz: Optional[str] = None
    device_id: Optional[str] = None

    def land_kwargs(self) -> dict:
        """Keyword arguments for landing.land(engine, p.content, **p.land_kwargs())."""
        return {"source": self.source, "endpoint": self.endpoint, "received_at": self.received_at,
                "site_id": self.site_id, "window_start": self.window_start, "window_end": self.window_end}

    def parse_kwargs(self) -> dict:
        """Keyword arguments for telemetry.parse_payload(p.source, p.endpoint, p.content, **...)."""
        return {"site_id": self.site_id or "unknown", "device_id": self.device_id, "tz": self.tz,
                "received_at": self.received_at}


@dataclass(frozen=True)
class SiteRef:
    """A registry site as a connector needs it: our key, its zone, and the vendor's own id."""

    site_id: str
    tz: str
    vendor_ref: Optional[str] = None  # SolarEdge site id, Enphase system id, SMA plant id
    device_ref: Optional[str] = None  # a vendor device id where the API wants one (SMA deviceId)

    def ref(self) -> str:
        if not self.vendor_ref:
            raise ValueError(f"site {self.site_id} has no vendor_ref (the vendor's id for it)")
        return str(self.vendor_ref)


def split_window(start, end, max_span: pd.Timedelta | pd.DateOffset) -> Iterator[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end) cut into consecutive pieces no longer than max_span (calendar offsets allowed)."""
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    if hi <= lo:
        return
    while lo < hi:
        nxt = min(lo + max_span, hi)
        yield lo, nxt
        lo = nxt


def local_days(start, end, tz: str) -> Iterator[tuple[dt.date, pd.Timestamp, pd.Timestamp]]:
    """The site-local calendar days that overlap [start, end): (date, day start UTC, day end UTC)."""
    lo, hi = pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")
    day = lo.tz_convert(tz).date()
    while True:
        d0 = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
        d1 = (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize(
            tz, nonexistent="shift_forward", ambiguous=False).tz_convert("UTC")
        if d0 >= hi:
            return
        if d1 > lo:
            yield day, d0, d1
        day = day + dt.timedelta(days=1)


# ---- cursors ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """How far a window-based source has been pulled: everything before `through` (UTC) is in."""

    through: dt.datetime

    def to_json(self) -> str:
        return json.dumps({"through": pd.Timestamp(self.through).isoformat()})

    @classmethod
    def from_json(cls, text: Optional[str]) -> Optional["Cursor"]:
        if not text:
            return None
        return cls(as_utc(json.loads(text)["through"]))


@dataclass(frozen=True)
class PullPlan:
    """The next request window and the cursor to store once it has been landed."""

    window_start: dt.datetime
    window_end: dt.datetime
    cursor: Cursor

    @property
    def empty(self) -> bool:
        return self.window_end <= self.window_start


def next_window(last: Optional[Cursor], now, *, interval_s: int, settle_s: float = 0.0,
                lookback_s: float = 0.0, first_lookback_s: float = 86400.0) -> PullPlan:
    """Pure: from the last cursor and the time now, the next window to ask for.

    The window ends at the last whole interval that is at least `settle_s` old, and starts
    `lookback_s` before the cursor so late or still-settling intervals are asked for again
    (a re-read lands as a new payload; parsing supersedes by revision). With no cursor the
    first pull reaches back `first_lookback_s`. The cursor never moves backwards.
    """
    step = pd.Timedelta(seconds=int(interval_s))
    end = (pd.Timestamp(as_utc(now)) - pd.Timedelta(seconds=settle_s)).floor(step)
    if last is None:
        start = (end - pd.Timedelta(seconds=first_lookback_s)).floor(step)
        through = end
    else:
        through = max(pd.Timestamp(last.through), end)
        start = (pd.Timestamp(last.through) - pd.Timedelta(seconds=lookback_s)).floor(step)
    return PullPlan(as_utc(start), as_utc(max(end, start)), Cursor(as_utc(through)))


# ---- poll logs for snapshot endpoints ---------------------------------------------------------


@dataclass
class PollLog:
    """Snapshot bodies of one endpoint collected over time; becomes one RawPayload.

    Snapshot parsers (Enphase gateway, sonnen, Fronius PowerFlow, SunSpec) difference lifetime
    counters, so they need several polls concatenated in one payload. A body that is not one
    well-formed JSON document would poison the whole log, so it is set aside and landed on
    its own (the parser will quarantine it), never dropped and never "repaired".
    """

    source: str
    endpoint: str
    site_id: str
    tz: Optional[str] = None
    device_id: Optional[str] = None
    header: list[bytes] = field(default_factory=list)  # bodies that must lead the log (e.g. /ivp/meters)
    polls: list[tuple[dt.datetime, bytes]] = field(default_factory=list)
    rejected: list[tuple[dt.datetime, bytes]] = field(default_factory=list)

    def add(self, polled_at, body: bytes) -> bool:
        """Keep one poll's body; False (and set aside) if it is not a whole JSON document."""
        at = as_utc(polled_at)
        if well_formed_json(body):
            self.polls.append((at, bytes(body)))
            return True
        self.rejected.append((at, bytes(body)))
        return False

    def payloads(self, received_at) -> list[RawPayload]:
        """The log as one payload (window = first..last poll), plus one per rejected body."""
        out = []
        got = as_utc(received_at)
        if self.polls:
            content = b"\n".join([*self.header, *(b for _t, b in self.polls)]) + b"\n"
            out.append(self._payload(content, self.polls[0][0], self.polls[-1][0], got))
        for at, body in self.rejected:
            out.append(self._payload(body, at, at, got))
        return out

    def _payload(self, content: bytes, start, end, received_at) -> RawPayload:
        return RawPayload(content, self.source, self.endpoint, self.site_id, start, end, received_at,
                          tz=self.tz, device_id=self.device_id)


def well_formed_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def wrap_polled(polled_at, body: bytes) -> bytes:
    """{"polled_at": <RFC3339>, "body": <the raw bytes verbatim>} for bodies with no time of their own.

    Spliced as bytes, so the vendor's answer is kept exactly (a truncated one stays truncated
    and fails parsing, as it should).
    """
    stamp = json.dumps(pd.Timestamp(as_utc(polled_at)).isoformat()).encode()
    return b'{"polled_at": ' + stamp + b', "body": ' + bytes(body).strip() + b"}"


Clock = Callable[[], dt.datetime]
