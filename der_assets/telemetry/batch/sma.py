"""SMA ennexOS measurement sets, many at once, read as telemetry/parsers/sma.py reads each.

Every body is decoded once through a typed shape (msgspec) that admits only JSON numbers or null
for pvGeneration and strings for `time`; the labels of all bodies are parsed together as fixed
"YYYY-MM-DDThh:mm:ss" bytes and localized per site zone, each zone's distinct labels once. The
fold rules of timeutil.localize_labels are applied per body in arrays: a fall-back hour listed
twice is placed by order (first pass DST), listed once it is kept on the first pass and flagged
suspect, and a spring-forward label with a null or zero value is dropped. Labels are interval
END (parsers/sma.py), so each row starts one resolution before its label.

Left to the one-body parser, which reads them or says why not: a body whose setType, resolution
or zone it refuses or that names another zone than the registry's; a site without a zone; an
empty set, or one without any pvGeneration; numbers as strings, booleans, non-finite or huge
numbers; labels that are not strict, out of order, repeated, descending, or that go back more
than once; a non-zero value at a spring-forward label; rows off their resolution's UTC grid.
"""

from __future__ import annotations

from operator import attrgetter
from typing import List, Optional, Sequence, Union

import msgspec
import numpy as np
import pandas as pd

from der_assets.telemetry.batch import Batch, BatchContext, Part
from der_assets.telemetry.batch.bodies import decodable, per_segment, segment_of_rows, zone_ok
from der_assets.telemetry.parsers._common import EARLIEST, FUTURE_SLACK, MAX_SPAN
from der_assets.telemetry.parsers._common import spike_mask_per_segment as segment_spikes
from der_assets.telemetry.parsers.sma import RESOLUTION_S
from der_assets.telemetry.schema import QUALITY_CODE

NS = 10**9
SET_TYPE = "EnergyAndPowerPv"  # the only set parse_measurements reads
_MEASURED, _MISSING, _SUSPECT = (QUALITY_CODE[q] for q in ("measured", "missing", "suspect"))
_EXACT = 2.0**53  # numbers msgspec and the stdlib decoder read to the same double
_LABEL_LEN = 19  # "YYYY-MM-DDThh:mm:ss", parsers/sma.py LABEL_FMT
_SEP = "|"
_DIGITS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]  # byte positions of digits in a label
_SLOT_S = 300  # labels are parsed on the 5-minute wall clock; others go to the one-body parser
_YEARS = (1971, 2200)  # labels outside these years are absurd: the one-body parser decides


class _Zone(msgspec.Struct, gc=False):
    timezone: Optional[str] = None


class _Entry(msgspec.Struct, gc=False):
    time: str
    pvGeneration: Union[float, None, msgspec.UnsetType] = msgspec.UNSET


class _Set(msgspec.Struct, gc=False):
    setType: str
    resolution: str
    set: List[_Entry]
    plant: Optional[_Zone] = None
    device: Optional[_Zone] = None


_DECODER = msgspec.json.Decoder(_Set)
_TIME, _PV = attrgetter("time"), attrgetter("pvGeneration")


def _payload_zone(doc: _Set) -> Optional[str]:
    """plant.timezone, else device.timezone, as `(doc.get("plant") or {}).get("timezone") or ...` reads."""
    return (doc.plant.timezone if doc.plant else None) or (doc.device.timezone if doc.device else None)


def _values(entries: list) -> Optional[np.ndarray]:
    """pvGeneration as float64 (absent or null = NaN), or None when no entry has the field."""
    try:
        return np.fromiter(map(_PV, entries), np.float64, len(entries))
    except (TypeError, ValueError):  # a null or an absent field somewhere
        pass
    raw = list(map(_PV, entries))
    try:
        return np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):  # an absent field somewhere
        pass
    if all(v is msgspec.UNSET for v in raw):
        return None  # "set has no pvGeneration energy values": the parser's error
    return np.array([None if v is msgspec.UNSET else v for v in raw], dtype=np.float64)


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's days_from_civil)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


