"""Enphase: Enlighten Monitoring API v4 (cloud) and the IQ Gateway / Envoy local API.

Every Enphase quirk lives in this file.

Verification status:
- FIXTURE-VERIFIED: production.json, ivp_meters_readings (real gateway captures from
  pyenphase, firmware 3.9.36 / 7.6.185 / 8.2.4345 / 8.3.5433, plus docs/json_data).
- DOC-BASED: production_micro, production_meter, consumption_meter, battery (cloud v4); the
  v4 captures are GPL and were held out, so these follow reference/vendor-formats.md §2a.

Cloud v4 quirks:
- `end_at` (epoch s) is the interval END -> interval_start = end_at - interval.
- production_micro is 5-min `enwh` (Wh); production_meter is 15-min `wh_del` (not enwh);
  consumption_meter is 15-min `enwh`; battery has charge.enwh / discharge.enwh / soc.percent.
- Interval spacing must be a multiple of the endpoint's resolution, else ParseError.
- devices_reporting < total_devices: the sum is partial until late micros report (it is
  superseded by a later revision), so the row is kept but flagged 'suspect'.
- Intervals can fall outside the envelope start_at/end_at: the envelope is NOT used to filter.
  It does declare a window, though: every interval ending in (start_at, end_at], no later than
  received_at, that the body does not list is a 'missing' row, as the fleet-day grid makes it
  (a body that claims a day and skips an hour says nothing else about that hour). An envelope
  spanning more than MAX_DECLARED_S (the API's one-week limit and a day) is not used; noted.
- Numbers may arrive as strings, SoC as "97%".
- pv above what the registry's nameplate (Ctx.nameplate_kw) can make in an interval is
  'suspect', however few values the body has.

IQ Gateway (local) quirks:
- Snapshot endpoints: one body is one reading of lifetime counters. Intervals need two or
  more readings, so the payload may be a poll log: several bodies concatenated (NDJSON or
  pretty-printed). A single body yields no interval rows (not zeros).
- production.json: pv from production[type=eim, measurementType=production].whLifetime when
  that CT is active, else production[type=inverters].whLifetime, which on non-metered
  firmware < 8 wraps at 1.19 MWh (= 2^32 Ws): unwrapped as a rollover. load from
  total-consumption.whLifetime; grid from net-consumption.whLifetime, a NET register that
  legitimately falls while exporting (+ import, - export), differenced without reset logic.
  readingTime 0 means "no reading" and is dropped. Firmware 8.3.5433 reports
  total-consumption identical to net-consumption: both channels are then flagged 'suspect'.
  Firmware 3.9.36 answers production.json with an HTML error page: ParseError.
- ivp_meters_readings: rows are keyed by meter eid only; which eid is production / net /
  total / storage is in /ivp/meters, so the poll log must include an /ivp/meters body
  (ParseError otherwise). Disabled meters and timestamp 0 are ignored.
  pv = d(actEnergyDlvd) (micro standby draw in actEnergyRcvd is load, not negative pv);
  net-consumption grid = d(actEnergyDlvd) - d(actEnergyRcvd); total-consumption load =
  d(actEnergyDlvd); storage battery = d(actEnergyDlvd) - d(actEnergyRcvd), + discharge
  (sign inferred from docs_json_data: storage activePower -7084 W while net import is small,
  i.e. charging; [V-fixture, inference]). Other meter types (backfeed, evse, pv3p, load) are
  not canonical channels and are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Any, Dict, List, Optional, Sequence

import msgspec
import numpy as np
import pandas as pd

from .. import timeutil
from ..counters import combine_net, counter_to_intervals
from ..schema import QUALITY_CODE
from ._common import (EARLIEST, FUTURE_SLACK, MAX_SPAN, Ctx, concat, epoch_times, floats, from_counter, is_number,
                      load_json, load_json_docs, over_nameplate, rows, spike_mask, spike_mask_per_segment, to_float, to_int, to_text)

# ---- cloud v4 -------------------------------------------------------------------------

MICRO_S = 300
METER_S = 900


def _v4_intervals(payload: bytes, ctx: Ctx, interval_s: int):
    doc = load_json(payload, ctx)
    if not isinstance(doc, dict) or "intervals" not in doc:
        ctx.fail("v4 telemetry body has no 'intervals' list")
    items = doc["intervals"]
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        ctx.fail("v4 'intervals' is not a list of objects")
    end = epoch_times([i["end_at"] for i in items], "end_at")
    start = timeutil.interval_start_from_end(end, interval_s)
    ctx.see_window(start)
    if len(end) > 1:
        steps = np.diff(np.sort(end.asi8)) // 10**9
        if (steps % interval_s != 0).any() or (steps == 0).any():
            ctx.fail(f"end_at spacing {sorted(set(steps.tolist()))[:5]} s does not fit {interval_s} s intervals")
    return doc, items, start


MAX_DECLARED_S = 8 * 86400


_is_number = is_number


def _envelope_s(doc: dict) -> Optional[tuple]:
    """(start_at, end_at) epoch seconds when both are plain finite numbers, else None (not used).
    A boolean there is a ParseError (the number rule), not an absent envelope."""
    pair = (doc.get("start_at"), doc.get("end_at"))
    if any(isinstance(v, bool) for v in pair):
        raise ValueError(f"envelope start_at/end_at {pair!r}: a boolean where epoch seconds belong")
    if not all(_is_number(v) for v in pair):
        return None
    try:
        lo, hi = (float(v) for v in pair)
    except OverflowError:
        return None
    return (lo, hi) if np.isfinite(lo) and np.isfinite(hi) and abs(lo) < 1e12 and abs(hi) < 1e12 else None


def _declared_missing(doc: dict, start: pd.DatetimeIndex, interval_s: int, ctx: Ctx) -> pd.DatetimeIndex:
    """Interval starts the envelope declares (ends in (start_at, end_at], ended by received_at) that
    the body does not list."""
    env = _envelope_s(doc)
    if env is None:
        return pd.DatetimeIndex([], tz="UTC")
    lo, hi = env
    hi = min(hi, ctx.received_at.value / 1e9)
    if hi - lo > MAX_DECLARED_S:
        ctx.note(f"envelope start_at..end_at spans {(hi - lo) / 86400:.1f} days, more than the API serves: "
                 "intervals it does not list are not filled as missing")
        return pd.DatetimeIndex([], tz="UTC")
    first, last = (int(lo) // interval_s + 1) * interval_s, int(hi) // interval_s * interval_s
    if last >= first:  # the declared window obeys the time rule too: no missing rows in 1970
        ctx.check_times(pd.to_datetime(np.array([first - interval_s, last - interval_s]) * 10**9, utc=True),
                        "envelope start_at/end_at")
    ends = np.arange(first, last + 1, interval_s, dtype=np.int64)
    listed = (start.asi8 // 10**9) + interval_s
    absent = ends[~np.isin(ends, listed)]
    return pd.DatetimeIndex(pd.to_datetime((absent - interval_s) * 10**9, utc=True))


def _partial_mask(doc: dict, items: List[dict]) -> np.ndarray:
    total = doc.get("total_devices")
    if total is None:
        return np.zeros(len(items), dtype=bool)
    rep = floats(i.get("devices_reporting") for i in items)
    return np.isfinite(rep) & (rep < to_float(total))


def _v4_energy(payload: bytes, ctx: Ctx, field: str, channel: str, interval_s: int) -> pd.DataFrame:
    doc, items, start = _v4_intervals(payload, ctx, interval_s)
    wh = floats(i.get(field) for i in items)
    spikes = spike_mask(wh)
    if channel == "pv_kwh":
        spikes |= over_nameplate(wh / 1000.0, interval_s, ctx.nameplate_kw)
    quality = np.where(_partial_mask(doc, items) | spikes, "suspect", "measured")
    absent = _declared_missing(doc, start, interval_s, ctx)
    return concat([rows(ctx, channel, start, wh / 1000.0, quality, interval_s),
                   rows(ctx, channel, absent, np.nan, "missing", interval_s)])


def parse_production_micro(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/production_micro: 5-min enwh."""
    return _v4_energy(payload, ctx, "enwh", "pv_kwh", MICRO_S)


