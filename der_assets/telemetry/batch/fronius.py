"""Fronius GetArchiveData (Detail) bodies, many at once, read as telemetry/parsers/fronius.py reads each.

Every body is decoded once through a typed shape (msgspec): the envelope's Status.Code, the
nodes' Start/End, and per channel its Unit and Values keyed by whole seconds since Start (JSON
numbers or null only). Read here: one meter node whose two lifetime registers
(EnergyReal_WAC_Plus_Absolute, _Minus_Absolute) are logged on the same keys, one reading per
logging step without a hole, and one inverter node's per-step EnergyReal_WAC_Sum_Produced
(holes are missing rows). The meter's registers become interval energy exactly as
counters.counter_to_intervals makes it when every reading sits on a grid boundary: each
interval between two readings holds their difference (the running sum differenced back, as the
counter's interpolation does), a fall is a reset (missing), and every interval of the claimed
window [Start, End] without two readings around it is missing; grid_kwh = import - export.

Left to the one-body parser, which reads them or says why not: a non-zero or non-integer
Status.Code, a SeriesType other than Detail, an unknown Unit; keys written any other way than
plain digits; several meter or inverter nodes; a meter with a hole, a null or negative reading,
registers on different keys, or a logging step other than 300/900/3600 s (re-gridded by the
counter's interpolation); Start/End not "YYYY-MM-DDThh:mm:ss+hh:mm" or off the step's UTC grid;
instants outside the time rule (parsers/_common.py); huge or non-finite numbers. The PowerFlow
snapshots stay one poll log per site (daily.SNAPSHOT_ENDPOINTS), as the brief of issue 13 asks.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Dict, Optional, Sequence, Union

import msgspec
import numpy as np

from der_assets.telemetry.batch import Batch, BatchContext, Part
from der_assets.telemetry.batch.bodies import decodable, per_segment, segment_of_rows
from der_assets.telemetry.errors import ParseError
from der_assets.telemetry.parsers._common import EARLIEST, FUTURE_SLACK, MAX_SPAN, Ctx, energy_unit_scale
from der_assets.telemetry.parsers.fronius import MINUS, NATIVE_S, PLUS, PRODUCED
from der_assets.telemetry.schema import QUALITY_CODE

NS = 10**9
_MEASURED, _MISSING, _SUSPECT = (QUALITY_CODE[q] for q in ("measured", "missing", "suspect"))
_EXACT = 2.0**53  # numbers msgspec and the stdlib decoder read to the same double
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:Z|[+-]\d{2}:\d{2})\Z")
_UNSET = msgspec.UNSET


class _Channel(msgspec.Struct, gc=False):
    Unit: str
    Values: Optional[Dict[int, Optional[float]]]  # msgspec reads a key only as plain digits


class _Channels(msgspec.Struct, gc=False):
    plus: Union[_Channel, msgspec.UnsetType] = msgspec.field(default=_UNSET, name=PLUS)
    minus: Union[_Channel, msgspec.UnsetType] = msgspec.field(default=_UNSET, name=MINUS)
    produced: Union[_Channel, msgspec.UnsetType] = msgspec.field(default=_UNSET, name=PRODUCED)


class _Node(msgspec.Struct, gc=False):
    Data: Optional[_Channels] = None
    Start: Union[str, msgspec.UnsetType] = _UNSET
    End: Union[str, msgspec.UnsetType] = _UNSET


class _Status(msgspec.Struct, gc=False):
    Code: int


class _Args(msgspec.Struct, gc=False):
    SeriesType: str = "Detail"


class _Head(msgspec.Struct, gc=False):
    Status: _Status
    RequestArguments: Union[_Args, msgspec.UnsetType] = _UNSET


class _Body(msgspec.Struct, gc=False):
    Data: Dict[str, _Node]


class _Archive(msgspec.Struct, gc=False):
    Body: _Body
    Head: _Head


_DECODER = msgspec.json.Decoder(_Archive)
_UNIT_CTX = Ctx(source="fronius", endpoint="GetArchiveData", site_id="-", received_at=EARLIEST)


class _Doubt(Exception):
    """This body is the one-body parser's."""


def _scale(unit: str, cache: dict) -> float:
    """kWh per unit as energy_unit_scale reads it; an unknown unit is the parser's error."""
    if unit not in cache:
        try:
            cache[unit] = energy_unit_scale(unit, _UNIT_CTX)
        except ParseError:
            cache[unit] = None
    if cache[unit] is None:
        raise _Doubt
    return cache[unit]


