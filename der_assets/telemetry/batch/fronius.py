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
from der_assets.telemetry.batch.bodies import decodable
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


def _register(channel: _Channel, units: dict) -> tuple[np.ndarray, np.ndarray]:
    """(seconds since Start, kWh) sorted by key, as parsers/fronius.py _register reads them."""
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
    with np.errstate(invalid="ignore"):
        if not (np.abs(vals[~np.isnan(vals)]) < _EXACT).all():
            raise _Doubt
    if n > 1 and not (np.diff(secs) > 0).all():
        order = np.argsort(secs, kind="stable")
        secs, vals = secs[order], vals[order]
    return secs, vals * _scale(channel.Unit, units)


def _window(node: _Node, ceiling_ns: int, instants: dict) -> tuple[int, int]:
    """(Start, End) in UTC seconds, after the time rule Ctx.see_window applies to them."""
    start, end = _instant_s(node.Start, instants), _instant_s(node.End, instants)
    lo, hi = min(start, end), max(start, end)
    if lo * NS < EARLIEST.value or hi * NS > ceiling_ns or hi - lo > MAX_SPAN.value // NS or end < start:
        raise _Doubt
    return start, end


def _meter(node: _Node, ceiling_ns: int, units: dict, instants: dict):
    """(interval_s, first interval start s, value kWh, quality) of grid_kwh, as counter_to_intervals
    and combine_net make them from readings on every grid boundary."""
    start, end = _window(node, ceiling_ns, instants)
    secs, plus = _register(node.Data.plus, units)
    secs_m, minus = _register(node.Data.minus, units)
    n = len(secs)
    if n < 2 or not np.array_equal(secs, secs_m):
        raise _Doubt
    step = int(secs[1] - secs[0])
    if step not in NATIVE_S or not (np.diff(secs) == step).all() or secs[0] < 0 or secs[-1] > end - start + 1:
        raise _Doubt
    lo = start // step * step  # counters._window_edges: the claimed window rounded outward
    hi = max(-(-(end + 1) // step) * step, lo)
    first = start + int(secs[0])
    if first % step:
        raise _Doubt  # readings between grid boundaries: the counter's interpolation decides
    registers = np.stack([plus, minus])
    if np.isnan(registers).any() or (registers < 0).any():
        raise _Doubt  # a null reading is a hole; a negative register the parser's error
    m = (hi - lo) // step
    o = (first - lo) // step
    rise = np.diff(registers, axis=1)
    reset = rise < 0
    cum = np.zeros((2, n))
    np.cumsum(np.where(reset, 0.0, rise), axis=1, out=cum[:, 1:])
    at = np.clip(np.arange(m + 1) - o, 0, n - 1)  # np.interp at each bound: exact at a reading, flat outside
    bounds = cum[:, at]
    energy = np.maximum(bounds[:, 1:] - bounds[:, :-1], 0.0)
    k = np.arange(m) - o  # the reading each interval starts at
    covered = (k >= 0) & (k <= n - 2)
    missing = ~covered[None, :] | (reset[:, np.clip(k, 0, n - 2)] & covered[None, :])
    energy = np.where(missing, np.nan, energy)
    value = energy[0] - energy[1]
    quality = np.where(missing.any(axis=0), _MISSING, _MEASURED).astype(np.int8)
    return step, lo, value, quality


def _inverter(node: _Node, ceiling_ns: int, units: dict, instants: dict):
    """(interval_s, first start s, value kWh, quality) of pv_kwh: every step of [Start, End] a row."""
    start, end = _window(node, ceiling_ns, instants)
    secs, kwh = _register(node.Data.produced, units)
    n = len(secs)
    if not n:
        raise _Doubt  # nothing logged: no rows (the parser's; rare)
    d = np.diff(secs)
    step = int(d.min()) if n > 1 else 300
    if n > 1 and (d % step).any():
        raise _Doubt  # the gcd of the spacing is below the smallest step
    span = end - start
    if step not in NATIVE_S or secs[0] < 0 or (secs % step).any() or start % step:
        raise _Doubt
    length = span // step + 1  # np.arange(0, span + 1, step)
    if secs[-1] > (length - 1) * step:
        raise _Doubt
    per = np.full(length, np.nan)
    per[secs // step] = kwh
    total = np.zeros(length)
    total += per
    quality = np.full(length, _MEASURED, dtype=np.int8)
    with np.errstate(invalid="ignore"):
        quality[total < 0] = _SUSPECT  # pv is never negative: kept, flagged (parse_payload)
    quality[np.isnan(total)] = _MISSING
    return step, start, total, quality


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


def read_archive(bodies: Sequence[bytes], context: BatchContext) -> Batch:
    """GetArchiveData.cgi bodies -> grid_kwh (meter registers) and pv_kwh (inverter energy)."""
    taken = []
    out = {"grid_kwh": [], "pv_kwh": []}  # channel -> [(body, interval_s, first start s, value, quality)]
    units, instants = {}, {}
    for j, body in enumerate(bodies):
        if not decodable(body) or b'"-' in body:  # "-0" and "0" are two keys to the parser
            continue
        try:
            doc = _DECODER.decode(body)
            meter, inverter = _nodes(doc)
            ceiling_ns = int(context.received_ns[j]) + FUTURE_SLACK.value
            grid = _meter(meter, ceiling_ns, units, instants) if meter is not None else None
            pv = _inverter(inverter, ceiling_ns, units, instants) if inverter is not None else None
        except (msgspec.DecodeError, TypeError, ValueError, OverflowError, RecursionError, _Doubt):
            continue  # the one-body parser reads it or says why not
        taken.append(j)
        for channel, got in (("grid_kwh", grid), ("pv_kwh", pv)):
            if got is not None:
                out[channel].append((j, *got))
    parts = []
    for channel, segs in out.items():
        if not segs:
            continue
        seg_rows = np.array([len(s[3]) for s in segs], dtype=np.int64)
        interval = np.array([s[1] for s in segs], dtype=np.int64)
        first = np.array([s[2] for s in segs], dtype=np.int64)
        offset = np.arange(seg_rows.sum()) - np.repeat(np.cumsum(seg_rows) - seg_rows, seg_rows)
        start_ns = (np.repeat(first, seg_rows) + offset * np.repeat(interval, seg_rows)) * NS
        parts.append(Part(channel=channel, seg_body=np.array([s[0] for s in segs], dtype=np.int64),
                          seg_rows=seg_rows, seg_interval_s=interval, start_ns=start_ns,
                          value=np.concatenate([s[3] for s in segs]), quality=np.concatenate([s[4] for s in segs]),
                          sorted_grid=True))
    return Batch(taken=np.array(taken, dtype=np.int64), parts=parts)


READERS = {"GetArchiveData": read_archive}
