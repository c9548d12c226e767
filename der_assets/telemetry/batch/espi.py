"""Green Button ESPI bodies (the AMI inbox files, landed as source greenbutton, endpoint espi) read in bulk.

Why: a fleet-day holds one ESPI file per meter, and the one-body parser (parsers/greenbutton.py)
builds DataFrames per IntervalBlock: benchmarks/normalize.py measured a 2,000-meter day at 314 s
that way (100 times a bare XML parse of the same files, on a loaded 2-core machine), and the
10,000-meter day at 16 s through this reader (1.8 times the bare parse).

How: an ESPI file is mostly IntervalReadings. Each IntervalBlock's content is matched by a
strict pattern of the usual shape (an optional <interval>, then IntervalReadings of cost?,
ReadingQuality*, timePeriod(duration, start), value, with whitespace and ASCII comments between
tags: a well-formed fragment by construction), the readings' numbers are taken by one regex
pass, and the rest of the file, with the reading runs cut out, is parsed as XML and read by the
one-body parser's own entry, link and ReadingType helpers, so those are read by the same code.
Energy, netting of forward and reverse flow and qualities are then computed on arrays.

XML safety as the one-body parser's defusedxml: a body with a DTD or an entity declaration is
never parsed here (left to that parser, which refuses it), so the stdlib parser that reads the
rest sees only the five predefined entities and character references.

A body is taken only when it reads exactly as the one-body parser reads it; anything doubtful
is left to that parser, which reads it or says why not:
- DTDs and entities ("<!DOCTYPE", "<!ENTITY"), CDATA sections, and a block whose content is
  not the shape above (a reading with a missing or non-integer value, attributes, other
  elements, a sign or spaces inside a number);
- not exactly one UsagePoint, a MeterReading without its ReadingType, a block claimed by no
  or by two MeterReadings, a ReadingType used twice or two of one flow direction, any self
  link used twice;
- a ReadingType the one-body parser refuses, without accumulationBehaviour 4 (deltaData) or
  without an intervalLength of 300/900/3600 s;
- a reading whose duration is not its ReadingType's intervalLength (another reading length
  is the one-body parser's to place), a reading outside its block's interval, two readings of
  one interval in a series, a series without readings, a start off the 15-minute grid (5-minute
  for 300 s), a start the time rule refuses (before 2000, after received_at + 1 day, a series
  spanning over 400 days).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Sequence

import numpy as np
import xml.etree.ElementTree as ET
from xml.etree.ElementTree import ParseError as XMLSyntaxError

import pandas as pd

from der_assets.telemetry.batch import Batch, BatchContext, Part
from der_assets.telemetry.errors import ParseError
from der_assets.telemetry.parsers import greenbutton as one_body
from der_assets.telemetry.parsers._common import EARLIEST, FUTURE_SLACK, MAX_SPAN, Ctx
from der_assets.telemetry.schema import QUALITY_CODE

_MEASURED, _ESTIMATED, _MISSING, _SUSPECT = (QUALITY_CODE[q] for q in ("measured", "estimated", "missing", "suspect"))
# combine_net's order of worse (measured < estimated < suspect < missing), by quality code
_RANK = np.zeros(4, dtype=np.int8)
_RANK[[_MEASURED, _ESTIMATED, _SUSPECT, _MISSING]] = [0, 1, 2, 3]
_BY_RANK = np.array([_MEASURED, _ESTIMATED, _SUSPECT, _MISSING], dtype=np.int8)
_START_MAX_S = 4_000_000_000  # epoch seconds (year 2096); the one-body parser refuses far larger ones
_REFUSED = (b"<!DOCTYPE", b"<!ENTITY", b"<![CDATA[", b"\x00")  # NUL: UTF-16/32, which the byte patterns cannot see
_BOMS = (b"\xff\xfe", b"\xfe\xff")

_NAME = rb"[A-Za-z_][A-Za-z0-9_.-]*"
_OPEN = re.compile(rb"IntervalBlock(?:[ \t\r\n][^>]*)?(?<!/)>")  # the name first: a literal the scan finds fast
_PREFIX = re.compile(rb"<(?:(" + _NAME + rb"):)?")
# XML whitespace and whole comments of printable ASCII: what is cut out of the XML parser's sight must
# be well-formed whatever the declared encoding (a stray byte in a comment is the one-body parser's)
_W = rb"(?:[ \t\r\n]|<!--(?:[ \t\r\n!-,.-~]|-(?!-))*-->)*"


@lru_cache(maxsize=8)
def _patterns(prefix: bytes) -> tuple[re.Pattern, re.Pattern, re.Pattern, re.Pattern]:
    """(block head, reading run, one reading, block end) for elements named with `prefix` ("" or "espi:")."""
    p = re.escape(prefix)

    def tag(name: bytes, body: bytes) -> bytes:
        return b"<" + p + name + b">" + body + b"</" + p + name + b">"

    head = re.compile(_W + rb"(?:" + tag(b"interval", _W + tag(b"duration", rb"([0-9]{1,10})") + _W
                                         + tag(b"start", rb"([0-9]{1,10})") + _W) + rb")?" + _W)
    quality = tag(b"ReadingQuality", _W + tag(b"quality", rb"[0-9]{1,4}") + _W) + _W
    reading = (tag(b"IntervalReading", _W + rb"(?:" + tag(b"cost", rb"-?[0-9]{1,18}") + _W + rb")?"
                   + rb"((?:" + quality + rb")*)"
                   + tag(b"timePeriod", _W + tag(b"duration", rb"([0-9]{1,6})") + _W
                         + tag(b"start", rb"([0-9]{1,10})") + _W) + _W
                   + tag(b"value", rb"(-?[0-9]{1,15})") + _W) + _W)
    end = re.compile(b"</" + p + rb"IntervalBlock[ \t\r\n]*>")
    return head, re.compile(rb"(?:" + reading + rb")*"), re.compile(reading), end


_QUALITY_CODE = re.compile(rb"<(?:" + _NAME + rb":)?quality>([0-9]+)<")
_NO_TIME = pd.Timestamp(0, tz="UTC")  # a Ctx needs one; nothing here reads it


class _Doubtful(Exception):
    """This body is the one-body parser's."""


