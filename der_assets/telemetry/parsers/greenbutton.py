"""Green Button (NAESB REQ.21 ESPI) Atom/XML from the utility AMI. Every ESPI quirk lives here.

Verification status: FIXTURE-VERIFIED against Green Button Alliance samples (OpenESPI
test_usage_data.xml with its 82800 s spring-forward IntervalBlock of 92 quarter-hours;
greenbutton_objects' hourly and gas samples). No real reverse-flow (flowDirection=19)
utility export exists in the fixtures; that branch is DOC-BASED.

Quirks handled here:
- XML is parsed with defusedxml: DTDs with entities, external entities and entity
  expansion are refused (ParseError), as is malformed or truncated XML.
- Namespaces vary (default xmlns="http://naesb.org/espi" or an espi: prefix), so elements are
  matched by local name.
- Entries are linked by Atom <link rel="self|up|related">: a MeterReading's related links
  name its ReadingType and either its IntervalBlock collection (blocks point "up" to it) or
  the blocks themselves. With no usable links and exactly one ReadingType, that one applies.
  Green Button Connect feeds (the GBA sample subscription feed) may instead nest the
  ReadingType in the MeterReading's content and leave the blocks' collection unlinked: blocks
  whose "up" is the MeterReading's own URI + /IntervalBlock are its blocks.
- timePeriod.start is epoch UTC of the interval BEGINNING; no site tz is needed. DST days are
  simply 92 or 100 quarter-hours (LocalTimeParameters only matter for local reports).
- value x 10^powerOfTenMultiplier in uom; only uom 72 (Wh) is electricity energy, anything
  else (169 therm, 119 ft3, 38 W, ...) is a ParseError, not a silent mis-scaled number.
- accumulationBehaviour 4 (deltaData) is per-interval energy; 1 (bulkQuantity) is a register
  reading, differenced through counters; other behaviours are refused. The element is
  optional (minOccurs="0" in espi_4.0.xsd): without it, each IntervalReading's value is read as
  the quantity over its own timePeriod, i.e. deltaData, which is what an IntervalReading with a
  duration says, and the parser notes the assumption.
- Entries are found by their self links, so two ReadingTypes that differ but share one self
  link are a ParseError that names the link and what differs; an exact repeat is one entry.
- flowDirection 1 forward = import (+), 19 reverse = export (-), 4 net = import - export.
  When both forward and reverse are present they are netted per interval.
- Interval length must be 300/900/3600 s (daily or billing-period readings are refused). Each
  IntervalReading's own timePeriod.duration is its row's length (a block may mix lengths), and
  a reading must lie inside its IntervalBlock's interval: one that does not contradicts its
  block and is a ParseError naming it.
- Two readings of one interval with the same value are one; with different values the last is
  kept and flagged 'suspect' (so it reaches review), never silently chosen.
- powerOfTenMultiplier must be one of the UnitMultiplierKind values of espi_4.0.xsd (-12, -9,
  -6, -3, -2, -1, 0, 1, 2, 3, 6, 9, 12); timePeriod start and duration are whole seconds.
- ReadingQuality/quality codes: 0, 14, 17, 18, 19 -> measured; 7, 8, 9, 11, 12, 13, 15 ->
  estimated; 10 (failed checks), 16 (other) and unknown codes -> suspect.
- cost (hundred-thousandths of currency) is not telemetry and is ignored.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from xml.etree.ElementTree import Element, ParseError as XMLSyntaxError

from ..counters import combine_net, counter_to_intervals
from ._common import Ctx, concat, conflicting_duplicates, from_counter, to_float

UOM_WH = "72"
INTERVALS_S = (300, 900, 3600)
QUALITY = {0: "measured", 14: "measured", 17: "measured", 18: "measured", 19: "measured",
           7: "estimated", 8: "estimated", 9: "estimated", 11: "estimated", 12: "estimated",
           13: "estimated", 15: "estimated", 10: "suspect", 16: "suspect"}
DIRECTIONS = {"1": "forward", "19": "reverse", "4": "net"}
#: UnitMultiplierKind, espi_4.0.xsd
MULTIPLIERS = (-12, -9, -6, -3, -2, -1, 0, 1, 2, 3, 6, 9, 12)


def _whole(text: Optional[str], what: str) -> int:
    """Whole seconds (or a code) from element text: digits with an optional sign, nothing else."""
    s = (text or "").strip()
    if not s.lstrip("+-").isdigit():
        raise ValueError(f"{what} {text!r} is not a whole number")
    return int(s)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: Element, name: str) -> Optional[Element]:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _children(el: Element, name: str) -> List[Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: Optional[Element], name: str) -> Optional[str]:
    c = _child(el, name) if el is not None else None
    return c.text.strip() if c is not None and c.text is not None else None


def _parse_xml(payload: bytes, ctx: Ctx) -> Element:
    if not payload or not payload.strip():
        ctx.fail("empty payload")
    try:
        return SafeET.fromstring(payload, forbid_dtd=True)
    except DefusedXmlException as exc:
        ctx.fail(f"unsafe XML refused ({type(exc).__name__})")
    except XMLSyntaxError as exc:
        ctx.fail(f"malformed or truncated XML: {exc}")
    except LookupError as exc:  # <?xml encoding="rTF-8"?>: expat asks the codec registry, which has none
        ctx.fail(f"XML declares an encoding Python does not know ({exc})")


def _entries(root: Element) -> List[dict]:
    out = []
    for e in root.iter():
        if _local(e.tag) != "entry":
            continue
        links = {"self": None, "up": None, "related": []}
        for ln in _children(e, "link"):
            rel, href = ln.get("rel"), ln.get("href")
            if rel == "related":
                links["related"].append(href)
            elif rel in ("self", "up"):
                links[rel] = href
        content = _child(e, "content")
        resource = next(iter(content), None) if content is not None else None
        out.append({"kind": _local(resource.tag) if resource is not None else None, "res": resource, **links})
    return out


def _reading_type(rt: Element, ctx: Ctx) -> dict:
    uom = _text(rt, "uom")
    if uom != UOM_WH:
        ctx.fail(f"ReadingType uom {uom!r} is not Wh (72); not electricity energy")
    acc = _text(rt, "accumulationBehaviour")
    if acc is None:
        ctx.note("ReadingType has no accumulationBehaviour (optional in ESPI): interval readings read "
                 "as deltaData, each value the energy of its own timePeriod")
        acc = "4"
    if acc not in ("4", "1"):
        ctx.fail(f"accumulationBehaviour {acc!r} not supported (need 4 deltaData or 1 bulkQuantity)")
    flow = _text(rt, "flowDirection") or "1"
    if flow not in DIRECTIONS:
        ctx.fail(f"flowDirection {flow!r} not supported (1 forward, 19 reverse, 4 net)")
    power = _whole(_text(rt, "powerOfTenMultiplier") or "0", "powerOfTenMultiplier")
    if power not in MULTIPLIERS:
        ctx.fail(f"powerOfTenMultiplier {power} is not a UnitMultiplierKind value {list(MULTIPLIERS)}")
    return {"kwh_per_unit": 10.0**power / 1000.0, "delta": acc == "4", "direction": DIRECTIONS[flow]}


def _readings(block: Element, ctx: Ctx) -> pd.DataFrame:
    recs = []
    interval = _child(block, "interval")
    b_start = _text(interval, "start")
    b_dur = _text(interval, "duration")
    for r in _children(block, "IntervalReading"):
        tp = _child(r, "timePeriod")
        q = [_whole(_text(rq, "quality"), "ReadingQuality")
             for rq in _children(r, "ReadingQuality") if _text(rq, "quality") is not None]
        start, duration = _whole(_text(tp, "start"), "timePeriod start"), _whole(_text(tp, "duration"), "timePeriod duration")
        if duration <= 0:
            ctx.fail(f"IntervalReading at {start} has duration {duration} s")
        if b_start is not None and b_dur is not None:
            lo = _whole(b_start, "IntervalBlock start")
            hi = lo + _whole(b_dur, "IntervalBlock duration")
            if start < lo or start + duration > hi:
                ctx.fail(f"IntervalReading {start}+{duration} s lies outside its IntervalBlock interval {lo}..{hi}")
        value = _text(r, "value")
        recs.append(
            {
                "start": start,
                "duration": duration,
                "value": to_float(value) if value is not None else np.nan,
                "quality": _worst([QUALITY.get(c, "suspect") for c in q]) if q else "measured",
            }
        )
    return pd.DataFrame(recs, columns=["start", "duration", "value", "quality"])


def _worst(qs: List[str]) -> str:
    order = ["measured", "estimated", "suspect"]
    return max(qs, key=order.index)


def parse_espi(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """An ESPI Atom feed (or entry) of UsagePoint/MeterReading/ReadingType/IntervalBlock -> grid_kwh."""
    root = _parse_xml(payload, ctx)
    entries = _entries(root)
    by_self = _by_self(entries, ctx)
    rtypes = [e for e in entries if e["kind"] == "ReadingType" and (not e["self"] or by_self.get(e["self"]) is e)]
    blocks = [e for e in entries if e["kind"] == "IntervalBlock"]
    if not entries:  # a bare resource document
        blocks = [{"res": el, "self": None, "up": None} for el in root.iter() if _local(el.tag) == "IntervalBlock"]
        rtypes = [{"res": el, "self": None} for el in root.iter() if _local(el.tag) == "ReadingType"]
    if not blocks:
        ctx.fail("no IntervalBlock in payload")
    usage_points = [e for e in entries if e["kind"] == "UsagePoint"]
    meter_readings = [e for e in entries if e["kind"] == "MeterReading"]

    def usage_point_of(mr: dict) -> Optional[dict]:
        for up in usage_points:
            if mr["self"] in up["related"] or mr["up"] in up["related"]:
                return up
        return None

    series: Dict[tuple, List[pd.DataFrame]] = {}
    claimed = set()
    for mr in meter_readings:
        rt = next((by_self[h] for h in mr["related"] if h in by_self and by_self[h]["kind"] == "ReadingType"), None)
        own = f"{mr['self'].rstrip('/')}/IntervalBlock" if mr["self"] else None  # .../MeterReading/{id}/IntervalBlock
        mine = [b for b in blocks if b["self"] in mr["related"] or b["up"] in mr["related"]
                or (own is not None and b["up"] == own)]
        if not mine:
            continue
        nested = _child(mr["res"], "ReadingType") if rt is None and mr["res"] is not None else None
        if nested is not None:  # a Connect feed may carry it inside the MeterReading (GBA sample subscription feed)
            rt = {"res": nested, "self": None, "kind": "ReadingType"}
        if rt is None:
            if len(rtypes) != 1:
                ctx.fail("MeterReading without a linked ReadingType")
            rt = rtypes[0]
        up = usage_point_of(mr)
        _collect(series, (up["self"] if up else None, id(rt["res"])), rt, mine, ctx)
        claimed.update(id(b["res"]) for b in mine)
    orphans = [b for b in blocks if id(b["res"]) not in claimed]
    if orphans:
        if len(rtypes) != 1:
            ctx.fail(f"{len(orphans)} IntervalBlocks cannot be linked to a ReadingType")
        _collect(series, (None, id(rtypes[0]["res"])), rtypes[0], orphans, ctx)
    return _to_rows(series, len(usage_points) > 1, ctx)


_RT_FIELDS = ("accumulationBehaviour", "flowDirection", "uom", "powerOfTenMultiplier", "intervalLength", "kind")


def _by_self(entries: List[dict], ctx: Ctx) -> Dict[str, dict]:
    """Entries by self link. Two different ReadingTypes under one link cannot be told apart by the
    MeterReadings that point at it: refused, naming the link and the fields that differ."""
    out: Dict[str, dict] = {}
    for e in entries:
        href = e["self"]
        if not href:
            continue
        seen = out.get(href)
        if seen is not None and "ReadingType" in (seen["kind"], e["kind"]):
            a, b = (_rt_summary(x) for x in (seen, e))
            if a != b:
                diff = ", ".join(f"{k} {a.get(k)!r} vs {b.get(k)!r}" for k in dict.fromkeys([*a, *b])
                                 if a.get(k) != b.get(k))
                ctx.fail(f"two different {seen['kind']}/{e['kind']} entries share the self link {href!r} "
                         f"({diff}); cannot tell which one a MeterReading means")
            continue  # an exact repeat: one entry
        out[href] = e
    return out


def _rt_summary(e: dict) -> dict:
    if e["kind"] != "ReadingType" or e["res"] is None:
        return {"entry": e["kind"]}
    return {k: _text(e["res"], k) for k in _RT_FIELDS}


def _collect(series, key, rt: dict, blocks: List[dict], ctx: Ctx) -> None:
    info = _reading_type(rt["res"], ctx)
    df = pd.concat([_readings(b["res"], ctx) for b in blocks], ignore_index=True)
    if len(df) and (df["start"].abs().max() > 9.2e9):
        ctx.fail(f"timePeriod start {df['start'].abs().max()} is not an epoch second")
    df["t"] = pd.to_datetime(df["start"].astype("int64"), unit="s", utc=True)
    ctx.see_window(df["t"])
    bad = sorted(set(df["duration"]) - set(INTERVALS_S))
    if info["delta"] and bad:
        ctx.fail(f"interval length {bad[0]} s is not interval telemetry (need 300/900/3600)")
    series.setdefault(key, []).append((info, df))


def _energy(info: dict, df: pd.DataFrame) -> Dict[int, pd.DataFrame]:
    """interval_s -> frame with interval_start/energy/quality/flag in kWh, for one ReadingType.

    deltaData: each reading is the energy of its own timePeriod, so its duration is its row's
    length; repeats of one interval keep the last, 'suspect' when the values differ."""
    if info["delta"]:
        out = {}
        for interval_s, g in df.groupby("duration", sort=True):
            g = g.sort_values("t", kind="stable")
            clash = conflicting_duplicates(g["t"].array.asi8, g["value"].to_numpy())
            quality = g["quality"].to_numpy(dtype=object).copy()
            quality[clash] = "suspect"
            g = g.assign(quality=quality).drop_duplicates("t", keep="last")
            e = pd.DataFrame({"interval_start": g["t"], "energy": g["value"] * info["kwh_per_unit"],
                              "quality": g["quality"], "flag": ""})
            out[int(interval_s)] = e.reset_index(drop=True)
        return out
    interval_s = 900
    return {interval_s: counter_to_intervals(df["t"], df["value"] * info["kwh_per_unit"], interval_s=interval_s,
                                             max_gap_s=interval_s)}


def _to_rows(series, many_points: bool, ctx: Ctx) -> pd.DataFrame:
    frames = []
    by_point: Dict[Optional[str], Dict[str, tuple]] = {}
    for (point, _rt), parts in series.items():
        for info, df in parts:
            per_length = _energy(info, df)
            slot = by_point.setdefault(point, {})
            if info["direction"] in slot:
                ctx.fail(f"two ReadingTypes with flowDirection {info['direction']} for one usage point")
            slot[info["direction"]] = per_length
    for point, dirs in by_point.items():
        dev = ctx.device_id or (point.rstrip("/").rsplit("/", 1)[-1] if many_points and point else None)
        if "net" in dirs:
            nets = dirs["net"]
        elif "forward" in dirs and "reverse" in dirs:
            f, r = dirs["forward"], dirs["reverse"]
            if set(f) != set(r):
                ctx.fail(f"forward ({sorted(f)} s) and reverse ({sorted(r)} s) interval lengths differ")
            nets = {s: combine_net(f[s], r[s]) for s in f}
        elif "forward" in dirs:
            nets = dirs["forward"]
        else:
            nets = {s: r.assign(energy=-r["energy"]) for s, r in dirs["reverse"].items()}
        frames.extend(from_counter(ctx, "grid_kwh", e, s, device_id=dev) for s, e in nets.items())
    return concat(frames)


ENDPOINTS = {"espi": parse_espi}


def usage_point_ids(payload: bytes) -> List[str]:
    """The UsagePoint ids (last segment of each UsagePoint entry's self link) in a feed.

    Utilities name the meter in the UsagePoint link; the AMI inbox uses this to find the site
    a file belongs to before parsing it. Unreadable XML gives an empty list, not an error: the
    parser proper reports that, with its context.
    """
    try:
        root = SafeET.fromstring(payload, forbid_dtd=True)
    except (DefusedXmlException, XMLSyntaxError, LookupError):
        return []
    return [e["self"].rstrip("/").rsplit("/", 1)[-1] for e in _entries(root)
            if e["kind"] == "UsagePoint" and e["self"]]
