"""What every parsed payload must satisfy, however hostile (issue 17, item 21).

check() runs one payload and judges it:
- the result is rows or a ParseError, never another exception (`unhandled`);
- it finishes within a time bound (`hang`: interrupted by a timer) and, under `make fuzz`, a
  memory bound (`memory`: the runner caps the address space, so a blow-up is a MemoryError);
- no value is non-finite;
- no measured or estimated row the input does not support (`invented`): every such row starts
  within SUPPORT_SLACK of an instant the payload itself states (a date string, epoch seconds, a
  Green Button start) and no later than received_at + a day;
- the fast path (normalize_day) and the one-body path (normalize_day_reference) agree on the day.
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd

from der_assets.registry.demo import demo_fleet
from der_assets.telemetry import ParseError, parse_payload
from der_assets.telemetry.batch import readers
from der_assets.telemetry.counters import MAX_SPREAD_S
from der_assets.telemetry.daily import LandedPayload, normalize_day, normalize_day_reference
from der_assets.telemetry.parsers._common import FUTURE_SLACK
from der_assets.telemetry.schema import KEY_COLUMNS

from .seeds import Seed

#: a row is supported when it starts this close to an instant the payload states: a counter gap is
#: spread up to a day, local labels are up to 14 h from UTC, a label may end its interval
SUPPORT_SLACK = pd.Timedelta(seconds=MAX_SPREAD_S) + pd.Timedelta(hours=15)
DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")
XML_START = re.compile(rb"<(?:\w+:)?start>\s*(-?\d+)\s*</(?:\w+:)?start>")
STRINGS = ["site_id", "device_id", "source", "channel", "quality"]


class Hang(BaseException):
    """Raised by the case timer; a BaseException so no parser's `except Exception` swallows it."""


@dataclass
class Verdict:
    outcome: str  # rows | parse_error | unhandled | hang | memory
    seconds: float
    rows: int = 0
    non_finite: int = 0
    invented: int = 0
    disagreement: str | None = None
    error: str = ""
    notes: list = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return (self.outcome in ("unhandled", "hang", "memory") or self.non_finite > 0 or self.invented > 0
                or self.disagreement is not None)

    def why(self) -> str:
        parts = [self.outcome if self.outcome in ("unhandled", "hang", "memory") else ""]
        if self.non_finite:
            parts.append(f"{self.non_finite} non-finite values")
        if self.invented:
            parts.append(f"{self.invented} invented rows")
        if self.disagreement:
            parts.append(f"paths disagree: {self.disagreement}")
        return "; ".join(p for p in parts if p) + (f" ({self.error})" if self.error else "")


class _Timer:
    """A wall-clock bound on a block (SIGALRM, main thread), restoring any timer set before it
    (pytest-timeout's) with the time it had left."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def __enter__(self):
        self.started = time.perf_counter()
        self.previous = signal.signal(signal.SIGALRM, self._fire)
        self.outer = signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def _fire(self, *_):
        raise Hang(f"no answer within {self.seconds} s")

    def __exit__(self, *exc):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self.previous)
        if self.outer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, max(self.outer[0] - (time.perf_counter() - self.started), 0.001))
        return False


def stated_instants(payload: bytes) -> np.ndarray:
    """Every instant the payload states, as int64 UTC ns: date strings (naive ones read as UTC;
    the slack covers the site zone), epoch seconds after 2000 in JSON numbers, Green Button starts."""
    out: list[int] = []
    if payload.lstrip()[:1] == b"<":
        for m in XML_START.finditer(payload):
            s = int(m.group(1))
            if abs(s) < 9.2e9:
                out.append(s * 10**9)
        return np.array(sorted(out), dtype=np.int64)
    try:
        text = payload.decode("utf-8-sig")
    except UnicodeDecodeError:
        return np.zeros(0, dtype=np.int64)
    for m in DATE_TEXT.finditer(text):
        try:
            ts = pd.Timestamp(m.group(0).replace(" ", "T"))
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            out.append(ts.as_unit("ns").value)
        except (ValueError, OverflowError):  # beyond pandas' nanosecond range (year 9999): states nothing
            continue
    for m in re.finditer(r"(?<![\w.])(\d{9,10}(?:\.\d+)?)(?![\w.])", text):
        s = float(m.group(1))
        if 9.46e8 <= s < 9.2e9:
            out.append(int(s * 1e9))
    return np.array(sorted(out), dtype=np.int64)


def unsupported(df: pd.DataFrame, payload: bytes, received_at: pd.Timestamp) -> int:
    """Measured or estimated rows no instant of the payload supports (module docstring)."""
    claims = df[df["quality"].isin(["measured", "estimated"])]
    if claims.empty:
        return 0
    start = claims["interval_start"].array.asi8
    stated = stated_instants(payload)
    late = start > (received_at + FUTURE_SLACK).value
    if not len(stated):
        return int(len(start))
    at = np.clip(np.searchsorted(stated, start), 1, len(stated) - 1) if len(stated) > 1 else np.zeros(len(start), int)
    nearest = np.minimum(np.abs(stated[at] - start), np.abs(stated[np.maximum(at - 1, 0)] - start))
    return int(((nearest > SUPPORT_SLACK.value) | late).sum())


def parse(seed: Seed, payload: bytes) -> pd.DataFrame:
    return parse_payload(seed.source, seed.endpoint, payload, site_id=seed.site_id, tz=seed.tz,
                         received_at=seed.received_at)


def check(seed: Seed, payload: bytes, *, time_limit_s: float = 10.0, agree: bool = False) -> Verdict:
    """Run one payload through parse_payload (and, with `agree`, both fleet-day paths) and judge it."""
    started = time.perf_counter()
    df = None
    try:
        with _Timer(time_limit_s):
            df = parse(seed, payload)
        verdict = Verdict("rows", 0.0, rows=len(df))
    except ParseError as exc:
        verdict = Verdict("parse_error", 0.0, error=str(exc)[:300])
    except Hang as exc:
        verdict = Verdict("hang", 0.0, error=str(exc))
    except MemoryError:
        verdict = Verdict("memory", 0.0, error="MemoryError")
    except Exception as exc:  # noqa: BLE001 - exactly what the property forbids: recorded, not raised
        verdict = Verdict("unhandled", 0.0, error=f"{type(exc).__name__}: {exc}"[:300])
    if df is not None:
        values = df["value"].to_numpy(dtype="float64")
        verdict.non_finite = int(np.isinf(values).sum())
        verdict.invented = unsupported(df, payload, seed.received_at)
    if agree and verdict.outcome in ("rows", "parse_error") and has_fast_path(seed):
        try:
            with _Timer(time_limit_s * 3):
                verdict.disagreement = disagreement(seed, payload)
        except Hang as exc:
            verdict.outcome, verdict.error = "hang", f"fleet day: {exc}"
        except MemoryError:
            verdict.outcome, verdict.error = "memory", "fleet day: MemoryError"
        except Exception as exc:  # noqa: BLE001 - normalize_day must never raise on a bad payload
            verdict.outcome, verdict.error = "unhandled", f"fleet day: {type(exc).__name__}: {exc}"[:300]
    verdict.seconds = time.perf_counter() - started
    return verdict


# ---- the fleet-day paths ----------------------------------------------------------------------------

def has_fast_path(seed: Seed) -> bool:
    return (seed.source, seed.endpoint) in _readers()


@lru_cache(maxsize=1)
def _readers():
    return readers()


@lru_cache(maxsize=64)
def _registry(source: str, site_id: str, tz: str | None) -> pd.DataFrame:
    """One demo site of the seed's vendor, under the seed's site id and zone."""
    fleet = demo_fleet(30)
    vendor = {"greenbutton": "solaredge", "generac": "generac"}.get(source, source)
    site = fleet.loc[fleet["telemetry_source"] == vendor, "site_id"].iloc[0]
    one = fleet[fleet["site_id"] == site].copy()
    one["site_id"] = site_id
    if tz:
        one["timezone"] = tz
    return one.reset_index(drop=True)


@lru_cache(maxsize=64)
def _day_of(seed: Seed) -> pd.Timestamp:
    """The UTC day the seed's rows begin on (a corpus case with no readable base: the day before receipt)."""
    try:
        rows = parse(seed, seed.payload)
    except ParseError:
        rows = None
    if rows is None or rows.empty:
        return (seed.received_at - pd.Timedelta(days=1)).floor("D")
    return rows["interval_start"].min().floor("D")