def _readings_of(body: bytes):
    """(skeleton: the body without its reading runs, [per block: (block start, block duration, readings)]).

    A block is its open tag, an optional <interval>, a run of readings and its close tag, nothing else."""
    pieces, blocks, pos = [], [], 0
    for m in _OPEN.finditer(body):
        lt = body.rfind(b"<", 0, m.start())
        tag = _PREFIX.fullmatch(body, lt, m.start()) if lt >= 0 else None
        if tag is None:
            continue  # a close tag, or the name in a link or text: not a block's open tag
        if lt < pos:
            raise _Doubtful("a block inside a block")
        head, run, one, end = _patterns(tag.group(1) + b":" if tag.group(1) else b"")
        h = head.match(body, m.end())
        r = run.match(body, h.end())
        if not end.match(body, r.end()):
            raise _Doubtful("block content")
        found = one.findall(body, h.end(), r.end())
        b_dur = int(h.group(1)) if h.group(1) is not None else None
        b_start = int(h.group(2)) if h.group(2) is not None else None
        blocks.append((b_start, b_dur, found))
        pieces.append(body[pos:m.end()])
        pos = r.end()
    pieces.append(body[pos:])
    return b"".join(pieces), blocks


def _quality(run: bytes) -> int:
    codes = [int(c) for c in _QUALITY_CODE.findall(run)]
    names = [one_body.QUALITY.get(c, "suspect") for c in codes]
    return int(QUALITY_CODE[one_body._worst(names)]) if names else int(_MEASURED)


