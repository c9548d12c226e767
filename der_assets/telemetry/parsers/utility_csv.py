"""Utilities' own interval CSV exports ("Green Button Download My Data" as CSV), one mapping per layout.

Why a mapping and not a parser per utility: the exports differ in columns, units, labels and how
they write the DST days, but not in kind. Each layout is a small TOML data file under
`telemetry/data/utility_csv/<name>.toml` that says where its layout was seen (citation) and how
sure we are (`status`: verified, verified-secondary, unverified); this module reads any of them.
The mapping's name is the payload's endpoint (source `utility_csv`); rows carry source `ami`.

What a mapping holds (see the shipped files for worked examples):
- `timezone` (IANA): the labels are the utility's local wall clock, without an offset.
- `label`: `beginning` or `ending`: which end of the interval a row's time names.
- `interval_s`: a fixed length, or `"infer"` (from each row's end minus start, else from the
  spacing of the rows); only 300/900/3600 s are canonical, anything else is refused.
- `units`: `kWh`, `Wh` or `kW` (average demand over the interval, turned into energy); a
  table's `units_column` overrides it row by row.
- `[[tables]]`: each table starts at a header row (`header`, matched case- and
  space-insensitively, trailing empty cells allowed) and runs to a blank row. A table has a
  `role`: `net` (import +, export -), `delivered` (grid to premises, import) or `received`
  (premises to grid, export); grid_kwh = delivered - received per interval, as the ESPI parser
  nets forward and reverse flow. Time comes from `date` + `start` (+ `end`) columns or from one
  `period` column holding "start<separator>end", or from one `timestamp` column.
- DST: `dst_mode = "order"` (a repeated label's first pass is daylight time, its second standard
  time), `"offset_column"` (a column holds the UTC offset, e.g. -04:00) or `"flag_column"` (a
  non-blank cell in `dst_column` marks the standard-time repeat). `dst_repeated_hour` is the
  wall hour the file repeats on the fall-back day: 1 where the labels follow the clock, 2 where
  the utility writes the repeated hour as 02:00-02:59 (SCE, seen in a real export). A label in
  the spring-forward gap never happened: refused, naming the row.
- `meter` (a table's column, optional): the meter id on each row; a file of several meters gives
  each its own device_id, as the ESPI parser does for several usage points.
- `[quality_map]`: the layout's reading-quality words -> measured / estimated / missing;
  an unknown word is `suspect` (and noted). A blank value cell is a `missing` row, never 0.

Bad input raises ParseError naming the row (the file's line number) and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from .. import timeutil
from ..schema import INTERVALS_S
from ._common import Ctx, concat, rows

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "utility_csv"
ROLES = ("net", "delivered", "received")
LABELS = ("beginning", "ending")
DST_MODES = ("order", "offset_column", "flag_column")
UNIT_KWH = {"kwh": 1.0, "wh": 1e-3, "mwh": 1e3}
QUALITIES = ("measured", "estimated", "missing", "suspect")
_ORDER = {"measured": 0, "estimated": 1, "suspect": 2, "missing": 3}


def _key(cell: str) -> str:
    return " ".join(str(cell).split()).lower()


@dataclass(frozen=True)
class Table:
    header: tuple
    role: str
    value: str
    date: Optional[str] = None
    start: Optional[str] = None
    end: Optional[str] = None
    end_inclusive: bool = False  # END TIME names the interval's last minute (00:59 for 00:00-01:00)
    period: Optional[str] = None
    period_separator: str = " to "
    timestamp: Optional[str] = None  # one date-and-time column (datetime_format)
    quality: Optional[str] = None
    units_column: Optional[str] = None
    dst_column: Optional[str] = None
    type_column: Optional[str] = None
    type_value: Optional[str] = None
    meter: Optional[str] = None  # a meter id column: a file may hold several meters

    def matches(self, cells: List[str]) -> bool:
        keys = [_key(c) for c in cells]
        n = len(self.header)
        return keys[:n] == [_key(h) for h in self.header] and not any(keys[n:])


@dataclass(frozen=True)
class Mapping:
    name: str
    utility: str
    status: str
    citation: str
    timezone: str
    tables: tuple
    edc: tuple = ()
    label: str = "beginning"
    interval_s: object = "infer"
    units: str = "kWh"
    date_format: str = "%Y-%m-%d"
    time_format: str = "%H:%M"
    datetime_format: str = "%Y-%m-%d %H:%M:%S"
    dst_mode: str = "order"
    dst_repeated_hour: int = 1
    account_label: Optional[str] = None
    quality_map: Dict[str, str] = field(default_factory=dict)

    def signature(self) -> List[tuple]:
        return [t.header for t in self.tables]


def _mapping_from(data: dict, origin: str) -> Mapping:
    def need(key):
        if key not in data:
            raise ValueError(f"{origin}: mapping lacks {key!r}")
        return data[key]

    tables = []
    for i, t in enumerate(need("tables")):
        if t.get("role") not in ROLES:
            raise ValueError(f"{origin}: tables[{i}].role must be one of {ROLES}")
        if not t.get("period") and not t.get("timestamp") and not (t.get("date") and t.get("start")):
            raise ValueError(f"{origin}: tables[{i}] needs a period column, a timestamp column or date and start columns")
        tables.append(Table(header=tuple(t["header"]), **{k: v for k, v in t.items() if k != "header"}))
    m = Mapping(
        name=need("name"), utility=need("utility"), status=need("status"), citation=need("citation"),
        timezone=need("timezone"), tables=tuple(tables), edc=tuple(data.get("edc", ())),
        **{k: data[k] for k in ("label", "interval_s", "units", "date_format", "time_format", "datetime_format",
                                "dst_mode", "dst_repeated_hour", "account_label") if k in data},
        quality_map={_key(k): v for k, v in data.get("quality_map", {}).items()},
    )
    if m.status not in ("verified", "verified-secondary", "unverified"):
        raise ValueError(f"{origin}: status {m.status!r} is not verified / verified-secondary / unverified")
    if m.label not in LABELS or m.dst_mode not in DST_MODES:
        raise ValueError(f"{origin}: label must be one of {LABELS}, dst_mode one of {DST_MODES}")
    if m.units.lower() not in (*UNIT_KWH, "kw"):
        raise ValueError(f"{origin}: units {m.units!r} not kWh / Wh / kW")
    if m.interval_s != "infer" and int(m.interval_s) not in INTERVALS_S:
        raise ValueError(f"{origin}: interval_s {m.interval_s!r} is not one of {INTERVALS_S} or 'infer'")
    bad = sorted(set(m.quality_map.values()) - set(QUALITIES))
    if bad:
        raise ValueError(f"{origin}: quality_map values {bad} are not canonical qualities")
    return m


def load_mapping(path: Path) -> Mapping:
    """One mapping file (TOML)."""
    path = Path(path)
    with path.open("rb") as fh:
        return _mapping_from(tomllib.load(fh), path.name)


@lru_cache(maxsize=1)
def shipped_mappings() -> Dict[str, Mapping]:
    """The mappings shipped in telemetry/data/utility_csv, by name."""
    out = {}
    for p in sorted(DATA_DIR.glob("*.toml")):
        m = load_mapping(p)
        if m.name != p.stem:
            raise ValueError(f"{p.name}: name {m.name!r} must match the file name")
        out[m.name] = m
    return out


# ---- reading the file


def _text(payload: bytes, ctx: Ctx) -> str:
    if not payload or not payload.strip():
        ctx.fail("empty payload")
    try:
        return bytes(payload).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = payload[: exc.start].count(b"\n") + 1
        ctx.fail(f"row {line}: not UTF-8 text ({exc.reason} at byte {exc.start})")


@dataclass
class _Read:
    role: str
    table: int  # which table instance (a file may repeat a role per day, as SCE does)
    line: int
    label: dt.datetime
    length_s: Optional[int]
    value: float
    quality: str
    unit: Optional[str]
    dst: str
    meter: str = ""


def _col(index: Dict[str, int], name: Optional[str], line: int, ctx: Ctx) -> Optional[int]:
    if name is None:
        return None
    k = _key(name)
    if k not in index:
        ctx.fail(f"row {line}: the header has no column {name!r}")
    return index[k]


def _cell(cells: List[str], i: Optional[int]) -> str:
    return cells[i].strip() if i is not None and i < len(cells) else ""


def _strptime(text: str, fmt: str, line: int, column: str, ctx: Ctx) -> dt.datetime:
    try:
        return dt.datetime.strptime(text, fmt)
    except ValueError:
        ctx.fail(f"row {line}, column {column!r}: {text!r} is not a time in the form {fmt}")


def _number(text: str, line: int, column: str, ctx: Ctx) -> float:
    s = text.replace(",", "").strip()
    try:
        v = float(s)
    except ValueError:
        ctx.fail(f"row {line}, column {column!r}: {text!r} is not a number")
    if not np.isfinite(v):
        ctx.fail(f"row {line}, column {column!r}: {text!r} is not a finite number")
    return v


def _times(m: Mapping, t: Table, ix: dict, cells: List[str], line: int, ctx: Ctx):
    """(label, length_s or None) of one row: the label the mapping's `label` names, local and naive."""
    if t.period:
        col = t.period
        raw = _cell(cells, ix["period"])
        parts = raw.split(t.period_separator)
        if len(parts) != 2:
            ctx.fail(f"row {line}, column {col!r}: {raw!r} is not 'start{t.period_separator}end'")
        a, b = (_strptime(p.strip(), m.datetime_format, line, col, ctx) for p in parts)
    elif t.timestamp:
        a, b = _strptime(_cell(cells, ix["timestamp"]), m.datetime_format, line, t.timestamp, ctx), None
    else:
        day = _strptime(_cell(cells, ix["date"]), m.date_format, line, t.date, ctx)
        a = dt.datetime.combine(day.date(), _strptime(_cell(cells, ix["start"]), m.time_format, line, t.start, ctx).time())
        b = None
        if t.end:
            b = dt.datetime.combine(day.date(), _strptime(_cell(cells, ix["end"]), m.time_format, line, t.end, ctx).time())
            if t.end_inclusive:
                b += dt.timedelta(minutes=1)
            if b <= a:  # an interval that ends at midnight ("23:45,00:00" or "23:00,23:59" + 1 min)
                b += dt.timedelta(days=1)
    length = None if b is None else int((b - a).total_seconds())
    if m.label == "ending":
        if b is None:
            return a, None  # the start column holds the end label
        return b, length
    return a, length