def _canonical(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.astype({c: object for c in STRINGS}).sort_values(KEY_COLUMNS).reset_index(drop=True)


def disagreement(seed: Seed, payload: bytes) -> str | None:
    """None when normalize_day and normalize_day_reference give the same day for the seed's own
    payload and the mutated one landed after it; else what differs."""
    registry = _registry(seed.source, seed.site_id, seed.tz)
    landed = [LandedPayload(1, seed.source, seed.endpoint, seed.site_id, seed.received_at, seed.payload),
              LandedPayload(2, seed.source, seed.endpoint, seed.site_id, seed.received_at + pd.Timedelta(minutes=5),
                            payload)]
    kwargs = dict(day_start=_day_of(seed), believed_at=seed.received_at + pd.Timedelta(hours=1),
                  sources=[seed.source])
    fast, ref = normalize_day(landed, registry, **kwargs), normalize_day_reference(landed, registry, **kwargs)
    if sorted(fast.parsed_ids) != sorted(ref.parsed_ids):
        return f"parsed {sorted(fast.parsed_ids)} vs {sorted(ref.parsed_ids)}"
    a, b = _canonical(fast.rows), _canonical(ref.rows)
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    try:
        pd.testing.assert_frame_equal(a, b)
    except AssertionError as exc:
        return "rows: " + " ".join(str(exc).split())[:300]
    if len(fast.review) != len(ref.review):
        return f"{len(fast.review)} review items vs {len(ref.review)}"
    return None


def corpus_entry(seed: Seed, payload: bytes, why: str) -> dict:
    """A case as the corpus keeps it: the payload itself, so it replays whatever the mutators become."""
    entry = {"seed": seed.name, "source": seed.source, "endpoint": seed.endpoint, "site_id": seed.site_id,
             "tz": seed.tz, "received_at": seed.received_at.isoformat(), "why": why}
    try:
        entry["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        entry["payload_hex"] = payload.hex()
    return entry


def from_corpus(entry: dict) -> tuple[Seed, bytes]:
    payload = entry["payload"].encode("utf-8") if "payload" in entry else bytes.fromhex(entry["payload_hex"])
    from .seeds import all_seeds

    base = {s.name: s for s in all_seeds()}.get(entry.get("seed"))
    seed = Seed(entry.get("seed", "corpus"), entry["source"], entry["endpoint"],
                base.payload if base is not None else payload, pd.Timestamp(entry["received_at"]), entry.get("tz"),
                entry.get("site_id", "FUZZ-1"))
    return seed, payload


def dumps(entry: dict) -> str:
    return json.dumps(entry, indent=1, ensure_ascii=False) + "\n"