def parse_production_meter(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/production_meter: 15-min wh_del."""
    return _v4_energy(payload, ctx, "wh_del", "pv_kwh", METER_S)


def parse_consumption_meter(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/consumption_meter: 15-min enwh."""
    return _v4_energy(payload, ctx, "enwh", "load_kwh", METER_S)


def _nested(items: List[dict], outer: str, inner: str) -> np.ndarray:
    return floats((i.get(outer) or {}).get(inner) for i in items)


def parse_battery(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/battery: discharge.enwh - charge.enwh (+ discharge), soc.percent at end_at."""
    doc, items, start = _v4_intervals(payload, ctx, METER_S)
    charge = _nested(items, "charge", "enwh")
    discharge = _nested(items, "discharge", "enwh")
    soc = _nested(items, "soc", "percent")
    absent = _declared_missing(doc, start, METER_S, ctx)
    return concat(
        [
            rows(ctx, "battery_kwh", start, (discharge - charge) / 1000.0, "measured", METER_S),
            rows(ctx, "soc_pct", start, soc, "measured", METER_S),
            rows(ctx, "battery_kwh", absent, np.nan, "missing", METER_S),
            rows(ctx, "soc_pct", absent, np.nan, "missing", METER_S),
        ]
    )


# ---- cloud v4, a fleet's bodies at once -------------------------------------------------
#
# The parsers above read one body at a time into a DataFrame; a fleet-day is 30,000 bodies, so
# `parse_v4_many` reads all bodies of one endpoint into flat arrays instead. msgspec decodes each
# body against the typed shape below, which admits only JSON numbers or null where the parser
# reads numbers (no strings, booleans or NaN literals, end_at required), so to_float would read
# every accepted value the same way. A body that does not fit the shape, or whose end_at are not
# sorted on the endpoint's grid, is left for the one-at-a-time parser, which reads it or rejects
# it with its own message. Tests hold the two equal on twin payloads with faults.

_Int = Optional[int]  # the shape admits whole numbers or null; anything else is the slow path's


class _Micro(msgspec.Struct, gc=False):
    end_at: int
    enwh: _Int = None
    wh_del: _Int = None
    devices_reporting: _Int = None


class _EnergyBody(msgspec.Struct, gc=False):
    intervals: List[_Micro]
    total_devices: _Int = None
    start_at: Any = None  # the declared window; _envelope_ints says when the fast path may read it
    end_at: Any = None


class _Side(msgspec.Struct, gc=False):
    enwh: _Int = None


class _Soc(msgspec.Struct, gc=False):
    percent: _Int = None


class _BatteryItem(msgspec.Struct, gc=False):
    end_at: int
    charge: Optional[_Side] = None
    discharge: Optional[_Side] = None
    soc: Optional[_Soc] = None


class _BatteryBody(msgspec.Struct, gc=False):
    intervals: List[_BatteryItem]
    start_at: Any = None
    end_at: Any = None


_ENERGY_DECODER = msgspec.json.Decoder(_EnergyBody)
_BATTERY_DECODER = msgspec.json.Decoder(_BatteryBody)
_NO_SIDE, _NO_SOC = _Side(), _Soc()
_END_MAX_S = 4_000_000_000  # epoch seconds below which end_at * 1e9 is exact in float64 too (year 2096)

V4_ENERGY = {  # endpoint -> (field, channel, interval_s)
    "production_micro": ("enwh", "pv_kwh", MICRO_S),
    "production_meter": ("wh_del", "pv_kwh", METER_S),
    "consumption_meter": ("enwh", "load_kwh", METER_S),
}
V4_MANY = (*V4_ENERGY, "battery")
_MEASURED, _MISSING, _SUSPECT = (QUALITY_CODE[q] for q in ("measured", "missing", "suspect"))


@dataclass
class V4Columns:
    """Rows of the bodies in `taken` (indices into the input), body after body, in end_at order."""

    taken: np.ndarray  # int64
    lengths: np.ndarray  # int64 rows per taken body (per channel)
    interval_s: int
    start_ns: np.ndarray  # int64 UTC ns, interval beginning
    channels: Dict[str, tuple]  # channel -> (value float64, quality int8 code into QUALITIES)


def _column(items: list, path: str) -> np.ndarray:
    """items[path] (dotted for nested objects) as int64 when every value is a whole number,
    else float64 with NaN for a null value or a null object.

    numpy fills int64 from Python ints several times faster than float64; the caller converts
    once after concatenating, exactly (float(int) and int64 -> float64 round the same way).
    """
    n = len(items)
    try:
        return np.fromiter(map(attrgetter(path), items), np.int64, n)
    except (TypeError, AttributeError, OverflowError):  # a null somewhere (or a huge number)
        pass
    names = path.split(".")
    if len(names) == 1:
        return np.fromiter(map(attrgetter(path), items), np.float64, n)
    empty = _NO_SIDE if names[0] != "soc" else _NO_SOC  # `(i.get(outer) or {}).get(inner)`
    outer = (o if o is not None else empty for o in map(attrgetter(names[0]), items))
    return np.fromiter(map(attrgetter(names[1]), outer), np.float64, n)


def _partial(items: list, total) -> Optional[np.ndarray]:
    """devices_reporting < total_devices per item, or None when no item is partial."""
    if total is None or not items:
        return None
    try:
        if min(map(attrgetter("devices_reporting"), items)) >= total:
            return None
    except TypeError:  # a null devices_reporting: read them all
        pass
    rep = _column(items, "devices_reporting")
    return np.isfinite(rep) & (rep < float(total))


_TOTAL_DEVICES = re.compile(rb'"total_devices"\s*:\s*(\d{1,9})\s*[,}]')


@lru_cache(maxsize=256)
def _complete_decoder(total: int) -> msgspec.json.Decoder:
    """A decoder that admits a body only when every interval has all `total` devices reporting,
    so the common, complete body needs no per-interval partial check."""
    at_least = Optional[Annotated[int, msgspec.Meta(ge=total)]]
    item = msgspec.defstruct("_CompleteMicro", [("end_at", int), ("enwh", _Int, None), ("wh_del", _Int, None),
                                                ("devices_reporting", at_least, None)], gc=False)
    body = msgspec.defstruct("_CompleteBody", [("intervals", List[item]), ("total_devices", _Int, None),
                                               ("start_at", Any, None), ("end_at", Any, None)], gc=False)
    return msgspec.json.Decoder(body)


def _decode_energy(body: bytes):
    """(doc, partial mask or None). The envelope's total_devices, read from the head of the body,
    picks a decoder that proves no interval is partial; a body it refuses is decoded plainly."""
    head = _TOTAL_DEVICES.search(body, 0, 1024) if isinstance(body, (bytes, bytearray)) else None
    if head is not None:
        total = int(head.group(1))
        try:
            doc = _complete_decoder(total).decode(body)
            if doc.total_devices == total:
                return doc, None
            return doc, _partial(doc.intervals, doc.total_devices)
        except msgspec.DecodeError:
            pass
    doc = _ENERGY_DECODER.decode(body)
    return doc, _partial(doc.intervals, doc.total_devices)


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


_NO_ENVELOPE = (0, 0, False)


def _envelope_ints(doc) -> Optional[tuple]:
    """(start_at, end_at, declared) for the fast path's completeness check, read as _envelope_s
    reads the envelope: two whole numbers are checked, no usable pair means no declared window,
    and other numbers (floats, huge ints) are None: the one-at-a-time parser decides."""
    pair = (doc.start_at, doc.end_at)
    if all(type(v) is int and 0 <= v < _END_MAX_S for v in pair):
        return pair[0], pair[1], True
    if all(_is_number(v) for v in pair) or any(isinstance(v, bool) for v in pair):
        return None  # a boolean: the one-body parser refuses it
    return _NO_ENVELOPE


def _incomplete(end_s: np.ndarray, lengths: np.ndarray, envelopes: list, interval_s: int) -> np.ndarray:
    """Bodies that may skip a grid end their declared window (start_at, end_at] holds: the
    one-at-a-time parser fills those as missing rows, so they go to it. Per body, not per row:
    a body whose ends run without a hole from at or before the window's first end to at or after
    its last is complete; any other body with a declared window goes to the parser, which decides
    (a hole outside the window costs only speed)."""
    lo = np.array([e[0] for e in envelopes], dtype=np.int64)
    hi = np.array([e[1] for e in envelopes], dtype=np.int64)
    declared = np.array([e[2] for e in envelopes], dtype=bool)
    first_end, last_end = (lo // interval_s + 1) * interval_s, hi // interval_s * interval_s
    declared &= last_end >= first_end
    nonempty = lengths > 0
    stop = np.cumsum(lengths)
    first = np.where(nonempty, end_s[np.minimum(stop - lengths, len(end_s) - 1)] if len(end_s) else 0, 0)
    last = np.where(nonempty, end_s[np.maximum(stop - 1, 0)] if len(end_s) else 0, 0)
    whole = nonempty & (last - first == (lengths - 1) * interval_s) & (first <= first_end) & (last >= last_end)
    return declared & ~whole


def _segments_of(positions: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Body index of each row position (rows of the bodies laid end to end)."""
    return np.searchsorted(np.cumsum(lengths), positions, side="right")


def parse_v4_many(endpoint: str, bodies: Sequence[bytes], received_ns: Optional[np.ndarray] = None) -> V4Columns:
    """Cloud v4 telemetry bodies of one endpoint -> columns, as parse_<endpoint> reads each.

    received_ns: when each body was received (int64 UTC ns), for the time rule's ceiling
    (_common): a body with an interval after received_at + 1 day goes to the one-body parser,
    which refuses it. Without it only the floor and the span are checked here."""
    battery = endpoint == "battery"
    field, channel, interval_s = (None, None, METER_S) if battery else V4_ENERGY[endpoint]
    get_end = attrgetter("end_at")
    taken, ends, values, partial, envelopes = [], [], [], [], []
    for j, body in enumerate(bodies):
        # load_json's contract: bytes, valid UTF-8 throughout (msgspec does not check skipped fields)
        if not isinstance(body, (bytes, bytearray)) or not (body.isascii() or _is_utf8(body)):
            continue
        try:
            if battery:
                doc, part = _BATTERY_DECODER.decode(body), None
            else:
                doc, part = _decode_energy(body)
            envelope = _envelope_ints(doc)
            if envelope is None:
                continue  # an envelope only the one-body parser reads
            items = doc.intervals
            end = np.fromiter(map(get_end, items), np.int64, len(items))
            if battery:
                value = (_column(items, "charge.enwh"), _column(items, "discharge.enwh"), _column(items, "soc.percent"))
            else:
                value = (_column(items, field),)
        except (msgspec.DecodeError, TypeError, ValueError, OverflowError, RecursionError):
            continue  # the one-body parser reads it or says why not
        taken.append(j)
        envelopes.append(envelope)
        ends.append(end)
        values.append(value)
        if not battery:
            partial.append(part)
    doc = items = None  # the decoded bodies can go
    lengths = np.array([len(e) for e in ends], dtype=np.int64)
    end_s = np.concatenate(ends or [np.zeros(0, dtype=np.int64)])
    del ends

    # what the one-at-a-time parser would reject or read differently goes back to it
    bad = np.zeros(len(lengths), dtype=bool)
    if len(end_s) and (end_s.min() <= 0 or end_s.max() >= _END_MAX_S):
        bad[_segments_of(np.flatnonzero((end_s <= 0) | (end_s >= _END_MAX_S)), lengths)] = True
    if len(end_s):  # the time rule on interval starts, as Ctx.see_window applies it one body at a time
        start_s = end_s - interval_s
        out = start_s < EARLIEST.value // 10**9
        if received_ns is not None:
            ceiling_ns = np.asarray(received_ns, dtype=np.int64)[np.array(taken, dtype=np.int64)] + FUTURE_SLACK.value
            out |= start_s * 10**9 > np.repeat(ceiling_ns, lengths)
        if out.any():
            bad[_segments_of(np.flatnonzero(out), lengths)] = True
        stop = np.cumsum(lengths)
        nonempty = lengths > 0
        first = start_s[np.minimum(stop - lengths, len(start_s) - 1)]
        last = start_s[np.maximum(stop - 1, 0)]
        # spans are judged on sorted bodies; a disordered body goes to the parser anyway (spacing rule)
        bad |= nonempty & (np.abs(last - first) * 10**9 > MAX_SPAN.value)
    if len(end_s) > 1:
        diff = np.diff(end_s)
        if not (diff == interval_s).all():  # a gap or a disorder somewhere: the parser's spacing rule
            across = np.cumsum(lengths)[:-1] - 1  # diff i spans two bodies when row i ends one
            across = across[(across >= 0) & (across < len(diff))]
            wrong = (diff <= 0) | (diff % interval_s != 0)
            wrong[across] = False
            bad[_segments_of(np.flatnonzero(wrong) + 1, lengths)] = True
    misaligned = (end_s % min(interval_s, 900)) != 0  # end and start share the grid
    if misaligned.any():
        bad[_segments_of(np.flatnonzero(misaligned), lengths)] = True
    if len(lengths):
        bad |= _incomplete(end_s, lengths, envelopes, interval_s)
    start_ns = end_s
    start_ns -= interval_s
    start_ns *= 10**9
    columns = [np.concatenate([v[k] for v in values] or [np.zeros(0)]).astype(np.float64, copy=False)
               for k in range(3 if battery else 1)]
    del values

    if battery:
        charge, discharge, soc = columns
        batt = discharge
        batt -= charge
        batt /= 1000.0
        soc_q = _quality(soc, None)
        with np.errstate(invalid="ignore"):
            soc_q[(soc < 0) | (soc > 100)] = _SUSPECT
        chans = {"battery_kwh": (batt, _quality(batt, None)), "soc_pct": (soc, soc_q)}
    else:
        kwh = columns[0]  # still Wh here: spike_mask reads Wh
        suspect = spike_mask_per_segment(kwh, lengths)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        for k, part in enumerate(partial):
            if part is not None:
                suspect[offsets[k]:offsets[k + 1]] |= part
        kwh /= 1000.0
        q = _quality(kwh, suspect)
        with np.errstate(invalid="ignore"):
            q[kwh < 0] = _SUSPECT  # pv and load are never negative: kept, flagged
        chans = {channel: (kwh, q)}

    if bad.any():
        keep = np.repeat(~bad, lengths)
        start_ns = start_ns[keep]
        chans = {c: (v[keep], q[keep]) for c, (v, q) in chans.items()}
    return V4Columns(taken=np.array(taken, dtype=np.int64)[~bad], lengths=lengths[~bad], interval_s=interval_s,
                     start_ns=start_ns, channels=chans)


def _quality(value: np.ndarray, suspect: Optional[np.ndarray]) -> np.ndarray:
    q = np.full(len(value), _MEASURED, dtype=np.int8)
    if suspect is not None:
        q[suspect] = _SUSPECT
    q[np.isnan(value)] = _MISSING
    return q


# ---- IQ Gateway (local) -----------------------------------------------------------------

LOCAL_S = 900
INVERTER_ROLLOVER_WH = 2**32 / 3600.0  # whLifetime wraps at 1.19 MWh on fw < 8 (2^32 Ws)


def _local_counter(t, wh, *, bidirectional: bool = False, rollover_at: Optional[float] = None) -> pd.DataFrame:
    return counter_to_intervals(
        t, wh, interval_s=LOCAL_S, max_gap_s=LOCAL_S, bidirectional=bidirectional, rollover_at=rollover_at
    )


def _reading(block: dict):
    if not isinstance(block, dict):
        raise ValueError(f"production.json entry {block!r} is not an object")
    t = to_float(block.get("readingTime"))
    if not np.isfinite(t) or t <= 0:
        return None
    return epoch_times([t], "readingTime")[0], to_float(block.get("whLifetime"))


def parse_production_json(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/production.json (poll log of one or more bodies) -> pv, load, grid via lifetime Wh."""
    docs = load_json_docs(payload, ctx)
    series: Dict[str, list] = {"pv_eim": [], "pv_inv": [], "load": [], "net": []}
    twin = False
    for doc in docs:
        if not isinstance(doc, dict) or "production" not in doc:
            ctx.fail("production.json body has no 'production' list")
        for b in doc["production"]:
            r = _reading(b)
            if r is None:
                continue
            kind, measured = to_text(b.get("type"), "type"), to_text(b.get("measurementType"), "measurementType")
            if kind == "eim" and measured == "production" and to_float(b.get("activeCount")) > 0:
                series["pv_eim"].append(r)
            elif kind == "inverters":
                series["pv_inv"].append(r)
        cons = {to_text(b.get("measurementType"), "measurementType"): b for b in doc.get("consumption", [])
                if to_text(b.get("type"), "type") == "eim"}
        tot, net = cons.get("total-consumption"), cons.get("net-consumption")
        if tot is not None and net is not None and tot.get("whLifetime") == net.get("whLifetime") \
                and tot.get("wNow") == net.get("wNow"):
            twin = True  # fw 8.3.5433: total-consumption is a copy of net-consumption
        for key, b in (("load", tot), ("net", net)):
            if b is not None and (r := _reading(b)) is not None:
                series[key].append(r)

    def split(pairs):
        return [p[0] for p in pairs], [p[1] for p in pairs]

    every = [p[0] for v in series.values() for p in v]
    ctx.see_window(every)
    frames = []
    if series["pv_eim"]:
        t, v = split(series["pv_eim"])
        frames.append(from_counter(ctx, "pv_kwh", _local_counter(t, v), LOCAL_S, 1e-3))
    elif series["pv_inv"]:
        t, v = split(series["pv_inv"])
        frames.append(from_counter(ctx, "pv_kwh", _local_counter(t, v, rollover_at=INVERTER_ROLLOVER_WH), LOCAL_S, 1e-3))
    twin_q = "suspect" if twin else None
    if series["load"]:
        t, v = split(series["load"])
        frames.append(_maybe_flag(from_counter(ctx, "load_kwh", _local_counter(t, v), LOCAL_S, 1e-3), twin_q))
    if series["net"]:
        t, v = split(series["net"])
        frames.append(_maybe_flag(from_counter(ctx, "grid_kwh", _local_counter(t, v, bidirectional=True), LOCAL_S, 1e-3), twin_q))
    return concat(frames)


def _maybe_flag(df: pd.DataFrame, quality: Optional[str]) -> pd.DataFrame:
    if quality:
        df.loc[df["quality"] != "missing", "quality"] = quality
    return df


def _is_meter_config(doc) -> bool:
    return isinstance(doc, list) and bool(doc) and all(
        isinstance(m, dict) and "measurementType" in m and "timestamp" not in m for m in doc
    )


def parse_ivp_meters_readings(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/ivp/meters/readings poll log (with an /ivp/meters body) -> pv, grid, load, battery."""
    docs = load_json_docs(payload, ctx)
    config: Dict[int, str] = {}
    readings: List[dict] = []
    for doc in docs:
        if _is_meter_config(doc):
            config.update({to_int(m["eid"], "eid"): to_text(m["measurementType"], "measurementType") for m in doc
                           if to_text(m.get("state"), "state") == "enabled"})
        elif isinstance(doc, list):
            readings.extend(doc)
        else:
            ctx.fail("expected a JSON list of meter readings or an /ivp/meters config list")
    if not config:
        ctx.fail("no /ivp/meters config in payload: cannot tell which eid is production, net or total")
    if not all(isinstance(r, dict) for r in readings):
        ctx.fail("a meter reading is not an object")
    df = pd.DataFrame(
        {
            "eid": [to_int(r["eid"], "eid") for r in readings],
            "t": floats(r.get("timestamp") for r in readings),
            "dlvd": floats(r["actEnergyDlvd"] for r in readings),
            "rcvd": floats(r["actEnergyRcvd"] for r in readings),
        }
    )
    df = df[df["eid"].isin(config) & (df["t"] > 0)]
    df["utc"] = epoch_times(df["t"], "timestamp") if len(df) else pd.DatetimeIndex([], tz="UTC")
    ctx.see_window(df["utc"])
    frames = []
    for eid, g in df.groupby("eid"):
        kind = config[eid]
        dl = _local_counter(g["utc"], g["dlvd"])
        if kind == "production":
            frames.append(from_counter(ctx, "pv_kwh", dl, LOCAL_S, 1e-3))
        elif kind == "total-consumption":
            frames.append(from_counter(ctx, "load_kwh", dl, LOCAL_S, 1e-3))
        elif kind in ("net-consumption", "storage"):
            net = combine_net(dl, _local_counter(g["utc"], g["rcvd"]))
            channel = "grid_kwh" if kind == "net-consumption" else "battery_kwh"
            frames.append(from_counter(ctx, channel, net, LOCAL_S, 1e-3))
    return concat(frames)


ENDPOINTS = {
    "production_micro": parse_production_micro,
    "production_meter": parse_production_meter,
    "consumption_meter": parse_consumption_meter,
    "battery": parse_battery,
    "production.json": parse_production_json,
    "ivp_meters_readings": parse_ivp_meters_readings,
}
