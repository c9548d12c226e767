"""SolarEdge Monitoring API bodies, many at once, read as telemetry/parsers/solaredge.py reads each.

Every body of an endpoint is decoded once through a typed shape (msgspec) that admits only JSON
numbers or null where the one-body parser reads numbers (no strings, booleans, NaN literals or
overflowing numbers), and its site-local labels are placed in UTC per site zone: each zone's
distinct labels are parsed and localized once, and each series' repeated wall times are resolved
by timeutil.localize_labels' order rule for all series at once. On the DST days the parser's
rules apply as it applies them: energyDetails/powerDetails drop an empty spring-forward slot and
split a fall-back slot listed once over both passes; the registers drop a reading whose wall time
cannot be placed. Lifetime registers (storageData, meters) go through counter_to_intervals'
arithmetic for many series at once (_counter_intervals), so irregular stamps, readings off the
grid and reading gaps read as the parser reads them.

Left to the one-body parser, which reads them or says why not (the fallback costs speed, never a
difference): a label that is not "YYYY-MM-DD hh:mm:ss"; a slot repeated within a series; a
value at a spring-forward slot; no site zone; an unknown unit or timeUnit; an unknown or repeated
meter type; a grid meter without its partner, or a partner on other slots; an instant outside
the time rule; storageData with several batteries; registers that are null, negative, fractional
(cumulative sums would round differently), falling (a reset) or a day apart. equipmentData has no
batch reader: the connector does not pull it and its coarse-register rule integrates power.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial
from operator import attrgetter
from typing import Any, List, Optional, Sequence

import msgspec
import numpy as np
import pandas as pd

from der_assets.telemetry import timeutil
from der_assets.telemetry.batch import Batch, BatchContext, Part
from der_assets.telemetry.batch.bodies import decodable, zone_ok
from der_assets.telemetry.counters import MAX_SPREAD_S
from der_assets.telemetry.errors import ParseError
from der_assets.telemetry.parsers._common import EARLIEST, FUTURE_SLACK, MAX_SPAN, Ctx, energy_unit_scale
from der_assets.telemetry.parsers._common import spike_mask_per_segment as segment_spikes
from der_assets.telemetry.parsers.solaredge import (ENERGY_METERS, GRID_METERS, KNOWN_METERS, LABEL_FMT,
                                                    TELEMETRY_S, TIME_UNITS_S)
from der_assets.telemetry.schema import QUALITY_CODE

NS = 10**9
_MEASURED, _ESTIMATED, _MISSING, _SUSPECT = (QUALITY_CODE[q] for q in ("measured", "estimated", "missing",
                                                                        "suspect"))
_LABEL = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\Z")
_EXACT_WH = 2.0**53  # whole-Wh registers below this difference and sum exactly in float64
_Num = Optional[float]  # a JSON number or null; msgspec refuses strings, booleans and 1e400


# ---- typed shapes ------------------------------------------------------------------------

class _Slot(msgspec.Struct, gc=False):
    date: str
    value: _Num = None


class _Meter(msgspec.Struct, gc=False):
    type: str
    values: List[_Slot]


class _Block(msgspec.Struct, gc=False):
    meters: List[_Meter]
    timeUnit: Any = None
    unit: Any = None


class _EnergyDoc(msgspec.Struct, gc=False):
    energyDetails: _Block


class _PowerDoc(msgspec.Struct, gc=False):
    powerDetails: _Block


class _Register(msgspec.Struct, gc=False):
    meterType: str
    values: List[_Slot]


class _RegisterBlock(msgspec.Struct, gc=False):
    meters: List[_Register]
    timeUnit: Any = None
    unit: Any = "Wh"  # parse_meters reads an absent unit as Wh (a null one is no unit)


class _MetersDoc(msgspec.Struct, gc=False):
    meterEnergyDetails: _RegisterBlock


class _Reading(msgspec.Struct, gc=False):
    timeStamp: str
    lifeTimeEnergyCharged: _Num = None
    lifeTimeEnergyDischarged: _Num = None
    batteryPercentageState: _Num = None


class _Battery(msgspec.Struct, gc=False):
    serialNumber: Any
    telemetries: List[_Reading]


class _Storage(msgspec.Struct, gc=False):
    batteries: List[_Battery]


class _StorageDoc(msgspec.Struct, gc=False):
    storageData: _Storage


_DECODERS = {"energyDetails": msgspec.json.Decoder(_EnergyDoc), "powerDetails": msgspec.json.Decoder(_PowerDoc),
             "storageData": msgspec.json.Decoder(_StorageDoc), "meters": msgspec.json.Decoder(_MetersDoc)}
_POWER_KW = {"W": 1e-3, "kW": 1.0}  # parse_power_details' units


# ---- site-local labels -> UTC ------------------------------------------------------------

@dataclass
class _Local:
    """Site-local labels placed in UTC as timeutil.localize_labels places them, per row.

    utc: the label's instant (0 where it has none); status: _OK, _FIRST, _SECOND, _UNKNOWN
    (a repeated wall time seen once: its pass cannot be proven), _NONEXISTENT (a spring-forward
    wall time), or _UNREAD (not a strict label: the parser decides); second: the same wall time
    on its second pass (standard offset), for a repeated one.
    """

    utc: np.ndarray
    status: np.ndarray
    second: np.ndarray


_OK, _FIRST, _SECOND, _UNKNOWN, _NONEXISTENT, _UNREAD = range(6)


def _labels_to_utc(labels: list, seg_rows: np.ndarray, seg_zone: np.ndarray, zones: list) -> _Local:
    """Each zone's distinct labels parsed and localized once; each segment's (one series of one
    body, in payload order) repeated wall times resolved by localize_labels' order rule."""
    n = len(labels)
    row_zone = np.repeat(np.asarray(seg_zone, dtype=np.int64), seg_rows)
    naive_row = np.zeros(n, dtype=np.int64)
    first = np.zeros(n, dtype=np.int64)
    second = np.zeros(n, dtype=np.int64)
    status = np.full(n, _UNREAD, dtype=np.int8)
    if not n:
        return _Local(first, status, second)
    codes, uniques = pd.factorize(np.asarray(labels, dtype=object))
    uniques = list(uniques)
    naive = np.zeros(len(uniques), dtype=np.int64)
    parsed = np.array([isinstance(u, str) and _LABEL.match(u) is not None for u in uniques], dtype=bool)
    ok_idx = np.flatnonzero(parsed)
    try:
        naive[ok_idx] = timeutil.parse_naive([uniques[i] for i in ok_idx], LABEL_FMT).asi8
    except (ValueError, OverflowError):  # one of them: find which, one by one
        for i in ok_idx:
            try:
                naive[i] = timeutil.parse_naive([uniques[i]], LABEL_FMT).asi8[0]
            except (ValueError, OverflowError):
                parsed[i] = False
    nat = np.iinfo(np.int64).min
    parsed &= naive != nat
    naive_row = naive[codes]
    for z, tz in enumerate(zones):
        rows = np.flatnonzero(row_zone == z)
        used = np.unique(codes[rows])
        used = used[parsed[used]]
        if not len(rows) or not len(used):
            continue
        idx = pd.DatetimeIndex(naive[used].view("datetime64[ns]"))
        a = idx.tz_localize(tz, ambiguous=np.ones(len(used), dtype=bool), nonexistent="NaT").asi8
        b = idx.tz_localize(tz, ambiguous=np.zeros(len(used), dtype=bool), nonexistent="NaT").asi8
        st = np.full(len(uniques), _UNREAD, dtype=np.int8)
        st[used] = np.where(a == nat, _NONEXISTENT, np.where(a != b, _UNKNOWN, _OK))
        ta = np.zeros(len(uniques), dtype=np.int64)
        tb = np.zeros(len(uniques), dtype=np.int64)
        ta[used], tb[used] = np.where(a == nat, 0, a), np.where(b == nat, 0, b)
        status[rows], first[rows], second[rows] = st[codes[rows]], ta[codes[rows]], tb[codes[rows]]
    repeated = status == _UNKNOWN
    if repeated.any():
        _resolve_passes(naive_row, seg_rows, status, repeated)
    utc = np.where(status == _SECOND, second, first)
    return _Local(utc, status, second)