def _quality(m: Mapping, text: str, line: int, ctx: Ctx) -> str:
    k = _key(text)
    if k in m.quality_map:
        return m.quality_map[k]
    if k == "":
        return "measured"
    ctx.note(f"row {line}: reading quality {text!r} is not in the {m.name} mapping; the value is flagged suspect")
    return "suspect"


def read_rows(m: Mapping, payload: bytes, ctx: Ctx) -> List[_Read]:
    """Every data row of every table in the file, in file order."""
    reader = csv.reader(io.StringIO(_text(payload, ctx), newline=""))
    out: List[_Read] = []
    table: Optional[Table] = None
    ix: dict = {}
    n_table = -1
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                table = None  # a blank row ends a table
                continue
            hit = next((t for t in m.tables if t.matches(cells)), None)
            if hit is not None:
                table, n_table = hit, n_table + 1
                index = {_key(c): i for i, c in enumerate(cells) if c.strip()}
                ix = {k: _col(index, getattr(hit, k), line, ctx)
                      for k in ("value", "date", "start", "end", "period", "timestamp", "quality", "units_column",
                                "dst_column", "type_column", "meter")}
                continue
            if table is None:
                continue  # preamble (name, address, account, section titles)
            if table.type_column and _cell(cells, ix["type_column"]) != table.type_value:
                ctx.fail(f"row {line}, column {table.type_column!r}: {_cell(cells, ix['type_column'])!r} is not "
                         f"{table.type_value!r}; only electricity interval rows are read")
            label, length = _times(m, table, ix, cells, line, ctx)
            raw = _cell(cells, ix["value"])
            if raw == "":
                value, quality = float("nan"), "missing"
            else:
                value = _number(raw, line, table.value, ctx)
                quality = _quality(m, _cell(cells, ix["quality"]), line, ctx) if table.quality else "measured"
                if quality == "missing":
                    value = float("nan")
            out.append(_Read(table.role, n_table, line, label, length, value, quality,
                             _cell(cells, ix["units_column"]) or None, _cell(cells, ix["dst_column"]),
                             _cell(cells, ix["meter"])))
    except csv.Error as exc:
        ctx.fail(f"row {reader.line_num}: unreadable CSV ({exc})")
    if not out:
        names = " or ".join(",".join(t.header) for t in m.tables)
        ctx.fail(f"no interval rows: no table with the {m.name} header ({names}) and data below it")
    return out