def _instant_s(text, cache: dict) -> int:
    """UTC epoch seconds of a strict RFC 3339 instant with offset (timeutil.parse_aware reads the
    same instant from it)."""
    if text not in cache:
        try:
            ok = isinstance(text, str) and _INSTANT.match(text) is not None
            cache[text] = int(datetime.fromisoformat(text).timestamp()) if ok else None
        except ValueError:
            cache[text] = None
    if cache[text] is None:
        raise _Doubt
    return cache[text]


def _readings(channel: _Channel, units: dict) -> tuple[np.ndarray, np.ndarray]:
    """(seconds since Start, kWh) in the body's key order, as parsers/fronius.py _register reads
    them before it sorts (null = NaN; the unit's scale applied as there: value * scale)."""
    values = channel.Values or {}
    n = len(values)
    try:
        secs = np.fromiter(values.keys(), np.int64, n)
    except OverflowError:
        raise _Doubt from None
    try:
        vals = np.fromiter(values.values(), np.float64, n)
    except TypeError:  # a null somewhere: NaN, as floats() reads it
        vals = np.array(list(values.values()), dtype=np.float64)
    return secs, vals * _scale(channel.Unit, units)


def _window(node: _Node, ceiling_ns: int, instants: dict) -> tuple[int, int]:
    """(Start, End) in UTC seconds, after the time rule Ctx.see_window applies to them."""
    start, end = _instant_s(node.Start, instants), _instant_s(node.End, instants)
    if start * NS < EARLIEST.value or end * NS > ceiling_ns or end - start > MAX_SPAN.value // NS or end < start:
        raise _Doubt
    return start, end


def _nodes(doc: _Archive):
    """(meter node, inverter node) as parse_archive sorts them; doubt for anything else."""
    if doc.Head.Status.Code != 0:
        raise _Doubt
    args = doc.Head.RequestArguments
    if args is not _UNSET and args.SeriesType != "Detail":
        raise _Doubt
    meters, inverters = [], []
    for node in doc.Body.Data.values():
        ch = node.Data
        if ch is None:
            continue
        plus, minus, produced = (c is not _UNSET for c in (ch.plus, ch.minus, ch.produced))
        if produced and not (plus or minus):
            inverters.append(node)
        elif plus and minus:
            meters.append(node)
        elif plus or minus:
            raise _Doubt  # "grid needs both": the parser's error
    if len(meters) > 1 or len(inverters) > 1 or not (meters or inverters):
        raise _Doubt
    return (meters or [None])[0], (inverters or [None])[0]


class _Series:
    """One channel's readings of many bodies, laid body after body (one segment per body)."""

    def __init__(self):
        self.body, self.start, self.end, self.keys, self.values = [], [], [], [], []

    def add(self, body: int, start: int, end: int, keys: np.ndarray, *values: np.ndarray) -> None:
        if not len(keys):
            return  # nothing logged in the window: the parser's (no rows, rare)
        self.body.append(body)
        self.start.append(start)
        self.end.append(end)
        self.keys.append(keys)
        self.values.append(values)

    def arrays(self):
        """(lengths, keys, [values per register], bad per segment): keys sorted within each body as
        the parser sorts them (argsort by key; keys are distinct), bad where a register's keys differ
        from the first's or a number is too large to read alike."""
        lengths = np.array([len(k) for k in self.keys], dtype=np.int64)
        keys = np.concatenate(self.keys)
        values = [np.concatenate([v[r] for v in self.values]) for r in range(len(self.values[0]))]
        inside = _inside(lengths)
        disorder = per_segment(np.r_[False, inside & (np.diff(keys) <= 0)], lengths) > 0
        if disorder.any():
            offsets = np.r_[0, np.cumsum(lengths)]
            for s in np.flatnonzero(disorder):
                a, b = offsets[s], offsets[s + 1]
                order = np.argsort(keys[a:b], kind="stable") + a
                keys[a:b] = keys[order]
                for v in values:
                    v[a:b] = v[order]
        with np.errstate(invalid="ignore"):
            huge = np.zeros(len(keys), dtype=bool)
            for v in values:
                huge |= np.abs(v) >= _EXACT
        return lengths, keys, values, per_segment(huge, lengths) > 0


def _inside(lengths: np.ndarray) -> np.ndarray:
    """Mask of the diffs of rows laid segment after segment that lie inside one segment."""
    n = int(lengths.sum())
    inside = np.ones(max(n - 1, 0), dtype=bool)
    ends = np.cumsum(lengths)[:-1] - 1
    inside[ends[(ends >= 0) & (ends < len(inside))]] = False
    return inside


