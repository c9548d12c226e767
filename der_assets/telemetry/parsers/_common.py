"""Helpers every vendor parser shares: strict decoding, number coercion, row assembly.

Vendor quirks do NOT live here; each vendor module holds all of its own. This file only
knows generic payload hygiene (truncated JSON, NaN literals, "97%" strings) and how to
turn per-interval arrays into canonical rows.

Two rules every parser follows through the helpers here (issue 17):

- The number rule: a value is a finite number. JSON true/false is never a number (Python's
  bool is an int), nor a type or enum field; 1e400, "inf" and a product that overflows are
  never values. Each of those is a ParseError naming the value, never a row, on the one-body
  path and the fleet-day fast path alike (`to_float`, `to_int`, `to_text`, `epoch_times`; `rows`
  refuses a non-finite value however it was computed).
- The time rule: every instant a payload states lies in [EARLIEST, received_at + FUTURE_SLACK]
  (2000-01-01Z up to a day after the payload reached us: nothing is measured after it is
  received, beyond a device clock running ahead), and one payload's instants span at most
  MAX_SPAN (400 days: a year of AMI readings and a margin). An instant outside is a ParseError
  naming it, so one absurd stamp (epoch 0, a readingTime of 12.5, a year 2060) cannot turn a
  5 KB poll log into decades of rows. `Ctx.see_window`, which every parser calls with the
  times it read before it builds rows, applies it; declared windows go through
  `Ctx.check_times`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, List, NoReturn, Optional, Tuple

import numpy as np
import pandas as pd

try:  # optional speed-up; the stdlib decoder below stays the reference behaviour
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson absent
    _orjson = None

# orjson reads integers outside [-2**63, 2**64) as floats where json keeps ints: any run of 19+
# digits sends the payload to the stdlib decoder.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")

from ..errors import ParseError, Window
from ..quality import SPIKE_MARGIN
from ..schema import CANONICAL_COLUMNS, empty_frame

WH_PER_KWH = 1000.0
WS_PER_KWH = 3.6e6

#: the time rule (module docstring)
EARLIEST = pd.Timestamp("2000-01-01T00:00:00Z")
FUTURE_SLACK = pd.Timedelta(days=1)
MAX_SPAN = pd.Timedelta(days=400)


@dataclass
class Ctx:
    """Who and what is being parsed, so any failure names source, site, endpoint and window."""

    source: str
    endpoint: str
    site_id: str
    received_at: pd.Timestamp
    device_id: Optional[str] = None
    tz: Optional[str] = None
    window: Window = None
    notes: List[str] = field(default_factory=list)
    #: the PV inverter's rated AC kW (the registry's rated_kw), when the caller knows it
    nameplate_kw: Optional[float] = None

    def note(self, text: str) -> None:
        """Something read, dropped or assumed that the operator should hear about (`der normalize`
        prints these on stderr); never a substitute for a ParseError."""
        self.notes.append(text)

    def fail(self, reason: str, window: Window = None) -> NoReturn:
        raise ParseError(
            reason, source=self.source, endpoint=self.endpoint, site_id=self.site_id,
            window=window if window is not None else self.window,
        )

    def see_window(self, times) -> None:
        """Remember the payload's time span for error messages, after the time rule passes."""
        idx = pd.DatetimeIndex(times).dropna()
        if len(idx):
            self.window = (idx.min(), idx.max())
            self.check_times(idx)

    def check_times(self, times, what: str = "timestamp") -> None:
        """The time rule (module docstring): ParseError naming the first instant outside
        [EARLIEST, received_at + FUTURE_SLACK], or the one farthest from the others when the
        payload spans more than MAX_SPAN."""
        idx = pd.DatetimeIndex(times).dropna()
        if not len(idx):
            return
        idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
        ns = idx.asi8
        ceiling = self.received_at + FUTURE_SLACK
        out = (ns < EARLIEST.value) | (ns > ceiling.value)
        if out.any():
            self.fail(f"{what} {_iso(idx[int(np.argmax(out))])} is outside {_iso(EARLIEST)}.."
                      f"{_iso(ceiling)} (received_at + 1 day): refused, not read")
        span = int(ns.max()) - int(ns.min())
        if span > MAX_SPAN.value:
            far = int(np.argmax(np.abs(ns - np.median(ns))))
            self.fail(f"{what} {_iso(idx[far])} lies {span / 86400e9:.0f} days from the payload's other "
                      f"readings (one payload spans at most {MAX_SPAN.days} days): refused, not read")

    def need_tz(self, payload_tz: Optional[str] = None) -> str:
        """Site tz from the caller; a tz named in the payload must agree with it."""
        if self.tz and payload_tz and self.tz != payload_tz:
            self.fail(f"payload time zone {payload_tz!r} disagrees with site tz {self.tz!r}")
        tz = self.tz or payload_tz
        if not tz:
            self.fail("local-time payload needs the site time zone (tz)")
        return tz