# ---- labels to UTC


def _fallback_dates(tz: str, years) -> Dict[dt.date, dt.datetime]:
    """Fall-back date -> its first repeated wall time (naive), for each year."""
    out = {}
    for y in years:
        hours = pd.date_range(f"{y}-01-01", f"{y + 1}-01-01", freq="h", tz="UTC", inclusive="left")
        off = (hours.tz_convert(tz).tz_localize(None) - hours.tz_localize(None)).total_seconds().to_numpy()
        for i in np.flatnonzero(np.diff(off) < 0):
            wall = (hours[i + 1] + pd.Timedelta(seconds=off[i + 1])).tz_localize(None).to_pydatetime()
            out[wall.date()] = wall
    return out


def _relabel_shifted_hour(m: Mapping, reads: List[_Read], tz: str) -> List[dt.datetime]:
    """Labels as the clock shows them. A layout whose fall-back repeat is written one hour late
    (dst_repeated_hour 2 where the clock repeats 01:00) writes the repeated hour's first pass as
    02:xx: that pass is moved back onto 01:xx, so the clock's own rule can place it."""
    labels = [r.label for r in reads]
    folds = _fallback_dates(tz, sorted({x.year for x in labels}))
    if not folds or m.dst_mode != "order":
        return labels
    seen: Dict[tuple, int] = {}
    out = []
    for r, x in zip(reads, labels):
        wall = folds.get(x.date())
        if wall is not None and x.hour == m.dst_repeated_hour and m.dst_repeated_hour != wall.hour:
            n = seen.get((r.table, r.meter, x), 0)
            seen[(r.table, r.meter, x)] = n + 1
            if n == 0:
                x = x - dt.timedelta(hours=m.dst_repeated_hour - wall.hour)
        out.append(x)
    return out