def _cumsum_per_segment(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """np.cumsum of each segment (along the last axis) on its own, bit for bit: segments of one
    length at once, in 2D."""
    n = int(lengths[0]) if len(lengths) else 0
    if n and (lengths == n).all():  # the common day: every body the same length, a view
        return np.cumsum(x.reshape(*x.shape[:-1], len(lengths), n), axis=-1).reshape(x.shape)
    out = np.empty_like(x)
    offsets = np.r_[0, np.cumsum(lengths)[:-1]]
    for n in np.unique(lengths):
        if n == 0:
            continue
        segs = np.flatnonzero(lengths == n)
        idx = offsets[segs][:, None] + np.arange(n)
        out[..., idx] = np.cumsum(x[..., idx], axis=-1)
    return out


def _meters(series: _Series):
    """grid_kwh of every meter read here: (body, rows, interval_s per body; start ns, value, quality per row).

    Readings one per logging step without a hole, on the step's UTC grid, as counter_to_intervals
    reads them with the window (Start, End + 1 s): every grid interval of the window is a row; one
    between two readings holds their difference of the running sum (a fall is a reset: missing);
    the others have no bracketing readings (missing). grid_kwh = import - export (combine_net)."""
    lengths, keys, (plus, minus, keys_minus), bad = series.arrays()
    start = np.array(series.start, dtype=np.int64)
    end = np.array(series.end, dtype=np.int64)
    first_row = np.cumsum(lengths) - lengths
    bad |= lengths < 2
    bad |= per_segment(keys_minus != keys, lengths) > 0
    k0 = keys[first_row]
    k1 = keys[np.minimum(first_row + 1, len(keys) - 1)]
    step = np.where(lengths >= 2, k1 - k0, 300)
    inside = _inside(lengths)
    seg = segment_of_rows(lengths)
    uneven = np.r_[False, inside & (np.diff(keys) != step[seg][1:])]
    bad |= per_segment(uneven, lengths) > 0
    bad |= ~np.isin(step, NATIVE_S) | (k0 < 0) | (keys[np.cumsum(lengths) - 1] > end - start + 1)
    step = np.where(np.isin(step, NATIVE_S), step, 300)
    first = start + k0
    bad |= first % step != 0  # readings between grid boundaries: the counter's interpolation decides
    with np.errstate(invalid="ignore"):
        bad |= per_segment(np.isnan(plus) | np.isnan(minus) | (plus < 0) | (minus < 0), lengths) > 0

    # the running sum of each register (a fall counts 0), differenced between readings: per reading k,
    # energy_cum[k + 1] - energy_cum[k] as counter_to_intervals interpolates it at grid bounds
    last_row = np.cumsum(lengths) - 1
    rise = np.zeros((2, len(keys)))
    rise[0, :-1], rise[1, :-1] = np.diff(plus), np.diff(minus)
    rise[:, last_row] = 0.0  # a segment's last reading starts no step
    reset = rise < 0
    rise[reset] = 0.0
    cum = _cumsum_per_segment(rise, lengths)  # energy_cum[1:]
    before = np.zeros_like(cum)
    before[:, 1:] = cum[:, :-1]
    before[:, first_row] = 0.0  # energy_cum[0]
    energy = np.maximum(cum - before, 0.0)
    net = energy[0] - energy[1]  # combine_net: import - export
    fell = reset[0] | reset[1]

    # the window's grid, rounded outward (counters._window_edges), and each interval's reading
    lo = start // step * step
    hi = np.maximum(-(-(end + 1) // step) * step, lo)
    n_cells = (hi - lo) // step
    good = np.flatnonzero(~bad)
    n_cells, lo, step_g = n_cells[good], lo[good], step[good]
    cell_seg = np.repeat(good, n_cells)
    j = np.arange(int(n_cells.sum())) - np.repeat(np.cumsum(n_cells) - n_cells, n_cells)
    k = j - np.repeat((first[good] - lo) // step_g, n_cells)
    covered = (k >= 0) & (k <= lengths[cell_seg] - 2)
    at = np.minimum(first_row[cell_seg] + np.maximum(k, 0), len(keys) - 1)
    missing = ~covered | fell[at]
    value = np.where(missing, np.nan, net[at])
    quality = np.where(missing, _MISSING, _MEASURED).astype(np.int8)
    body = np.array(series.body, dtype=np.int64)[good]
    return body, n_cells, step_g, (np.repeat(lo, n_cells) + j * np.repeat(step_g, n_cells)) * NS, value, quality


def _inverters(series: _Series):
    """pv_kwh of every inverter node read here, as _meters returns it: every step of [Start, End] a
    row, a step not logged missing, a negative one kept and flagged (parse_payload)."""
    lengths, keys, (kwh,), bad = series.arrays()
    start = np.array(series.start, dtype=np.int64)
    end = np.array(series.end, dtype=np.int64)
    bad |= lengths < 1
    inside = _inside(lengths)
    seg = segment_of_rows(lengths)
    gaps = np.diff(keys)
    big = np.iinfo(np.int64).max
    smallest = np.full(len(lengths), big)
    np.minimum.at(smallest, seg[1:][inside], gaps[inside])
    step = np.where(lengths > 1, smallest, 300)  # the gcd when every gap is a multiple of the smallest
    step = np.where(np.isin(step, NATIVE_S), step, 300)
    bad |= (lengths > 1) & ~np.isin(smallest, NATIVE_S)
    bad |= per_segment(np.r_[False, inside & (gaps % step[seg][1:] != 0)], lengths) > 0
    bad |= per_segment(keys % step[seg] != 0, lengths) > 0
    first_row = np.cumsum(lengths) - lengths
    n_cells = (end - start) // step + 1  # np.arange(0, int(span) + 1, step)
    bad |= (keys[np.minimum(first_row, len(keys) - 1)] < 0) | (start % step != 0)
    bad |= keys[np.maximum(np.cumsum(lengths) - 1, 0)] > (n_cells - 1) * step
    good = np.flatnonzero(~bad)
    rows_good = np.repeat(~bad, lengths)
    offsets = np.cumsum(n_cells[good]) - n_cells[good]
    where = np.zeros(len(lengths), dtype=np.int64)
    where[good] = offsets
    total = np.full(int(n_cells[good].sum()), np.nan)
    total[(where[seg] + keys // step[seg])[rows_good]] = kwh[rows_good]
    total += 0.0  # np.zeros(...) + per, as the parser sums inverters
    quality = np.full(len(total), _MEASURED, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        quality[total < 0] = _SUSPECT  # pv is never negative: kept, flagged (parse_payload)
    quality[np.isnan(total)] = _MISSING
    n_cells, step_g = n_cells[good], step[good]
    j = np.arange(len(total)) - np.repeat(offsets, n_cells)
    start_ns = (np.repeat(start[good], n_cells) + j * np.repeat(step_g, n_cells)) * NS
    body = np.array(series.body, dtype=np.int64)[good]
    return body, n_cells, step_g, start_ns, total, quality


def read_archive(bodies: Sequence[bytes], context: BatchContext) -> Batch:
    """GetArchiveData.cgi bodies -> grid_kwh (meter registers) and pv_kwh (inverter energy)."""
    meters, inverters = _Series(), _Series()
    units, instants = {}, {}
    for j, body in enumerate(bodies):
        if not decodable(body) or b'"-' in body:  # "-0" and "0" are two keys to the parser
            continue
        try:
            doc = _DECODER.decode(body)
            meter, inverter = _nodes(doc)
            ceiling_ns = int(context.received_ns[j]) + FUTURE_SLACK.value
            if meter is not None:
                m_window = _window(meter, ceiling_ns, instants)
                keys, plus = _readings(meter.Data.plus, units)
                keys_minus, minus = _readings(meter.Data.minus, units)
                if len(keys_minus) != len(keys):
                    raise _Doubt
            if inverter is not None:
                i_window = _window(inverter, ceiling_ns, instants)
                pv = _readings(inverter.Data.produced, units)
        except (msgspec.DecodeError, TypeError, ValueError, OverflowError, RecursionError, _Doubt):
            continue  # the one-body parser reads it or says why not
        if meter is not None:
            meters.add(j, *m_window, keys, plus, minus, keys_minus.astype(np.float64))
        if inverter is not None:
            inverters.add(j, *i_window, *pv)
    doc = None
    found = {}
    if meters.body:
        found["grid_kwh"] = _meters(meters)
    if inverters.body:
        found["pv_kwh"] = _inverters(inverters)
    return _batch(found, meters, inverters)


def _batch(found: dict, meters: _Series, inverters: _Series) -> Batch:
    """The bodies whose every node was read here, and their rows (a body with one node left goes
    to the one-body parser whole)."""
    had = {"grid_kwh": set(meters.body), "pv_kwh": set(inverters.body)}
    good = {channel: set(got[0].tolist()) for channel, got in found.items()}
    lost = set()
    for channel, bodies in had.items():
        lost |= bodies - good.get(channel, set())
    taken = sorted((had["grid_kwh"] | had["pv_kwh"]) - lost)
    parts = []
    for channel, (body, seg_rows, interval, start_ns, value, quality) in found.items():
        keep = ~np.isin(body, list(lost))
        rows = np.repeat(keep, seg_rows)
        parts.append(Part(channel=channel, seg_body=body[keep], seg_rows=seg_rows[keep], seg_interval_s=interval[keep],
                          start_ns=start_ns[rows], value=value[rows], quality=quality[rows], sorted_grid=True))
    return Batch(taken=np.array(taken, dtype=np.int64), parts=parts)


READERS = {"GetArchiveData": read_archive}