def _iso(ts) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _no_constants(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def load_json(payload: bytes, ctx: Ctx) -> Any:
    """Exactly one strict JSON document; truncated, empty or HTML bodies raise ParseError."""
    docs = load_json_docs(payload, ctx)
    if len(docs) != 1:
        ctx.fail(f"expected one JSON document, found {len(docs)}")
    return docs[0]


def load_json_docs(payload: bytes, ctx: Ctx) -> List[Any]:
    """One or more concatenated JSON documents (a poll log: NDJSON or pretty-printed bodies)."""
    if not isinstance(payload, (bytes, bytearray)):
        ctx.fail(f"payload must be bytes, got {type(payload).__name__}")
    if _orjson is not None and not _LONG_DIGITS.search(payload):
        # Fast path for the common case, one strict document. Anything orjson refuses (several
        # documents, a BOM, NaN literals, 1e400, lone surrogates, bad bytes) goes through the
        # stdlib path below, which decides and words the error exactly as before.
        try:
            return [_orjson.loads(payload)]
        except (_orjson.JSONDecodeError, TypeError, ValueError):
            pass
    try:
        text = bytes(payload).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        ctx.fail(f"payload is not UTF-8: {exc}")
    dec = json.JSONDecoder(parse_constant=_no_constants)
    docs, pos, n = [], 0, len(text)
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            break
        try:
            doc, pos = dec.raw_decode(text, pos)
        except ValueError as exc:
            snippet = text[pos : pos + 40].replace("\n", " ")
            ctx.fail(f"malformed or truncated JSON at char {pos} ({exc}); starts {snippet!r}")
        docs.append(doc)
    if not docs:
        ctx.fail("empty payload")
    return docs


def unwrap_polls(docs: Iterable[Any]) -> List[Tuple[Optional[pd.Timestamp], Any]]:
    """Split poll-log entries into (polled_at, body).

    A connector may wrap a body that carries no timestamp of its own as
    {"polled_at": "<RFC3339 with offset>", "body": <raw body>}; bare bodies get None.
    """
    out = []
    for d in docs:
        if isinstance(d, dict) and set(d) == {"polled_at", "body"}:
            ts = pd.Timestamp(d["polled_at"])
            if ts.tzinfo is None:
                raise ValueError(f"polled_at {d['polled_at']!r} has no UTC offset")
            out.append((ts.tz_convert("UTC"), d["body"]))
        else:
            out.append((None, d))
    return out


def is_number(x: Any) -> bool:
    """A JSON number as Python reads it: int or float, and never a bool (True is an int)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def to_float(x: Any) -> float:
    """A vendor number: int/float, numeric string ("-12.20"), or percent string ("97%").

    None means "no data" (NaN). Booleans, empty strings, words and non-finite numbers (JSON
    1e400, "inf", "nan") are errors, never zero or infinity.
    """
    if x is None:
        return float("nan")
    if isinstance(x, (bool, np.bool_)):
        raise ValueError(f"boolean {x!r} where a number was expected")
    if is_number(x):
        v = float(x)  # an int beyond a double raises OverflowError
    elif isinstance(x, str):
        s = x.strip()
        if s.endswith("%"):
            s = s[:-1].strip()
        if s == "":
            raise ValueError(f"empty string {x!r} where a number was expected")
        v = float(s)  # raises ValueError on words
    else:
        raise ValueError(f"{type(x).__name__} {x!r} where a number was expected")
    if not np.isfinite(v):
        raise ValueError(f"non-finite number {x!r} where a finite number was expected")
    return v


def to_int(x: Any, what: str) -> int:
    """A whole number (an id, a scale factor, a status code): int, integral float or digit string.
    Booleans, fractions and words are errors (int(True) would read 1, int(1.9) 1)."""
    if isinstance(x, str) and x.strip().lstrip("+-").isdigit():
        return int(x.strip())
    if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)):
        return int(x)
    v = to_float(x) if x is not None else None
    if v is None or not np.isfinite(v) or v != int(v) or isinstance(x, str):
        raise ValueError(f"{what} {x!r} is not a whole number")
    return int(v)


def to_text(x: Any, what: str) -> Optional[str]:
    """A type or enum field: a string, or None when absent. A boolean or number there is an
    error, never a value that silently matches no branch (or the wrong one)."""
    if x is None or isinstance(x, str):
        return x
    raise ValueError(f"{what} {x!r} is not a string")


#: epoch seconds whose nanoseconds fit int64 (pandas' range, to 2262); the time rule is narrower
_EPOCH_S_MAX = 9.2e9


def epoch_times(values: Iterable[Any], what: str) -> pd.DatetimeIndex:
    """UTC instants from epoch seconds (numbers or numeric strings), by the number rule: a
    boolean, null, non-finite or out-of-range value is an error, never 1970 or NaT."""
    secs = []
    for v in values:
        if v is None:
            raise ValueError(f"{what} is null where epoch seconds were expected")
        s = to_float(v) if not isinstance(v, str) else float(v)
        if not np.isfinite(s) or abs(s) > _EPOCH_S_MAX:
            raise ValueError(f"{what} {v!r} is not an epoch second")
        secs.append(s)
    return pd.DatetimeIndex(pd.to_datetime(np.round(np.asarray(secs, dtype="float64") * 1e9).astype("int64"),
                                           utc=True))


def floats(values: Iterable[Any]) -> np.ndarray:
    return np.array([to_float(v) for v in values], dtype="float64")


def rows(
    ctx: Ctx,
    channel: str,
    interval_start,
    value,
    quality,
    interval_s: int,
    device_id: Optional[str] = None,
) -> pd.DataFrame:
    """Canonical rows for one channel; missing quality forces a null value and vice versa."""
    start = pd.DatetimeIndex(pd.to_datetime(pd.Index(interval_start), utc=True))
    n = len(start)
    val = np.asarray(value, dtype="float64") if np.ndim(value) else np.full(n, float(value))
    qual = np.asarray(quality, dtype=object) if np.ndim(quality) else np.full(n, quality, dtype=object)
    inf = np.isinf(val)
    if inf.any():  # the number rule: an overflow (1e308 W x an interval) is no value
        k = int(np.argmax(inf))
        ctx.fail(f"{channel} value {val[k]} at {_iso(start[k])} is not finite (the payload's numbers overflow)")
    qual = np.where(np.isnan(val), "missing", qual)
    val = np.where(qual == "missing", np.nan, val)
    dev = device_id or ctx.device_id or ctx.site_id
    df = pd.DataFrame(
        {
            "site_id": np.full(n, ctx.site_id, dtype=object),
            "device_id": np.full(n, str(dev), dtype=object),
            "source": np.full(n, ctx.source, dtype=object),
            "channel": np.full(n, channel, dtype=object),
            "interval_start": start,
            "interval_s": np.full(n, int(interval_s), dtype="int64"),
            "value": val,
            "quality": qual,
            "received_at": _repeat_utc(ctx.received_at, n),
            "revision": np.zeros(n, dtype="int64"),
        }
    )
    return df[CANONICAL_COLUMNS]


def _repeat_utc(ts: pd.Timestamp, n: int) -> pd.DatetimeIndex:
    """`ts` n times as datetime64[ns, UTC] (same as DatetimeIndex([ts] * n, tz="UTC"), without n objects)."""
    if not n:
        return pd.DatetimeIndex([], tz="UTC")
    ns = pd.Timestamp(ts).tz_convert("UTC").as_unit("ns").value
    return pd.DatetimeIndex(np.full(n, ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")


def from_counter(ctx: Ctx, channel: str, frame: pd.DataFrame, interval_s: int, scale: float = 1.0,
                 device_id: Optional[str] = None) -> pd.DataFrame:
    """Rows from a counters.counter_to_intervals / combine_net frame, scaled to kWh."""
    return rows(ctx, channel, frame["interval_start"], frame["energy"].to_numpy() * scale,
                frame["quality"].to_numpy(), interval_s, device_id)


def concat(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return empty_frame()
    return pd.concat(frames, ignore_index=True)[CANONICAL_COLUMNS]


def power_to_intervals(t_utc, power_w, interval_s: int) -> pd.DataFrame:
    """Integrate instantaneous power samples: mean W in each interval x interval length.

    Only used where the device exposes no energy counter, so the result is 'estimated'.
    Intervals whose samples are all null are 'missing'; intervals with no sample are not
    emitted (the caller's window decides whether they exist). An interval holding two samples
    of one instant that disagree is 'suspect' (which one is right is not known).
    """
    t = pd.DatetimeIndex(pd.to_datetime(pd.Index(t_utc), utc=True))
    p = pd.Series(np.asarray(power_w, dtype="float64"))
    start = t.floor(f"{int(interval_s)}s")
    g = p.groupby(start.asi8).mean()
    energy = g.to_numpy() * interval_s / WS_PER_KWH
    quality = np.where(np.isnan(energy), "missing", "estimated")
    conflicted = np.isin(g.index.to_numpy(), start.asi8[conflicting_duplicates(t.asi8, p.to_numpy())])
    quality[conflicted & ~np.isnan(energy)] = "suspect"
    return pd.DataFrame(
        {"interval_start": pd.to_datetime(g.index.to_numpy(), utc=True), "energy": energy, "quality": quality}
    )


def soc_at_interval_end(t_utc, soc_pct, interval_s: int) -> pd.DataFrame:
    """SoC snapshots -> soc_pct per interval (the last sample at or before the interval end).

    'measured' when the sample is within 10% of the interval of its end, else 'estimated'; the
    last of two samples of one instant that disagree is taken, 'suspect'.
    """
    t = pd.DatetimeIndex(pd.to_datetime(pd.Index(t_utc), utc=True))
    s = pd.Series(np.asarray(soc_pct, dtype="float64"), index=t.asi8).dropna().sort_index(kind="stable")
    if s.empty:
        return pd.DataFrame({"interval_start": pd.DatetimeIndex([], tz="UTC"), "energy": [], "quality": []})
    ns = int(interval_s) * 10**9
    end = -((-s.index.to_numpy()) // ns) * ns
    df = pd.DataFrame({"end": end, "t": s.index.to_numpy(), "v": s.to_numpy()}).groupby("end").last()
    lag = (df.index.to_numpy() - df["t"].to_numpy()) / 1e9
    quality = np.where(lag <= 0.1 * interval_s, "measured", "estimated")
    conflicted = conflicting_duplicates(s.index.to_numpy(), s.to_numpy())
    quality[np.isin(df["t"].to_numpy(), s.index.to_numpy()[conflicted])] = "suspect"
    return pd.DataFrame(
        {"interval_start": pd.to_datetime(df.index.to_numpy() - ns, utc=True), "energy": df["v"].to_numpy(), "quality": quality}
    )


def conflicting_duplicates(t_ns, values) -> np.ndarray:
    """Per sample: another sample has the same instant and a different value (NaN equals NaN).

    A repeated reading with the same value is harmless; one with another value is a conflict
    nobody can settle, so what it feeds is 'suspect' (and reaches review), never silently one.
    """
    t = np.asarray(t_ns, dtype="int64")
    v = np.asarray(values, dtype="float64")
    if len(t) < 2:
        return np.zeros(len(t), dtype=bool)
    frame = pd.DataFrame({"t": t, "v": np.where(np.isnan(v), np.inf, v)})
    return frame.groupby("t")["v"].transform("nunique").to_numpy() > 1


def spike_mask(values: np.ndarray, factor: float = 10.0, min_count: int = 12) -> np.ndarray:
    """Interval energies implausibly far above the payload's own typical level.

    True where value > factor x the 90th percentile of the positive values; needs at least
    `min_count` positive values to judge, else nothing is flagged.
    """
    v = np.asarray(values, dtype="float64")
    pos = v[np.isfinite(v) & (v > 0)]
    if len(pos) < min_count:
        return np.zeros(len(v), dtype=bool)
    ref = np.percentile(pos, 90)
    return np.isfinite(v) & (v > factor * ref)


def spike_mask_per_segment(wh: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """spike_mask per segment (rows of `lengths` segments laid end to end), for the fleet-day
    batch readers. A sorted-row estimate of each body's 90th percentile finds the only
    bodies that could hold a spike; spike_mask itself decides for those."""
    out = np.zeros(len(wh), dtype=bool)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for n in np.unique(lengths):
        if n < 12:
            continue
        bodies_n = np.flatnonzero(lengths == n)
        if len(bodies_n) == len(lengths):  # every body the same length: a view, no copy
            m = wh.reshape(len(lengths), n)
        else:
            m = wh[offsets[bodies_n][:, None] + np.arange(n)]
        with np.errstate(invalid="ignore"):
            srt = np.where(m > 0, m, np.inf)  # NaN > 0 is False
        srt.sort(axis=1)
        k = np.isfinite(srt).sum(axis=1)
        r = np.flatnonzero(k >= 12)
        if not len(r):
            continue
        at = 0.9 * (k[r] - 1)
        lo = np.floor(at).astype(np.int64)
        hi = np.minimum(lo + 1, k[r] - 1)
        p90 = srt[r, lo] + (srt[r, hi] - srt[r, lo]) * (at - lo)
        top = srt[r, k[r] - 1]
        for row in r[top > 10.0 * p90 * (1 - 1e-9)]:
            body = bodies_n[row]
            out[offsets[body]:offsets[body + 1]] = spike_mask(m[row])
    return out


def over_nameplate(kwh: np.ndarray, interval_s: int, nameplate_kw: Optional[float]) -> np.ndarray:
    """Interval energies a `nameplate_kw` device cannot make in `interval_s`: the same limit as the
    fleet-day check (quality.flag_suspect, 10 % margin), so a short payload is judged by physics
    where spike_mask has too few values to judge. No nameplate: nothing is flagged."""
    v = np.asarray(kwh, dtype="float64")
    if nameplate_kw is None or not np.isfinite(nameplate_kw) or nameplate_kw <= 0:
        return np.zeros(len(v), dtype=bool)
    limit = float(nameplate_kw) * interval_s / 3600.0 * SPIKE_MARGIN
    with np.errstate(invalid="ignore"):
        return np.isfinite(v) & (v > limit)


def energy_unit_scale(unit: Any, ctx: Ctx) -> float:
    """kWh per payload energy unit; anything that is not an energy unit is a ParseError."""
    scales = {"wh": 1e-3, "kwh": 1.0, "mwh": 1e3, "ws": 1 / 3.6e6, "j": 1 / 3.6e6}
    key = str(unit).strip().lower() if unit is not None else ""
    if key not in scales:
        ctx.fail(f"unit {unit!r} is not an energy unit (expected Wh/kWh/MWh/Ws)")
    return scales[key]