_OFFSET = re.compile(r"^(?:utc|gmt)?\s*([+-])(\d{1,2}):?(\d{2})?$", re.I)


def _offset_s(text: str, line: int, column: str, ctx: Ctx) -> int:
    mt = _OFFSET.match(text.strip())
    if not mt:
        ctx.fail(f"row {line}, column {column!r}: {text!r} is not a UTC offset such as -04:00")
    sign = -1 if mt.group(1) == "-" else 1
    return sign * (int(mt.group(2)) * 3600 + int(mt.group(3) or 0) * 60)


def _to_utc(m: Mapping, reads: List[_Read], tz: str, ctx: Ctx) -> tuple:
    """UTC of each row's label and its fold status (timeutil's codes)."""
    if m.dst_mode == "offset_column":
        col = next(t.dst_column for t in m.tables if t.dst_column)
        utc = pd.DatetimeIndex([pd.Timestamp(r.label) - pd.Timedelta(seconds=_offset_s(r.dst, r.line, col, ctx))
                                for r in reads]).tz_localize("UTC")
        return utc, np.full(len(reads), timeutil.OK, dtype=object)
    labels = _relabel_shifted_hour(m, reads, tz)
    utc = np.empty(len(reads), dtype="datetime64[ns]")
    status = np.empty(len(reads), dtype=object)
    tables: Dict[tuple, List[int]] = {}
    for i, r in enumerate(reads):
        tables.setdefault((r.table, r.meter), []).append(i)
    for positions in tables.values():  # the order of a repeated label counts within one table and meter
        naive = pd.DatetimeIndex([labels[i] for i in positions])
        loc = timeutil.localize_labels(naive, tz)
        st = loc["status"].to_numpy(dtype=object)
        u = pd.DatetimeIndex(loc["utc"])
        if m.dst_mode == "flag_column":
            flagged = np.array([reads[i].dst != "" for i in positions])
            amb = np.isin(st, [timeutil.FOLD_FIRST, timeutil.FOLD_SECOND, timeutil.FOLD_UNKNOWN])
            first = naive.tz_localize(tz, ambiguous=np.ones(len(naive), dtype=bool), nonexistent="NaT")
            second = naive.tz_localize(tz, ambiguous=np.zeros(len(naive), dtype=bool), nonexistent="NaT")
            u = pd.DatetimeIndex(np.where(amb, np.where(flagged, second.tz_convert("UTC").asi8,
                                                        first.tz_convert("UTC").asi8), u.asi8)).tz_localize("UTC")
            st = np.where(amb, np.where(flagged, timeutil.FOLD_SECOND, timeutil.FOLD_FIRST), st)
        utc[positions] = u.tz_localize(None).to_numpy()
        status[positions] = st
    for i in np.flatnonzero(status == timeutil.NONEXISTENT):
        r = reads[i]
        ctx.fail(f"row {r.line}: {r.label:%Y-%m-%d %H:%M} does not exist in {tz} (the spring-forward hour); "
                 f"the {m.name} layout is not expected to write it")
    return pd.DatetimeIndex(utc).tz_localize("UTC"), status