def _series_arrays(found: list, block_start, block_dur, interval_s: int):
    """starts (int64 s), values (int64), quality codes (int8) of one block's readings."""
    n = len(found)
    if not n:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    runs, durations, starts, values = zip(*found)
    if set(durations) != {b"%d" % interval_s}:
        raise _Doubtful("a reading's own length")  # another length (or a leading zero) is the parser's to place
    start = np.fromiter(map(int, starts), np.int64, n)
    value = np.fromiter(map(int, values), np.int64, n)
    if start.max() >= _START_MAX_S:
        raise _Doubtful("start")
    if block_start is not None and block_dur is not None:
        if start.min() < block_start or start.max() + interval_s > block_start + block_dur:
            raise _Doubtful("reading outside its block")
    quality = np.full(n, _MEASURED, dtype=np.int8)
    if any(runs):
        for k, q in enumerate(runs):
            if q:
                quality[k] = _quality(q)
    return start, value, quality


def _read_one(body: bytes, ctx: Ctx, received_ns: int):
    """(start_ns, value kWh, quality code, interval_s) of one body, or raises _Doubtful."""
    if not isinstance(body, (bytes, bytearray)) or any(r in body for r in _REFUSED) or body[:2] in _BOMS:
        raise _Doubtful("format")
    body = bytes(body)
    skeleton, found = _readings_of(body)
    if not found:
        raise _Doubtful("no block")
    try:
        # No DTD can be in it (refused above), so no entity but the five XML ones and character
        # references: what defusedxml guards against cannot occur, and the C parser builds the tree.
        root = ET.fromstring(skeleton)
    except (XMLSyntaxError, ValueError) as exc:
        raise _Doubtful("xml") from exc
    entries = one_body._entries(root)
    selfs = [e["self"] for e in entries if e["self"]]
    if not entries or len(set(selfs)) != len(selfs):
        raise _Doubtful("entries")
    by_self = one_body._by_self(entries, ctx)
    blocks = [e for e in entries if e["kind"] == "IntervalBlock"]
    elements = [el for el in root.iter() if el.tag.endswith(("IntervalBlock", "IntervalReading"))
                and one_body._local(el.tag) in ("IntervalBlock", "IntervalReading")]
    if [id(b["res"]) for b in blocks] != [id(el) for el in elements] or len(blocks) != len(found):
        raise _Doubtful("blocks")  # every block is an entry's resource, in document order, no reading outside one
    points = [e for e in entries if e["kind"] == "UsagePoint"]
    if len(points) != 1:
        raise _Doubtful("usage points")
    point = points[0]
    claimed: list[int] = []
    by_direction: dict[str, tuple] = {}
    used_types: set[int] = set()
    for mr in (e for e in entries if e["kind"] == "MeterReading"):
        rt = next((by_self[h] for h in mr["related"] if h in by_self and by_self[h]["kind"] == "ReadingType"), None)
        own = f"{mr['self'].rstrip('/')}/IntervalBlock" if mr["self"] else None  # the parser's own-collection link
        mine = [k for k, b in enumerate(blocks) if b["self"] in mr["related"] or b["up"] in mr["related"]
                or (own is not None and b["up"] == own)]
        if not mine:
            continue
        if rt is None or id(rt["res"]) in used_types:
            raise _Doubtful("reading type link")
        if not (mr["self"] in point["related"] or mr["up"] in point["related"]):
            raise _Doubtful("meter reading outside the usage point")
        used_types.add(id(rt["res"]))
        claimed += mine
        info = one_body._reading_type(rt["res"], ctx)  # the parser's own rules; a ParseError is its to say
        length = one_body._text(rt["res"], "intervalLength")
        if (one_body._text(rt["res"], "accumulationBehaviour") != "4" or length is None or not length.isdigit()
                or int(length) not in one_body.INTERVALS_S):
            raise _Doubtful("reading type")
        if info["direction"] in by_direction:
            raise _Doubtful("two reading types of one direction")
        interval_s = int(length)
        parts = [_series_arrays(found[k][2], found[k][0], found[k][1], interval_s) for k in mine]
        start = np.concatenate([p[0] for p in parts])
        if not len(start):
            raise _Doubtful("no readings")
        order = np.argsort(start, kind="stable")
        start = start[order]
        if (np.diff(start) <= 0).any():
            raise _Doubtful("two readings of one interval")
        if start[-1] - start[0] > MAX_SPAN.value // 10**9 or start[0] * 10**9 < EARLIEST.value \
                or start[-1] * 10**9 > received_ns + FUTURE_SLACK.value:
            raise _Doubtful("the time rule")  # the parser names the instant it refuses
        if (start % min(interval_s, 900)).any():
            raise _Doubtful("off the grid")  # the canonical schema's grid_aligned refuses it
        energy = np.concatenate([p[1] for p in parts])[order].astype(np.float64) * info["kwh_per_unit"]
        quality = np.concatenate([p[2] for p in parts])[order]
        by_direction[info["direction"]] = (start, energy, quality, interval_s)
    if sorted(claimed) != list(range(len(blocks))):
        raise _Doubtful("blocks claimed by no or two meter readings")
    return _net(by_direction)


