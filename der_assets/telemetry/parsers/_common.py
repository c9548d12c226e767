"""Helpers every vendor parser shares: strict decoding, number coercion, row assembly.

Vendor quirks do NOT live here; each vendor module holds all of its own. This file only
knows generic payload hygiene (truncated JSON, NaN literals, "97%" strings) and how to
turn per-interval arrays into canonical rows.
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
        """Remember the payload's time span for error messages."""
        idx = pd.DatetimeIndex(times).dropna()
        if len(idx):
            self.window = (idx.min(), idx.max())

    def need_tz(self, payload_tz: Optional[str] = None) -> str:
        """Site tz from the caller; a tz named in the payload must agree with it."""
        if self.tz and payload_tz and self.tz != payload_tz:
            self.fail(f"payload time zone {payload_tz!r} disagrees with site tz {self.tz!r}")
        tz = self.tz or payload_tz
        if not tz:
            self.fail("local-time payload needs the site time zone (tz)")
        return tz


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


def to_float(x: Any) -> float:
    """A vendor number: int/float, numeric string ("-12.20"), or percent string ("97%").

    None means "no data" (NaN). Booleans, empty strings and words are errors, never zero.
    """
    if x is None:
        return float("nan")
    if isinstance(x, bool):
        raise ValueError(f"boolean {x!r} where a number was expected")
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        s = x.strip()
        if s.endswith("%"):
            s = s[:-1].strip()
        if s == "":
            raise ValueError(f"empty string {x!r} where a number was expected")
        v = float(s)  # raises ValueError on words
        if not np.isfinite(v):
            raise ValueError(f"non-finite number {x!r}")
        return v
    raise ValueError(f"{type(x).__name__} {x!r} where a number was expected")


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
    emitted (the caller's window decides whether they exist).
    """
    t = pd.DatetimeIndex(pd.to_datetime(pd.Index(t_utc), utc=True))
    p = pd.Series(np.asarray(power_w, dtype="float64"))
    start = t.floor(f"{int(interval_s)}s")
    g = p.groupby(start.asi8).mean()
    energy = g.to_numpy() * interval_s / WS_PER_KWH
    quality = np.where(np.isnan(energy), "missing", "estimated")
    return pd.DataFrame(
        {"interval_start": pd.to_datetime(g.index.to_numpy(), utc=True), "energy": energy, "quality": quality}
    )


def soc_at_interval_end(t_utc, soc_pct, interval_s: int) -> pd.DataFrame:
    """SoC snapshots -> soc_pct per interval (the last sample at or before the interval end).

    'measured' when the sample is within 10% of the interval of its end, else 'estimated'.
    """
    t = pd.DatetimeIndex(pd.to_datetime(pd.Index(t_utc), utc=True))
    s = pd.Series(np.asarray(soc_pct, dtype="float64"), index=t.asi8).dropna().sort_index()
    if s.empty:
        return pd.DataFrame({"interval_start": pd.DatetimeIndex([], tz="UTC"), "energy": [], "quality": []})
    ns = int(interval_s) * 10**9
    end = -((-s.index.to_numpy()) // ns) * ns
    df = pd.DataFrame({"end": end, "t": s.index.to_numpy(), "v": s.to_numpy()}).groupby("end").last()
    lag = (df.index.to_numpy() - df["t"].to_numpy()) / 1e9
    quality = np.where(lag <= 0.1 * interval_s, "measured", "estimated")
    return pd.DataFrame(
        {"interval_start": pd.to_datetime(df.index.to_numpy() - ns, utc=True), "energy": df["v"].to_numpy(), "quality": quality}
    )


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