def _resolve_passes(naive: np.ndarray, seg_rows: np.ndarray, status: np.ndarray, repeated: np.ndarray) -> None:
    """localize_labels' pass rule for every segment at once: a repeated wall time is on its second
    pass when the same label came before it or a later wall time did (the clock went back), in
    payload order, or in reverse for a segment listed mostly newest first; where a segment shows a
    second pass its other repeated labels are first passes, else their pass is unknown."""
    n = len(naive)
    seg = np.repeat(np.arange(len(seg_rows)), seg_rows)
    first_row = np.cumsum(seg_rows) - seg_rows
    pos = np.arange(n) - first_row[seg]
    inside = _within_segments(naive, seg_rows)
    steps = np.diff(naive)
    down = np.bincount(seg[1:][inside], weights=(steps[inside] < 0), minlength=len(seg_rows))
    up = np.bincount(seg[1:][inside], weights=(steps[inside] > 0), minlength=len(seg_rows))
    descending = down > up
    perm = np.where(descending[seg], first_row[seg] + seg_rows[seg] - 1 - pos, np.arange(n))
    v = naive[perm]  # each segment in the order localize_labels walks it
    # keys that order labels within a segment and keep segments apart: offsets when they fit int64,
    # else ranks
    lo = np.full(len(seg_rows), np.iinfo(np.int64).max, dtype=np.int64)
    hi = np.full(len(seg_rows), np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(lo, seg, v)
    np.maximum.at(hi, seg, v)
    width = np.where(seg_rows > 0, hi - lo + 1, 0)
    if len(width) and float(width.max()) * len(width) < 2.0**62:
        key = v - lo[seg] + (np.cumsum(width) - width)[seg]
    else:
        _, rank = np.unique(v, return_inverse=True)
        key = seg * (int(rank.max()) + 1) + rank
    prior = np.empty(n, dtype=np.int64)
    prior[0] = -1
    prior[1:] = np.maximum.accumulate(key)[:-1]
    prior[pos == 0] = -1
    went_back = prior > key
    by = np.argsort(key, kind="stable")
    seen_sorted = np.zeros(n, dtype=bool)
    seen_sorted[1:] = key[by][1:] == key[by][:-1]
    seen = np.empty(n, dtype=bool)
    seen[by] = seen_sorted
    second_pass = np.empty(n, dtype=bool)
    second_pass[perm] = went_back | seen
    second_pass &= repeated
    has_second = np.bincount(seg[second_pass], minlength=len(seg_rows)) > 0
    status[repeated & ~second_pass & has_second[seg]] = _FIRST
    status[second_pass] = _SECOND


def _bodies_of(rows_bad: np.ndarray, seg_body: np.ndarray, seg_rows: np.ndarray) -> np.ndarray:
    """Bodies that hold a flagged row (seg_body: body per segment, rows laid segment after segment)."""
    seg = np.searchsorted(np.cumsum(seg_rows), np.flatnonzero(rows_bad), side="right")
    return np.unique(seg_body[seg])


def _time_rule(start: np.ndarray, seg_body: np.ndarray, seg_rows: np.ndarray, context: BatchContext,
               taken: list) -> np.ndarray:
    """Bodies (positions in `taken`) that break the parsers' time rule (parsers/_common.py): an
    instant before EARLIEST or after received + FUTURE_SLACK, or instants of one body more than
    MAX_SPAN apart. The parser checks the span per meter; per body is stricter, and stricter only
    costs speed."""
    n_bodies = len(taken)
    ceiling_ns = np.asarray(context.received_ns, dtype=np.int64)[np.asarray(taken, dtype=np.int64)] + FUTURE_SLACK.value
    bad = np.zeros(n_bodies, dtype=bool)
    row_body = np.repeat(seg_body, seg_rows)
    out = (start < EARLIEST.value) | (start > ceiling_ns[row_body])
    bad[np.unique(row_body[out])] = True
    if len(start):
        lo = np.full(n_bodies, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(n_bodies, np.iinfo(np.int64).min, dtype=np.int64)
        np.minimum.at(lo, row_body, start)
        np.maximum.at(hi, row_body, start)
        has = hi >= lo
        bad[has] |= (hi[has] - lo[has]) > MAX_SPAN.value
    return bad


def _within_segments(values: np.ndarray, seg_rows: np.ndarray) -> np.ndarray:
    """Mask of the diffs of `values` that lie inside one segment (not across two)."""
    inside = np.ones(max(len(values) - 1, 0), dtype=bool)
    ends = np.cumsum(seg_rows)[:-1] - 1  # diff i spans two segments when row i ends one
    ends = ends[(ends >= 0) & (ends < len(inside))]
    inside[ends] = False
    return inside


class _Series:
    """The series (meters) of many bodies laid end to end, one segment per (body, meter), with
    their labels and values in payload order; the site zones numbered as they come."""

    def __init__(self) -> None:
        self.zones: list[str] = []
        self._zone_index: dict[str, int] = {}
        self.taken: list[int] = []
        self.seg_body, self.seg_kind, self.seg_rows, self.seg_interval, self.seg_scale, self.seg_zone = \
            [], [], [], [], [], []
        self.labels: list = []
        self.values: list = []

    def add(self, j: int, tz: str, interval_s: int, scale: float, meters) -> None:
        """Body j (taken), its meters as (kind, slots with .date and .value)."""
        z = self._zone_index.get(tz)
        if z is None:
            z = self._zone_index[tz] = len(self.zones)
            self.zones.append(tz)
        k = len(self.taken)
        self.taken.append(j)
        for kind, items in meters:
            self.seg_body.append(k)
            self.seg_kind.append(kind)
            self.seg_rows.append(len(items))
            self.seg_interval.append(interval_s)
            self.seg_scale.append(scale)
            self.seg_zone.append(z)
            self.labels.extend(map(_GET_DATE, items))
            self.values.extend(map(_GET_VALUE, items))

    def arrays(self):
        """(seg_body, seg_kind, seg_rows, seg_interval, seg_scale, value per row, _Local per row);
        the Python lists are let go."""
        seg_rows = np.asarray(self.seg_rows, dtype=np.int64)
        value = np.array(self.values, dtype=np.float64)  # None -> NaN: the parser's missing value
        loc = _labels_to_utc(self.labels, seg_rows, np.asarray(self.seg_zone, dtype=np.int64), self.zones)
        self.labels = self.values = None
        return (np.asarray(self.seg_body, dtype=np.int64), np.asarray(self.seg_kind, dtype=object), seg_rows,
                np.asarray(self.seg_interval, dtype=np.int64), np.asarray(self.seg_scale, dtype=np.float64), value,
                loc)


# ---- energyDetails / powerDetails --------------------------------------------------------

def _block_scale(endpoint: str, block: _Block) -> Optional[float]:
    """kWh per payload value and slot, as the parser scales it, or None: the parser decides."""
    unit = block.timeUnit
    if type(unit) is not str or unit not in TIME_UNITS_S:
        return None
    interval_s = TIME_UNITS_S[unit]
    if endpoint == "energyDetails":
        try:
            return energy_unit_scale(block.unit, _NO_CTX)
        except ParseError:
            return None
    power = str(block.unit).strip() if block.unit is not None else None  # absent and null both fail there
    if power not in _POWER_KW:
        return None
    return _POWER_KW[power] * interval_s / 3600.0


_NO_CTX = Ctx(source="solaredge", endpoint="energyDetails", site_id="batch", received_at=pd.Timestamp(0, tz="UTC"))
_GET_DATE, _GET_VALUE = attrgetter("date"), attrgetter("value")


def read_details(endpoint: str, bodies: Sequence[bytes], context: BatchContext) -> Batch:
    """energyDetails (Wh per slot, measured) or powerDetails (average W per slot, estimated)."""
    decoder = _DECODERS[endpoint]
    base = _MEASURED if endpoint == "energyDetails" else _ESTIMATED
    # a summed repeated slot: split evenly, estimated for energy, suspect for power (the parser's rule)
    summed_quality = _ESTIMATED if endpoint == "energyDetails" else _SUSPECT
    series = _Series()
    for j, body in enumerate(bodies):
        tz = context.timezones[j]
        if not decodable(body) or not zone_ok(tz):
            continue
        try:
            block = getattr(decoder.decode(body), endpoint)
        except (msgspec.DecodeError, TypeError, ValueError, OverflowError, RecursionError):
            continue
        scale = _block_scale(endpoint, block)
        if scale is None:
            continue
        types = [m.type for m in block.meters]
        if not set(types) <= KNOWN_METERS or len(set(types)) != len(types):
            continue
        if sum(t in GRID_METERS for t in types) == 1:
            continue  # "grid needs both Purchased and FeedIn": the parser says so
        series.add(j, tz, TIME_UNITS_S[block.timeUnit], scale, [(m.type, m.values) for m in block.meters])
    block = None
    seg_body, seg_kind, seg_rows, seg_interval, seg_scale, raw, loc = series.arrays()
    taken = series.taken
    seg = np.repeat(np.arange(len(seg_rows)), seg_rows)
    with np.errstate(over="ignore"):
        value = raw * seg_scale[seg]

    # _slots_to_utc's DST rules: a spring-forward slot is dropped when empty or zero (a value there
    # is a ParseError), a repeated wall time seen once is split over both passes
    bad = np.zeros(len(taken), dtype=bool)
    nonexistent = loc.status == _NONEXISTENT
    wrong = (loc.status == _UNREAD) | (nonexistent & np.isfinite(value) & (value != 0)) | np.isinf(value)
    bad[np.unique(seg_body[seg[wrong]])] = True
    taken_arr = np.asarray(taken, dtype=np.int64)
    placed = ~nonexistent & (loc.status != _UNREAD)
    bad |= _time_rule(loc.utc[placed], seg_body, np.bincount(seg[placed], minlength=len(seg_rows)), context, taken)
    summed = loc.status == _UNKNOWN
    quality = np.where(summed, summed_quality, base).astype(np.int8)
    value = np.where(summed, value / 2.0, value)
    keep = ~nonexistent
    seg = np.concatenate([seg[keep], seg[summed]])
    start = np.concatenate([loc.utc[keep], loc.second[summed]])
    value = np.concatenate([value[keep], value[summed]])
    quality = np.concatenate([quality[keep], quality[summed]])
    wrong = np.concatenate([wrong[keep], wrong[summed]])
    if summed.any() or not _ascending_within(start, seg):
        order = np.lexsort((start, seg))  # _dedupe sorts each series by its instant
        seg, start, value, quality, wrong = seg[order], start[order], value[order], quality[order], wrong[order]
        del order
    seg_rows = np.bincount(seg, minlength=len(seg_rows))
    del loc, keep, summed, nonexistent

    row_interval = seg_interval[seg]
    wrong |= start % (np.minimum(row_interval, 900) * NS) != 0  # off the canonical grid: a schema error
    if len(start) > 1:
        wrong[1:] |= (np.diff(start) == 0) & (seg[1:] == seg[:-1])  # a repeated slot: _dedupe's to settle
    if wrong.any():
        bad[np.unique(seg_body[seg[wrong]])] = True
    offsets = np.concatenate([[0], np.cumsum(seg_rows)])
    purchased = np.flatnonzero(seg_kind == "Purchased")
    feed_in = np.flatnonzero(seg_kind == "FeedIn")
    # bodies hold one of each or none (checked above), in body order
    for p, f in zip(purchased, feed_in):
        if bad[seg_body[p]]:
            continue
        if seg_rows[p] != seg_rows[f] or not np.array_equal(start[offsets[p]:offsets[p + 1]],
                                                            start[offsets[f]:offsets[f + 1]]):
            bad[seg_body[p]] = True  # the parser's outer merge on other slots: its to read
    # the number rule: a grid difference that overflows is no value (rows() refuses it)
    same = seg_rows[purchased] == seg_rows[feed_in]
    p_all, f_all = _segment_rows(purchased[same], offsets), _segment_rows(feed_in[same], offsets)
    with np.errstate(over="ignore", invalid="ignore"):
        overflow = np.isinf(value[p_all] - value[f_all])
    if overflow.any():
        bad[_bodies_of(overflow, seg_body[purchased[same]], seg_rows[purchased[same]])] = True
    with np.errstate(over="ignore", invalid="ignore"):
        quality[segment_spikes(value, seg_rows)] = _SUSPECT
    seg_keep = ~bad[seg_body]
    parts = []
    for kind, channel in ENERGY_METERS.items():
        segs = np.flatnonzero((seg_kind == kind) & seg_keep)
        rows = _segment_rows(segs, offsets)
        v, q = value[rows], quality[rows]
        with np.errstate(invalid="ignore"):
            q[v < 0] = _SUSPECT  # pv and load are never negative: kept, flagged (parse_payload)
        q[np.isnan(v)] = _MISSING
        parts.append(_part(channel, taken_arr[seg_body[segs]], seg_rows[segs], seg_interval[segs], start[rows], v, q))
    keep_pairs = seg_keep[purchased] if len(purchased) else np.zeros(0, dtype=bool)
    p_segs, f_segs = purchased[keep_pairs], feed_in[keep_pairs]
    p_rows, f_rows = _segment_rows(p_segs, offsets), _segment_rows(f_segs, offsets)
    grid = value[p_rows] - value[f_rows]
    q = np.maximum(quality[p_rows], quality[f_rows])  # the worse of the two (measured < estimated < suspect)
    q[np.isnan(grid)] = _MISSING
    parts.append(_part("grid_kwh", taken_arr[seg_body[p_segs]], seg_rows[p_segs], seg_interval[p_segs],
                       start[p_rows], grid, q))
    return Batch(taken=taken_arr[~bad], parts=[p for p in parts if len(p.seg_body)])


def _segment_rows(segs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row positions of the given segments, segment after segment."""
    if not len(segs):
        return np.zeros(0, dtype=np.int64)
    lengths = offsets[segs + 1] - offsets[segs]
    firsts = np.repeat(offsets[segs] - np.cumsum(np.r_[0, lengths[:-1]]), lengths)
    return firsts + np.arange(int(lengths.sum()), dtype=np.int64)


def _part(channel, seg_body, seg_rows, seg_interval, start, value, quality) -> Part:
    """A Part, promising the sorted grid only when every row sits on its own interval's grid."""
    on_grid = bool((start % (np.repeat(seg_interval, seg_rows) * NS) == 0).all())
    return Part(channel=channel, seg_body=np.asarray(seg_body, dtype=np.int64), seg_rows=seg_rows,
                seg_interval_s=seg_interval, start_ns=start, value=value, quality=quality, sorted_grid=on_grid)


# ---- lifetime registers: counters.counter_to_intervals for many plain series at once ------

def _plain_registers(t: np.ndarray, registers: list, seg_rows: np.ndarray) -> np.ndarray:
    """Rows whose series counter_to_intervals may not read as _counter_intervals does: readings
    out of order or repeated, a register that is null, negative, fractional, past 2**53 Wh or
    falling (a reset), or a reading gap too long to spread (counters.MAX_SPREAD_S)."""
    wrong = np.zeros(len(t), dtype=bool)
    for reg in registers:
        with np.errstate(invalid="ignore"):
            wrong |= ~np.isfinite(reg) | (reg < 0) | (reg >= _EXACT_WH) | (reg != np.floor(reg))
    if len(t) > 1:
        inside = _within_segments(t, seg_rows)
        step = (np.diff(t) <= 0) | (np.diff(t) / NS > MAX_SPREAD_S)
        for reg in registers:
            step |= np.diff(reg) < 0
        wrong[1:] |= step & inside
    return wrong


def _placed(loc: _Local, seg_rows: np.ndarray):
    """The readings _placeable keeps (a repeated wall time seen once and a spring-forward one are
    dropped), each series sorted by instant as counter_to_intervals sorts it: (row positions,
    readings per segment, segments holding a label the parser cannot read)."""
    seg = np.repeat(np.arange(len(seg_rows)), seg_rows)
    unread = np.zeros(len(seg_rows), dtype=bool)
    unread[np.unique(seg[loc.status == _UNREAD])] = True
    keep = np.flatnonzero((loc.status == _OK) | (loc.status == _FIRST) | (loc.status == _SECOND))
    if not _ascending_within(loc.utc[keep], seg[keep]):
        keep = keep[np.lexsort((loc.utc[keep], seg[keep]))]
    return keep, np.bincount(seg[keep], minlength=len(seg_rows)), unread


def _ascending_within(values: np.ndarray, seg: np.ndarray) -> bool:
    """Every series already in order (a stable sort by (segment, value) would change nothing)."""
    if len(values) < 2:
        return True
    return bool(((np.diff(values) >= 0) | (seg[1:] != seg[:-1])).all())


def _counter_intervals(t: np.ndarray, c: np.ndarray, seg_rows: np.ndarray, interval_s: int):
    """counter_to_intervals(t, c, interval_s=interval_s, max_gap_s=1.5 * interval_s) of every
    segment at once, for plain series only (_plain_registers passes them all).

    Whole-Wh registers below 2**53 make every cumulative sum exact, so each segment's
    cumsum(diff(c)) is c - c[0] however it is summed; the grid edges are interpolated with
    np.interp's own arithmetic (slope from the two bracketing readings, a knot read as is).
    Returns (intervals per segment, start_ns, energy, estimated): estimated where a reading
    gap over 1.5 intervals was spread.
    """
    step_ns = int(interval_s) * NS
    n_seg = len(seg_rows)
    stop = np.cumsum(seg_rows)
    first_row = stop - seg_rows
    has = seg_rows > 0
    first_t = np.zeros(n_seg, dtype=np.int64)
    last_t = np.zeros(n_seg, dtype=np.int64)
    first_t[has] = t[first_row[has]]
    last_t[has] = t[stop[has] - 1]
    lo = -((-first_t) // step_ns) * step_ns
    hi = np.maximum((last_t // step_ns) * step_ns, lo)
    n_int = np.where(seg_rows >= 2, (hi - lo) // step_ns, 0)
    segs = np.flatnonzero(n_int > 0)
    empty = (n_int, np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool))
    if not len(segs):
        return empty
    n_bounds = n_int[segs] + 1
    b_seg = np.repeat(segs, n_bounds)
    k = np.arange(int(n_bounds.sum()), dtype=np.int64) - np.repeat(np.cumsum(n_bounds) - n_bounds, n_bounds)
    x = lo[b_seg] + k * step_ns
    # where each bound falls among its own segment's readings: one search over keys that lay the
    # segments end to end (a loop when the keys would not fit int64)
    r_seg = np.repeat(np.arange(n_seg), seg_rows)
    span = int((last_t - first_t).max()) + 1
    if n_seg * span < 2**62:
        key_r = r_seg * span + (t - first_t[r_seg])
        key_x = b_seg * span + (x - first_t[b_seg])
        right = np.searchsorted(key_r, key_x, side="right")
        left = np.searchsorted(key_r, key_x, side="left")
    else:
        right, left = np.empty(len(x), dtype=np.int64), np.empty(len(x), dtype=np.int64)
        b_stop = np.cumsum(n_bounds)
        for i, sg in enumerate(segs):
            a, b = first_row[sg], stop[sg]
            rows = slice(b_stop[i] - n_bounds[i], b_stop[i])
            right[rows] = a + np.searchsorted(t[a:b], x[rows], side="right")
            left[rows] = a + np.searchsorted(t[a:b], x[rows], side="left")
    # np.interp(x, t, c - c0): the reading at or before x, the slope to the next one
    j = right - 1
    base = c[first_row[b_seg]]
    fp_j = c[j] - base
    last = j == stop[b_seg] - 1
    nxt = np.where(last, j, j + 1)
    tf = t.astype(np.float64)
    xf = x.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = ((c[nxt] - base) - fp_j) / (tf[nxt] - tf[j])
        e_b = np.where(last | (t[j] == x), fp_j, slope * (xf - tf[j]) + fp_j)
    inner = np.ones(len(x), dtype=bool)
    inner[np.cumsum(n_bounds) - 1] = False  # the last bound of a segment starts no interval
    start = x[inner]
    energy = np.maximum(e_b[1:][inner[:-1]] - e_b[:-1][inner[:-1]], 0.0)
    # counter_to_intervals' gap count: steps lo..hi (numbered from 1 in the segment)
    gap = np.zeros(len(t), dtype=np.int64)
    if len(t) > 1:
        gap[1:] = (np.diff(t) / NS) > 1.5 * interval_s
        gap[first_row[has]] = 0  # no step ends at a segment's first reading
    cum = np.concatenate([[0], np.cumsum(gap)])
    top = np.maximum(seg_rows[b_seg] - 1, 1)
    a = first_row[b_seg]
    lo_i = np.clip(right - a, 1, top)[inner]  # searchsorted(t, start, "right")
    hi_i = np.clip(left - a, 1, top)[1:][inner[:-1]]  # searchsorted(t, end, "left")
    hi_i = np.maximum(hi_i, lo_i)
    a = a[inner]
    estimated = (cum[a + hi_i + 1] - cum[a + lo_i]) > 0  # gap[a + s] is step s
    return n_int, start, energy, estimated


# ---- storageData -------------------------------------------------------------------------

_GET_STAMP = attrgetter("timeStamp")
_GET_CHG, _GET_DIS, _GET_SOC = (attrgetter(f) for f in ("lifeTimeEnergyCharged", "lifeTimeEnergyDischarged",
                                                         "batteryPercentageState"))


def _soc_rows(t: np.ndarray, pct: np.ndarray, keep: np.ndarray, n_bodies: int, row_body: np.ndarray):
    """soc_at_interval_end of each body: the last SoC at or before each 5-minute end, measured when
    it is within a tenth of the interval of it. Returns (rows per body, start_ns, value, quality)."""
    ns = TELEMETRY_S * NS
    have = keep & ~np.isnan(pct)
    t, v, body = t[have], pct[have], row_body[have]
    end = -((-t) // ns) * ns
    last = np.ones(len(t), dtype=bool)
    last[:-1] = (end[1:] != end[:-1]) | (body[1:] != body[:-1])
    t, v, body, end = t[last], v[last], body[last], end[last]
    q = np.where((end - t) / 1e9 <= 0.1 * TELEMETRY_S, _MEASURED, _ESTIMATED).astype(np.int8)
    q[(v < 0) | (v > 100)] = _SUSPECT  # kept, flagged (parse_payload)
    return np.bincount(body, minlength=n_bodies), end - ns, v, q


def read_storage(bodies: Sequence[bytes], context: BatchContext) -> Batch:
    """storageData of one battery: battery_kwh from the lifetime discharged - charged registers,
    soc_pct from the SoC at each interval's end."""
    decoder = _DECODERS["storageData"]
    zones: list[str] = []
    zone_index: dict[str, int] = {}
    taken: list[int] = []
    lengths: list[int] = []
    seg_zone: list[int] = []
    stamps: list = []
    charged: list = []
    discharged: list = []
    soc: list = []
    for j, body in enumerate(bodies):
        tz = context.timezones[j]
        if not decodable(body) or not zone_ok(tz):
            continue
        try:
            batteries = decoder.decode(body).storageData.batteries
        except (msgspec.DecodeError, TypeError, ValueError, OverflowError, RecursionError):
            continue
        if len(batteries) > 1:
            continue  # several batteries at a site: the parser's per-serial rows
        tel = batteries[0].telemetries if batteries else []
        z = zone_index.get(tz)
        if z is None:
            z = zone_index[tz] = len(zones)
            zones.append(tz)
        taken.append(j)
        lengths.append(len(tel))
        seg_zone.append(z)
        stamps.extend(map(_GET_STAMP, tel))
        charged.extend(map(_GET_CHG, tel))
        discharged.extend(map(_GET_DIS, tel))
        soc.extend(map(_GET_SOC, tel))
    batteries = tel = None
    lengths = np.asarray(lengths, dtype=np.int64)
    chg = np.array(charged, dtype=np.float64)
    dis = np.array(discharged, dtype=np.float64)
    pct = np.array(soc, dtype=np.float64)
    del charged, discharged, soc
    loc = _labels_to_utc(stamps, lengths, np.asarray(seg_zone, dtype=np.int64), zones)
    del stamps
    sel, lengths, bad = _placed(loc, lengths)
    t, chg, dis, pct = loc.utc[sel], chg[sel], dis[sel], pct[sel]
    del loc, sel
    row_body = np.repeat(np.arange(len(taken)), lengths)

    wrong = _plain_registers(t, [chg, dis], lengths)
    bad[np.unique(row_body[wrong])] = True
    taken_arr = np.asarray(taken, dtype=np.int64)
    bad |= _time_rule(t, np.arange(len(taken)), lengths, context, taken)
    keep = ~bad[row_body]
    kept = np.flatnonzero(~bad)
    t, chg, dis, pct_kept = t[keep], chg[keep], dis[keep], pct[keep]
    rows_kept = lengths[kept]

    # battery_kwh: combine_net(discharged, charged) on their common grid, in kWh
    n_int, start, e_dis, est_dis = _counter_intervals(t, dis, rows_kept, TELEMETRY_S)
    _, _, e_chg, est_chg = _counter_intervals(t, chg, rows_kept, TELEMETRY_S)
    batt = (e_dis - e_chg) * 1e-3
    q = np.where(est_dis | est_chg, _ESTIMATED, _MEASURED).astype(np.int8)
    has = n_int > 0
    battery = Part(channel="battery_kwh", seg_body=taken_arr[kept][has], seg_rows=n_int[has],
                   seg_interval_s=np.full(int(has.sum()), TELEMETRY_S, dtype=np.int64), start_ns=start,
                   value=batt, quality=q, sorted_grid=True)
    n_soc, soc_start, v, q = _soc_rows(t, pct_kept, np.ones(len(t), dtype=bool), len(kept),
                                       np.repeat(np.arange(len(kept)), rows_kept))
    has = n_soc > 0
    state = Part(channel="soc_pct", seg_body=taken_arr[kept][has], seg_rows=n_soc[has],
                 seg_interval_s=np.full(int(has.sum()), TELEMETRY_S, dtype=np.int64),
                 start_ns=soc_start, value=v, quality=q, sorted_grid=True)
    return Batch(taken=taken_arr[kept], parts=[p for p in (battery, state) if len(p.seg_body)])


# ---- meters ------------------------------------------------------------------------------

def read_meters(bodies: Sequence[bytes], context: BatchContext) -> Batch:
    """/meters lifetime registers (Wh, one reading per slot, off the quarter-hour grid): pv and
    load per register, grid = Purchased - FeedIn when the site has one of each."""
    decoder = _DECODERS["meters"]
    series = _Series()
    for j, body in enumerate(bodies):
        tz = context.timezones[j]
        if not decodable(body) or not zone_ok(tz):
            continue
        try:
            block = decoder.decode(body).meterEnergyDetails
        except (msgspec.DecodeError, TypeError, ValueError, OverflowError, RecursionError):
            continue
        if type(block.timeUnit) is not str or block.timeUnit not in TIME_UNITS_S:
            continue
        try:
            scale = energy_unit_scale(block.unit, _NO_CTX)
        except ParseError:
            continue
        types = [m.meterType for m in block.meters]
        if not set(types) <= KNOWN_METERS or len(set(types)) != len(types):
            continue  # several registers of a type: the parser's pairing by connection
        series.add(j, tz, TIME_UNITS_S[block.timeUnit], scale, [(m.meterType, m.values) for m in block.meters])
    block = None
    seg_body, seg_kind, seg_rows, seg_interval, seg_scale, wh, loc = series.arrays()
    taken = series.taken
    sel, seg_rows, unread = _placed(loc, seg_rows)
    t, wh = loc.utc[sel], wh[sel]
    del loc, sel

    bad = np.zeros(len(taken), dtype=bool)
    bad[np.unique(seg_body[unread])] = True
    wrong = _plain_registers(t, [wh], seg_rows)
    if wrong.any():
        bad[_bodies_of(wrong, seg_body, seg_rows)] = True
    taken_arr = np.asarray(taken, dtype=np.int64)
    bad |= _time_rule(t, seg_body, seg_rows, context, taken)
    offsets = np.concatenate([[0], np.cumsum(seg_rows)])
    purchased = np.flatnonzero(seg_kind == "Purchased")
    feed_in = np.flatnonzero(seg_kind == "FeedIn")
    paired = np.intersect1d(seg_body[purchased], seg_body[feed_in])
    p_of = dict(zip(seg_body[purchased].tolist(), purchased.tolist()))
    f_of = dict(zip(seg_body[feed_in].tolist(), feed_in.tolist()))
    for body in paired.tolist():
        p, f = p_of[body], f_of[body]
        if not bad[body] and not np.array_equal(t[offsets[p]:offsets[p + 1]], t[offsets[f]:offsets[f + 1]]):
            bad[body] = True  # the parser's outer merge of two grids: its to read

    parts = []
    keep = ~bad[seg_body]
    for interval_s in np.unique(seg_interval[keep]).tolist():
        segs = np.flatnonzero(keep & (seg_interval == interval_s))
        rows = _segment_rows(segs, offsets)
        n_int, start, energy, estimated = _counter_intervals(t[rows], wh[rows], seg_rows[segs], interval_s)
        out = np.concatenate([[0], np.cumsum(n_int)])
        quality = np.where(estimated, _ESTIMATED, _MEASURED).astype(np.int8)
        kind, body = seg_kind[segs], seg_body[segs]
        for meter, channel in ENERGY_METERS.items():
            pos = np.flatnonzero((kind == meter) & (n_int > 0))
            r = _segment_rows(pos, out)
            v = energy[r] * np.repeat(seg_scale[segs[pos]], n_int[pos])
            parts.append(_counter_part(channel, taken_arr[body[pos]], n_int[pos], interval_s, start[r], v,
                                       quality[r]))
        # one Purchased and one FeedIn at a site pair whatever their serials (_grid_pairs); one alone
        # gives no grid rows
        both = np.isin(body, paired) & (n_int > 0)
        pos_p = np.flatnonzero(both & (kind == "Purchased"))
        pos_f = np.flatnonzero(both & (kind == "FeedIn"))
        rp, rf = _segment_rows(pos_p, out), _segment_rows(pos_f, out)
        v = (energy[rp] - energy[rf]) * np.repeat(seg_scale[segs[pos_p]], n_int[pos_p])
        parts.append(_counter_part("grid_kwh", taken_arr[body[pos_p]], n_int[pos_p], interval_s, start[rp], v,
                                   np.maximum(quality[rp], quality[rf])))
    return Batch(taken=taken_arr[~bad], parts=[p for p in parts if len(p.seg_body)])


def _counter_part(channel, seg_body, seg_rows, interval_s, start, value, quality) -> Part:
    """Rows of _counter_intervals: every segment strictly increasing on its interval's UTC grid."""
    return Part(channel=channel, seg_body=seg_body, seg_rows=seg_rows,
                seg_interval_s=np.full(len(seg_body), interval_s, dtype=np.int64), start_ns=start, value=value,
                quality=quality, sorted_grid=True)


READERS = {"energyDetails": partial(read_details, "energyDetails"),
           "powerDetails": partial(read_details, "powerDetails"),
           "meters": read_meters,
           "storageData": read_storage}