def _naive_seconds(labels: list) -> tuple[np.ndarray, np.ndarray]:
    """(wall-clock seconds since 1970, strict) per label; strict = a valid "YYYY-MM-DDThh:mm:ss"
    that parse_naive reads to the same instant. One join, one byte matrix, no per-label parse."""
    n = len(labels)
    try:
        raw = (_SEP.join(labels) + _SEP).encode("ascii")
    except UnicodeEncodeError:
        raw = b""
    if len(raw) != n * (_LABEL_LEN + 1):  # some label is not 19 ASCII characters: label by label
        strict = np.array([len(t) == _LABEL_LEN and t.isascii() for t in labels], dtype=bool)
        secs = np.zeros(n, dtype=np.int64)
        if strict.any():
            s, ok = _naive_seconds([t for t, k in zip(labels, strict) if k])
            secs[strict], strict[strict] = s, ok
        return secs, strict
    a = np.frombuffer(raw, dtype=np.uint8).reshape(n, _LABEL_LEN + 1)
    digits = a[:, _DIGITS] - np.uint8(48)  # wraps above 9 for anything that is not a digit
    ok = (digits <= 9).all(axis=1)
    ok &= (a[:, 4] == 45) & (a[:, 7] == 45) & (a[:, 10] == 84) & (a[:, 13] == 58) & (a[:, 16] == 58)
    ok &= a[:, _LABEL_LEN] == ord(_SEP)  # a '|' inside a label would land here or on a digit
    pair = digits[:, 0::2].astype(np.int64) * 10 + digits[:, 1::2]
    year, month, day = pair[:, 0] * 100 + pair[:, 1], pair[:, 2], pair[:, 3]
    hour, minute, second = pair[:, 4], pair[:, 5], pair[:, 6]
    ok &= (year >= _YEARS[0]) & (year <= _YEARS[1]) & (month >= 1) & (month <= 12) & (day >= 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= day <= _MONTH_DAYS[np.clip(month, 0, 12)] + (leap & (month == 2))
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    secs = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return secs, ok


def _localize(naive_s: np.ndarray, tz: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(first-pass UTC s, second-pass UTC s, ambiguous, nonexistent) per wall-clock label of one
    zone, as timeutil.localize_labels localizes them (each distinct label once, by pandas)."""
    lo = int(naive_s.min())
    slot = (naive_s - lo) // _SLOT_S
    if slot.max() > 4 * len(slot) + 10_000:  # labels years apart: sort them rather than map the span
        used, k = np.unique(slot, return_inverse=True)
    else:
        present = np.zeros(int(slot.max()) + 1, dtype=bool)
        present[slot] = True
        used = np.flatnonzero(present)
        where = np.zeros(len(present), dtype=np.int64)
        where[used] = np.arange(len(used))
        k = where[slot]
    idx = pd.DatetimeIndex(((lo + used * _SLOT_S) * NS).view("datetime64[ns]"))
    first = idx.tz_localize(tz, ambiguous=np.ones(len(used), dtype=bool), nonexistent="NaT").asi8
    second = idx.tz_localize(tz, ambiguous=np.zeros(len(used), dtype=bool), nonexistent="NaT").asi8
    nat = np.iinfo(np.int64).min
    nonexistent = first[k] == nat
    ambiguous = (first[k] != second[k]) & ~nonexistent
    return first[k] // NS, second[k] // NS, ambiguous, nonexistent


def read_measurements(bodies: Sequence[bytes], context: BatchContext) -> Batch:
    """measurements/sets/EnergyAndPowerPv/{period} bodies -> pv_kwh, as parse_measurements reads each."""
    taken, labels, values, interval, zone = [], [], [], [], []
    zones_ok: dict = {}
    for j, body in enumerate(bodies):
        tz = context.timezones[j]
        if tz not in zones_ok:
            zones_ok[tz] = zone_ok(tz)
        if not zones_ok[tz] or not decodable(body):
            continue
        try:
            doc = _DECODER.decode(body)
        except (msgspec.DecodeError, TypeError, ValueError, OverflowError, RecursionError):
            continue  # the one-body parser reads it or says why not
        if doc.setType != SET_TYPE or doc.resolution not in RESOLUTION_S or not doc.set:
            continue
        payload_tz = _payload_zone(doc)
        if payload_tz and payload_tz != tz:
            continue
        wh = _values(doc.set)
        if wh is None:
            continue
        taken.append(j)
        labels.extend(map(_TIME, doc.set))
        values.append(wh)
        interval.append(RESOLUTION_S[doc.resolution])
        zone.append(tz)
    doc = None
    n_bodies = len(taken)
    if not n_bodies:
        return Batch(taken=np.zeros(0, dtype=np.int64))
    lengths = np.array([len(v) for v in values], dtype=np.int64)
    wh = np.concatenate(values)
    del values
    body = segment_of_rows(lengths)
    interval_s = np.array(interval, dtype=np.int64)
    naive, strict = _naive_seconds(labels)
    del labels
    bad = np.zeros(n_bodies, dtype=bool)
    bad[body[~strict]] = True
    with np.errstate(invalid="ignore"):
        bad |= per_segment(np.abs(wh) >= _EXACT, lengths) > 0  # NaN (null) compares False
    bad |= per_segment(naive % _SLOT_S != 0, lengths) > 0

    # localize per zone: first and second pass, ambiguous, nonexistent
    first = np.zeros(len(naive), dtype=np.int64)
    second = np.zeros(len(naive), dtype=np.int64)
    ambiguous = np.zeros(len(naive), dtype=bool)
    nonexistent = np.zeros(len(naive), dtype=bool)
    zones, zone_of_body = np.unique(np.array(zone, dtype=object), return_inverse=True)
    row_ok = ~np.repeat(bad, lengths)
    for z, tz in enumerate(zones):
        rows = np.flatnonzero((zone_of_body[body] == z) & row_ok)
        if len(rows):
            first[rows], second[rows], ambiguous[rows], nonexistent[rows] = _localize(naive[rows], tz)

    # localize_labels' passes: a label is on its second pass when the clock went back (or it was
    # seen) before it. Read here: bodies that rise throughout, or rise, go back once, and rise again.
    diff = np.diff(naive)
    inside = np.ones(len(diff), dtype=bool)
    inside[np.cumsum(lengths)[:-1] - 1] = False  # a diff across two bodies
    down = np.flatnonzero(inside & (diff < 0))
    bad |= per_segment(np.r_[False, inside & (diff == 0)], lengths) > 0  # a repeated label
    n_down = np.bincount(body[down + 1], minlength=n_bodies)
    n_up = per_segment(np.r_[False, inside & (diff > 0)], lengths)
    bad |= (n_down > 1) | (n_down > n_up)  # twice back, or descending: the parser's own rules
    second_pass = np.zeros(len(naive), dtype=bool)
    if len(down):
        # rows from the drop on, up to the wall time reached before it, are on the second pass
        drop_body = body[down + 1]
        reached = np.full(n_bodies, np.iinfo(np.int64).min)
        from_row = np.full(n_bodies, np.iinfo(np.int64).max)
        reached[drop_body] = naive[down]
        from_row[drop_body] = down + 1
        rownum = np.arange(len(naive))
        second_pass = (rownum >= from_row[body]) & (naive <= reached[body])
    second_pass &= ambiguous
    has_second = per_segment(second_pass, lengths) > 0
    fold_unknown = ambiguous & ~second_pass & ~has_second[body]
    label_s = np.where(second_pass, second, first)

    # the time rule (parsers/_common.py): every label in [EARLIEST, received + a day], a body's
    # labels within MAX_SPAN of each other
    ceiling_s = (context.received_ns[np.array(taken, dtype=np.int64)] + FUTURE_SLACK.value) // NS
    placed = ~nonexistent & np.repeat(~bad, lengths)
    late = (label_s > ceiling_s[body]) | (label_s < EARLIEST.value // NS)
    bad |= per_segment(placed & late, lengths) > 0
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    big = np.iinfo(np.int64).max
    span = (np.maximum.reduceat(np.where(placed, label_s, -big), offsets)
            - np.minimum.reduceat(np.where(placed, label_s, big), offsets))
    bad |= per_segment(placed, lengths).astype(bool) & (span > MAX_SPAN.value // NS)

    # spring-forward labels: null or zero values are dropped, anything else is the parser's error
    with np.errstate(invalid="ignore"):
        bad |= per_segment(nonexistent & np.isfinite(wh) & (wh != 0), lengths) > 0
    keep = ~nonexistent & ~np.repeat(bad, lengths)
    start_s = label_s - np.repeat(interval_s, lengths)  # labels are interval END

    # within each body: strictly increasing on the resolution's UTC grid (sorted_grid)
    step = np.repeat(interval_s, lengths)
    bad |= per_segment(keep & (start_s % step != 0), lengths) > 0
    kept = np.flatnonzero(keep)
    kept_body = body[kept]
    same = kept_body[1:] == kept_body[:-1]
    bad[kept_body[1:][same & (np.diff(start_s[kept]) <= 0)]] = True

    keep &= ~np.repeat(bad, lengths)
    rows = np.flatnonzero(keep)
    seg_rows = per_segment(keep, lengths)
    good = ~bad
    wh, fold_unknown, start_s = wh[rows], fold_unknown[rows], start_s[rows]
    seg_rows = seg_rows[good]
    suspect = segment_spikes(wh, seg_rows) | fold_unknown
    kwh = wh / 1000.0
    quality = np.full(len(kwh), _MEASURED, dtype=np.int8)
    quality[suspect] = _SUSPECT
    with np.errstate(invalid="ignore"):
        quality[kwh < 0] = _SUSPECT  # pv is never negative: kept, flagged (parse_payload)
    quality[np.isnan(kwh)] = _MISSING
    seg_body = np.array(taken, dtype=np.int64)[good]
    part = Part(channel="pv_kwh", seg_body=seg_body, seg_rows=seg_rows, seg_interval_s=interval_s[good],
                start_ns=start_s * NS, value=kwh, quality=quality, sorted_grid=True)
    return Batch(taken=seg_body, parts=[part])


READERS = {"measurements": read_measurements}