# ---- rows


def _interval_s(m: Mapping, reads: List[_Read], utc: pd.DatetimeIndex, ctx: Ctx) -> int:
    if m.interval_s != "infer":
        return int(m.interval_s)
    lengths = [r.length_s for r in reads if r.length_s]
    if lengths:
        s = int(pd.Series(lengths).mode().min())
    else:
        steps = []
        for tab in sorted({(r.table, r.meter) for r in reads}):
            u = np.sort(utc[[i for i, r in enumerate(reads) if (r.table, r.meter) == tab]].asi8)
            steps.extend((np.diff(u) // 10**9).tolist())
        steps = [x for x in steps if x > 0]
        if not steps:
            ctx.fail("one row and no end time: the interval length cannot be inferred; set interval_s in the mapping")
        s = int(pd.Series(steps).mode().min())
    if s not in INTERVALS_S:
        ctx.fail(f"interval length {s} s is not interval telemetry the platform keeps ({INTERVALS_S} s)")
    return s


def _kwh(m: Mapping, reads: List[_Read], interval_s: int, ctx: Ctx) -> np.ndarray:
    out = np.empty(len(reads))
    for i, r in enumerate(reads):
        unit = (r.unit or m.units).strip().lower()
        if unit in UNIT_KWH:
            out[i] = r.value * UNIT_KWH[unit]
        elif unit == "kw":
            out[i] = r.value * interval_s / 3600.0
        else:
            col = next((t.units_column for t in m.tables if t.units_column), "units")
            ctx.fail(f"row {r.line}, column {col!r}: unit {r.unit!r} is not kWh, Wh or kW")
    return out


def parse_with(m: Mapping, payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """One utility CSV file read by mapping `m` -> grid_kwh rows (source ami)."""
    tz = ctx.need_tz(m.timezone)
    reads = read_rows(m, payload, ctx)
    utc, status = _to_utc(m, reads, tz, ctx)
    interval_s = _interval_s(m, reads, utc, ctx)
    starts = utc - pd.Timedelta(seconds=interval_s) if m.label == "ending" else utc
    ctx.see_window(starts)
    frame = pd.DataFrame({"meter": [r.meter for r in reads], "role": [r.role for r in reads], "start": starts,
                          "kwh": _kwh(m, reads, interval_s, ctx),
                          "quality": [r.quality for r in reads], "line": [r.line for r in reads], "status": status})
    lone = frame["status"] == timeutil.FOLD_UNKNOWN
    if lone.any():
        ctx.note(f"{int(lone.sum())} rows of the repeated fall-back hour appear once (rows "
                 f"{frame.loc[lone, 'line'].min()}-{frame.loc[lone, 'line'].max()}): placed on daylight time "
                 "and flagged suspect")
        frame.loc[lone & (frame["quality"] != "missing"), "quality"] = "suspect"
    dup = frame.duplicated(["meter", "role", "start"], keep=False)
    if dup.any():
        first = frame[dup].sort_values("line")
        same = first[(first["start"] == first["start"].iloc[0]) & (first["meter"] == first["meter"].iloc[0])]
        ctx.fail(f"rows {same['line'].iloc[0]} and {same['line'].iloc[1]} are the same {first['role'].iloc[0]} "
                 f"interval {first['start'].iloc[0]:%Y-%m-%dT%H:%MZ}")
    meters = sorted(frame["meter"].unique())
    # one meter: the rows are the site's; several: each meter its own device, as ESPI's usage points
    return concat([rows(ctx, "grid_kwh", *_net(frame[frame["meter"] == mid], ctx), interval_s,
                        device_id=mid if len(meters) > 1 else None) for mid in meters])


def _net(frame: pd.DataFrame, ctx: Ctx) -> tuple:
    roles = set(frame["role"])
    if "net" in roles and roles - {"net"}:
        ctx.fail("a file holds both a net table and delivered/received tables; cannot tell which is the meter")
    if roles == {"net"}:
        f = frame.sort_values("start")
        return f["start"], f["kwh"].to_numpy(), f["quality"].to_numpy()
    d = frame[frame["role"] == "delivered"].set_index("start")
    r = frame[frame["role"] == "received"].set_index("start")
    if r.empty:
        ctx.note("no received (export) table: grid_kwh is the delivered energy alone")
    if d.empty:
        ctx.note("no delivered (import) table: grid_kwh is minus the received energy alone")
    idx = d.index.union(r.index) if not (d.empty or r.empty) else (d.index if r.empty else r.index)
    dv = d["kwh"].reindex(idx).to_numpy() if not d.empty else np.zeros(len(idx))
    rv = r["kwh"].reindex(idx).to_numpy() if not r.empty else np.zeros(len(idx))
    dq = d["quality"].reindex(idx).fillna("missing").to_numpy() if not d.empty else np.full(len(idx), "measured")
    rq = r["quality"].reindex(idx).fillna("missing").to_numpy() if not r.empty else np.full(len(idx), "measured")
    value = dv - rv  # NaN on either side -> a missing interval, never a one-sided number
    quality = np.array([max(a, b, key=_ORDER.__getitem__) for a, b in zip(dq, rq)], dtype=object)
    return pd.Series(idx), value, quality


def _parser(name: str):
    def parse(payload: bytes, ctx: Ctx) -> pd.DataFrame:
        return parse_with(shipped_mappings()[name], payload, ctx)

    parse.__name__ = f"parse_{name}"
    return parse


ENDPOINTS = {name: _parser(name) for name in shipped_mappings()}


# ---- choosing a mapping and a site for an inbox file


def matching_mappings(payload: bytes) -> List[str]:
    """Names of the shipped mappings one of whose table headers is a row of this file."""
    try:
        text = bytes(payload).decode("utf-8-sig")
        lines = list(csv.reader(io.StringIO(text, newline="")))
    except (UnicodeDecodeError, csv.Error):
        return []
    return [name for name, m in shipped_mappings().items() if any(t.matches(c) for t in m.tables for c in lines)]


def meter_ids(payload: bytes, m: Mapping) -> List[str]:
    """The meter ids the file's meter column holds (empty when the layout has none or the file is unreadable)."""
    try:
        lines = list(csv.reader(io.StringIO(bytes(payload).decode("utf-8-sig"), newline="")))
    except (UnicodeDecodeError, csv.Error):
        return []
    out: List[str] = []
    col = None
    for cells in lines:
        hit = next((t for t in m.tables if t.matches(cells)), None)
        if hit is not None:
            keys = [_key(c) for c in cells]
            col = keys.index(_key(hit.meter)) if hit.meter and _key(hit.meter) in keys else None
        elif not any(c.strip() for c in cells):
            col = None
        elif col is not None and col < len(cells) and cells[col].strip() and cells[col].strip() not in out:
            out.append(cells[col].strip())
    return out


def account_number(payload: bytes, m: Mapping) -> Optional[str]:
    """The account the file's preamble names (`account_label`, e.g. "Account Number,1776..."), if any."""
    if not m.account_label:
        return None
    try:
        for cells in csv.reader(io.StringIO(bytes(payload).decode("utf-8-sig"), newline="")):
            if len(cells) >= 2 and _key(cells[0]).rstrip(":") == _key(m.account_label):
                return cells[1].strip() or None
            if any(t.matches(cells) for t in m.tables):
                return None
    except (UnicodeDecodeError, csv.Error):
        return None
    return None