def _net(dirs: dict):
    """The parser's choice per usage point: net alone, forward - reverse, forward, or -reverse."""
    if "net" in dirs:
        start, energy, quality, interval_s = dirs["net"]
    elif "forward" in dirs and "reverse" in dirs:
        (fs, fe, fq, interval_s), (rs, re_, rq, r_interval) = dirs["forward"], dirs["reverse"]
        if interval_s != r_interval:
            raise _Doubtful("forward and reverse lengths differ")
        start = np.union1d(fs, rs)
        rank = np.full((2, len(start)), 3, dtype=np.int8)  # a side without the interval is missing
        side_e = np.full((2, len(start)), np.nan)
        for k, (s, e, q) in enumerate(((fs, fe, fq), (rs, re_, rq))):
            at = np.searchsorted(start, s)
            rank[k, at] = _RANK[q]
            side_e[k, at] = e
        quality = _BY_RANK[rank.max(axis=0)]
        energy = side_e[0] - side_e[1]
        energy[quality == _MISSING] = np.nan
    elif "forward" in dirs:
        start, energy, quality, interval_s = dirs["forward"]
    else:
        start, energy, quality, interval_s = dirs["reverse"]
        energy = -energy
    quality = np.where(np.isnan(energy), _MISSING, quality).astype(np.int8)
    return start * 10**9, energy, quality, interval_s


def read_espi(bodies: Sequence[bytes], context: BatchContext) -> Batch:
    """Green Button bodies -> grid_kwh rows (source ami) of the bodies read as parse_payload reads them."""
    taken, starts, values, qualities, lengths, intervals = [], [], [], [], [], []
    for j, body in enumerate(bodies):
        ctx = Ctx(source="ami", endpoint="espi", site_id=str(context.site_ids[j]), received_at=_NO_TIME)
        try:
            start_ns, value, quality, interval_s = _read_one(body, ctx, int(context.received_ns[j]))
        except (_Doubtful, ParseError, KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError,
                RecursionError):
            continue  # the one-body parser reads it or says why not
        taken.append(j)
        starts.append(start_ns)
        values.append(value)
        qualities.append(quality)
        lengths.append(len(start_ns))
        intervals.append(interval_s)
    taken_a = np.array(taken, dtype=np.int64)
    if not taken:
        return Batch(taken=taken_a)
    lengths_a = np.array(lengths, dtype=np.int64)
    intervals_a = np.array(intervals, dtype=np.int64)
    start_ns = np.concatenate(starts)
    on_grid = np.array([not (s % (i * 10**9)).any() for s, i in zip(starts, intervals, strict=True)])
    value, quality = np.concatenate(values), np.concatenate(qualities)
    parts = []
    offsets = np.concatenate([[0], np.cumsum(lengths_a)])
    for grid in (True, False):
        sel = np.flatnonzero(on_grid == grid)
        if not len(sel):
            continue
        rows = np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in sel]) if len(sel) < len(on_grid) \
            else slice(None)
        parts.append(Part(channel="grid_kwh", seg_body=taken_a[sel], seg_rows=lengths_a[sel],
                          seg_interval_s=intervals_a[sel], start_ns=start_ns[rows], value=value[rows],
                          quality=quality[rows], sorted_grid=grid, source="ami"))
    return Batch(taken=taken_a, parts=parts)


READERS = {"espi": read_espi}
