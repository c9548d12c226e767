"""Deliverable kW per site and sample day, from canonical telemetry and the registry.

A site's deliverable on a day is the constant power its batteries could hold for the whole
window from the state self-consumption left them in at window start (DESIGN.md, "Capacity
contract"):

    min(rated_kw, (soc_kwh - reserve_kwh) * sqrt(efficiency) / duration_h), floored at 0,

summed over the site's batteries, and no more than the site's net load max(0, load_kw - pv_kw)
in every window interval when exports are not allowed. Nothing unmeasured becomes a number:
a battery that did not report at window start delivers 0 and is counted as unavailable with
its reason, and a non-export site whose net load is not known is unavailable too.

Every kW of nameplate (battery rated_kw) is accounted for on every site-day: deliverable plus
the losses below equals nameplate exactly (`LOSS_CATEGORIES`). Losses are taken in this order:

1. unavailable (the whole rated kW): not_active, no_rating, opt_out, event_hours,
   no_events_left, refused, no_telemetry, offline;
2. power: rated kW a full battery cannot hold for duration_h (capacity_kwh * sqrt(eff) / duration_h);
3. reserve: what the backup reserve takes from a full battery;
4. soc: what the subscriber's own use left missing at window start;
5. non_export (and no_net_load): the net-load cap of a non-export site.

All work is vectorized over rows, batteries and days; the only Python loops run over time
zones and telemetry chunks.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from der_assets.capacity.errors import CapacityInputError

NS = 1_000_000_000
MAX_INTERVAL_S = 3600  # the longest canonical interval: a row starting this long before a window can reach into it
SUB_S = 300  # window sub-slot, s: the shortest canonical interval, so 5-, 15- and 60-minute rows all align
CHUNK_ROWS = 1_000_000  # rows per chunk: the per-row temporaries of a chunk stay near 50 MB
_BUCKET_SHIFT = 36  # prefilter bucket: 2**36 ns, about 69 s

# reason -> loss category of the contract's losses_kw (unavailability folds into offline or opt_out)
REASON_CATEGORY = {
    "not_active": "offline",
    "no_rating": "offline",
    "opt_out": "opt_out",
    "event_hours": "opt_out",
    "no_events_left": "opt_out",
    "refused": "opt_out",
    "no_telemetry": "offline",
    "offline": "offline",
    "power": "power",
    "reserve": "reserve",
    "soc": "soc",
    "non_export": "non_export",
    "no_net_load": "non_export",
}
UNAVAILABLE_REASONS = ("not_active", "no_rating", "opt_out", "event_hours", "no_events_left", "refused",
                       "no_telemetry", "offline")
REASONS = tuple(REASON_CATEGORY)  # argmax order: the first wins a tie
LOSS_CATEGORIES = ("reserve", "soc", "power", "non_export", "offline", "opt_out")


@dataclass(frozen=True)
class Window:
    """Sample-day selection and the event window (local time at each site)."""

    months: tuple[int, ...] = (6, 7, 8, 9)
    weekdays_only: bool = False
    window_start: dt.time = dt.time(15, 0)
    duration_h: float = 1.0
    efficiency: float = 0.9


@dataclass
class Availability:
    """Per site-day results as arrays (sites x days), plus the sites and days they index."""

    sites: pd.DataFrame          # one row per site: site_id, zone, iso, resource, timezone, nameplate_kw
    days: np.ndarray             # datetime.date per column, local calendar days
    deliverable_kw: np.ndarray   # (n_sites, n_days)
    reason: np.ndarray           # (n_sites, n_days) int8 index into REASONS, -1 = ok
    losses_kw: dict[str, np.ndarray]  # category -> (n_sites, n_days)
    warnings: list[str]

    def reasons_text(self) -> np.ndarray:
        names = np.array(("ok",) + REASONS, dtype=object)
        return names[self.reason.astype(np.int16) + 1]


def _bool(series: pd.Series, default: bool) -> np.ndarray:
    s = series.map(lambda v: default if v is None or (isinstance(v, float) and np.isnan(v)) else
                   (v if isinstance(v, (bool, np.bool_)) else str(v).strip().lower() in ("true", "1", "yes", "t", "y")))
    return s.to_numpy(dtype=bool)


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def fleet_tables(registry: pd.DataFrame, iso: str) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Sites and batteries of one ISO from the registry frame (one row per device).

    A site is in the fleet when it is not retired and has a battery that is not retired; its
    resource is the registry's resource_id when given, else f"{iso}-{zone}".
    """
    warnings: list[str] = []
    reg = registry[registry["iso"].astype(str).str.upper() == iso]
    reg = reg[reg["site_status"].astype(str) != "retired"]
    bat = reg[(reg["device_type"] == "battery") & (reg["device_status"].astype(str) != "retired")]
    if bat.empty:
        raise CapacityInputError(f"the registry has no battery in {iso} that is not retired")
    site_rows = bat.drop_duplicates("site_id").sort_values("site_id")
    zone = site_rows["zone"].fillna("").astype(str)
    resource = (site_rows["resource_id"].fillna("").astype(str).str.strip() if "resource_id" in site_rows
                else pd.Series("", index=site_rows.index))
    resource = resource.where(resource != "", iso + "-" + zone)
    pv_sites = set(reg.loc[reg["device_type"] == "pv_inverter", "site_id"])
    sites = pd.DataFrame({
        "site_id": site_rows["site_id"].astype(str).to_numpy(),
        "zone": zone.to_numpy(),
        "iso": iso,
        "resource": resource.to_numpy(),
        "timezone": site_rows["timezone"].astype(str).to_numpy(),
        "active": (site_rows["site_status"].astype(str) == "active").to_numpy(),
        "opt_out": _bool(site_rows["opt_out"], False),
        "export_allowed": _bool(site_rows["export_allowed"], False),
        "has_pv": site_rows["site_id"].isin(pv_sites).to_numpy(),
        "reserve_floor_pct": _num(site_rows["reserve_floor_pct"]),
        "max_events_per_month": _num(site_rows["max_events_per_month"]),
        "max_event_hours": _num(site_rows["max_event_hours"]),
    })
    site_index = pd.Index(sites["site_id"])
    bat = bat.sort_values(["site_id", "device_id"])
    batteries = pd.DataFrame({
        "battery_id": bat["device_id"].astype(str).to_numpy(),
        "site": site_index.get_indexer(bat["site_id"].astype(str)),
        "rated_kw": _num(bat["rated_kw"]),
        "capacity_kwh": _num(bat["capacity_kwh"]),
        "device_offline": (bat["device_status"].astype(str) == "offline").to_numpy(),
    })
    nameplate = np.bincount(batteries["site"], weights=np.nan_to_num(batteries["rated_kw"]), minlength=len(sites))
    sites["nameplate_kw"] = nameplate
    no_rating = batteries["rated_kw"].isna() | batteries["capacity_kwh"].isna()
    if no_rating.any():
        warnings.append(f"{int(no_rating.sum())} batteries lack rated_kw or capacity_kwh in the registry and are "
                        "counted unavailable (no_rating): " + ", ".join(batteries.loc[no_rating, "battery_id"][:10]))
    blank_reserve = np.isnan(sites["reserve_floor_pct"].to_numpy())
    if blank_reserve.any():
        warnings.append(f"{int(blank_reserve.sum())} sites have no reserve_floor_pct; their reserve is taken as 0 %")
    return sites, batteries, warnings


def window_starts_ns(days: np.ndarray, timezones: list[str], start: dt.time) -> np.ndarray:
    """UTC epoch ns of the window start (local wall time `start`) per time zone and local day.

    An ambiguous local time (the repeated hour when DST ends) is its first occurrence; a
    local time that does not exist (the skipped hour when DST starts) moves forward.
    """
    naive = pd.DatetimeIndex(pd.to_datetime(pd.Series(days).astype(str)) +
                             pd.Timedelta(hours=start.hour, minutes=start.minute))
    out = np.empty((len(timezones), len(days)), dtype=np.int64)
    for i, tz in enumerate(timezones):
        local = naive.tz_localize(tz, ambiguous=np.ones(len(days), dtype=bool), nonexistent="shift_forward")
        out[i] = local.tz_convert("UTC").asi8
    return out


def _codes(col: pd.Series, keys: pd.Index) -> np.ndarray:
    """Row -> position in `keys` (-1 when absent), via categories when the column is categorical."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        lookup = keys.get_indexer(col.cat.categories.astype(str))
        codes = col.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[codes], -1).astype(np.int32)
    cat = pd.Categorical(col.astype(str))
    lookup = keys.get_indexer(cat.categories)
    return lookup[cat.codes].astype(np.int32)


def _chunked_codes(col: pd.Series, keys: pd.Index | None):
    """(lo, hi[, idx]) -> int32 positions in `keys` (-1 when absent) of rows lo:hi (or of (lo:hi)[idx]);
    keys None gives the column's own codes."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        if keys is None:
            return lambda lo, hi, idx=None: (codes[lo:hi] if idx is None else codes[lo:hi][idx]).astype(np.int32)
        lookup = np.append(keys.get_indexer(col.cat.categories.astype(str)), -1).astype(np.int32)
        # code -1 (NaN) reads the appended -1
        return lambda lo, hi, idx=None: lookup[codes[lo:hi] if idx is None else codes[lo:hi][idx]]
    all_codes = _codes(col, keys) if keys is not None else pd.factorize(col)[0].astype(np.int32)
    return lambda lo, hi, idx=None: all_codes[lo:hi] if idx is None else all_codes[lo:hi][idx]


def _chunked_small(col: pd.Series, mapping: dict[str, int]):
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        lookup = np.array([mapping.get(str(c), -1) for c in col.cat.categories] + [-1], dtype=np.int8)
        return lambda lo, hi: lookup[codes[lo:hi]]
    all_codes = _small_codes(col, mapping)
    return lambda lo, hi: all_codes[lo:hi]


class _Prefilter:
    """A cheap, time-zone-free superset of the rows `_window_rows` keeps, from two bucket tables.

    soc rows can only match when their interval end lies within a second of some window start
    (of any time zone), window rows when their start lies in some window or in the longest
    interval (MAX_INTERVAL_S) before it; both tables are
    padded by a second either side, so every row the exact test keeps is a candidate. Buckets
    are 2**_BUCKET_SHIFT ns; rows outside the tables' span fall into an unflagged end bucket.
    """

    def __init__(self, ws: np.ndarray, duration_s: int):
        w = np.unique(ws.ravel())
        self.t0 = int(w.min()) - (MAX_INTERVAL_S + 2) * NS
        size = ((int(w.max()) + (duration_s + 2) * NS - self.t0) >> _BUCKET_SHIFT) + 3
        self.last = size - 1
        self.soc = np.zeros(size, dtype=bool)
        self.win = np.zeros(size, dtype=bool)
        for table, lo_off, hi_off in ((self.soc, -NS, 2 * NS),
                                      (self.win, -(MAX_INTERVAL_S + 1) * NS, (duration_s + 1) * NS)):
            lo = ((w + lo_off - self.t0) >> _BUCKET_SHIFT) + 1
            hi = ((w + hi_off - self.t0) >> _BUCKET_SHIFT) + 1
            mark = np.zeros(size + 1, dtype=np.int64)
            np.add.at(mark, lo, 1)
            np.add.at(mark, hi + 1, -1)
            table |= np.cumsum(mark[:-1]) > 0
        self.soc[[0, self.last]] = False
        self.win[[0, self.last]] = False

    def bucket(self, t: np.ndarray) -> np.ndarray:
        b = t - self.t0  # wraps for absurd times (NaT); the clip sends those to an end bucket
        b >>= _BUCKET_SHIFT
        b += 1
        return np.clip(b, 0, self.last, out=b)

    def candidates(self, start: np.ndarray, isec: np.ndarray, ch: np.ndarray) -> np.ndarray:
        end = isec * NS
        end += start
        soc = self.soc[self.bucket(end)]
        soc &= ch == 0
        win = self.win[self.bucket(start)]
        win &= ch >= 1
        return soc | win


def _ns(col: pd.Series) -> np.ndarray:
    """UTC epoch ns of a datetime column, without copying a tz-aware ns column."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        arr = col.array
        if arr.unit != "ns":
            arr = arr.as_unit("ns")
        return arr.asi8
    if pd.api.types.is_datetime64_dtype(col.dtype):
        return col.to_numpy(dtype="datetime64[ns]").view(np.int64)
    raise CapacityInputError("telemetry interval_start must be a datetime column (UTC)")


CHANNEL_CODE = {"soc_pct": 0, "load_kwh": 1, "pv_kwh": 2, "grid_kwh": 3, "battery_kwh": 4}
_GOOD_QUALITY = ("measured", "estimated")


def _small_codes(col: pd.Series, mapping: dict[str, int]) -> np.ndarray:
    if isinstance(col.dtype, pd.CategoricalDtype):
        lookup = np.array([mapping.get(str(c), -1) for c in col.cat.categories], dtype=np.int8)
        codes = col.cat.codes.to_numpy()
        return np.where(codes >= 0, lookup[codes], -1).astype(np.int8)
    return col.map(mapping).fillna(-1).to_numpy(dtype=np.int8)


@dataclass
class _Rows:
    """Telemetry rows that touch a window, as arrays (far fewer than the input)."""

    kind: np.ndarray      # 0 soc at window start, 1 window interval
    site: np.ndarray
    battery: np.ndarray
    device: np.ndarray
    channel: np.ndarray
    day: np.ndarray
    offset_s: np.ndarray  # interval start - window start, s (< 0 for a row that starts before the window)
    interval_s: np.ndarray
    value: np.ndarray
    good: np.ndarray
    revision: np.ndarray


def _window_rows(telemetry: pd.DataFrame, sites: pd.DataFrame, batteries: pd.DataFrame, ws: np.ndarray,
                 site_tz: np.ndarray, duration_s: int) -> tuple[_Rows, np.ndarray, np.ndarray]:
    """The rows at window start (soc) or inside the window (energies), which sites have any value, and
    which days the telemetry reaches a window on: a fleet row of any quality (a `missing` row too) and any
    device whose soc interval ends at window start or whose energy interval overlaps the window."""
    n = len(telemetry)
    # codes are looked up chunk by chunk, so no full-length int32/int64 copy of a column is made; a
    # time-zone-free prefilter (_Prefilter) leaves the exact key test to the few rows near a window
    site_all = _chunked_codes(telemetry["site_id"], pd.Index(sites["site_id"]))
    battery_all = _chunked_codes(telemetry["device_id"], pd.Index(batteries["battery_id"]))
    device_all = _chunked_codes(telemetry["device_id"], None)
    channel_all = _chunked_small(telemetry["channel"], CHANNEL_CODE)
    good_all = _chunked_small(telemetry["quality"], {q: 1 for q in _GOOD_QUALITY})
    nonexport = ~sites["export_allowed"].to_numpy()
    value_all = telemetry["value"].to_numpy()
    start_all = _ns(telemetry["interval_start"])
    interval_all = telemetry["interval_s"].to_numpy()
    revision_all = telemetry["revision"].to_numpy() if "revision" in telemetry else None
    has_value = np.zeros(len(sites), dtype=bool)
    n_tz, n_days = ws.shape
    day_touched = np.zeros(n_days, dtype=bool)
    # per time zone, window starts as a sorted key; a row is matched to the latest window start <= it
    base = int(ws.min()) - 2 * 3600 * NS
    ws_s = (ws - base) // NS  # int64 seconds since base
    keys = (np.arange(n_tz, dtype=np.int64)[:, None] << 32) + ws_s
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    flat_sorted = flat[order]
    prefilter = _Prefilter(ws, duration_s)
    parts: list[dict[str, np.ndarray]] = []
    for lo in range(0, n, CHUNK_ROWS):
        hi = min(n, lo + CHUNK_ROWS)
        site = site_all(lo, hi)
        ok_site = site >= 0
        val = value_all[lo:hi]
        good = good_all(lo, hi) == 1
        good &= ~np.isnan(val)
        has_value[site[ok_site & good]] = True
        isec_all = interval_all[lo:hi].astype(np.int64)
        ch_all = channel_all(lo, hi)
        cand = prefilter.candidates(start_all[lo:hi], isec_all, ch_all)
        cand &= ok_site
        c = np.flatnonzero(cand)
        if c.size == 0:
            continue
        # the exact test, on the candidates only
        site = site[c]
        bat_chunk = battery_all(lo, hi, c)
        dev_chunk = device_all(lo, hi, c)
        val = val[c]
        good = good[c]
        tz = site_tz[site].astype(np.int64)
        st = (start_all[lo:hi][c] - base) // NS
        isec = isec_all[c]
        ch = ch_all[c]
        # soc: the row of the interval that ends at window start
        end_key = (tz << 32) + st + isec
        pos = np.searchsorted(flat_sorted, end_key)
        hit = np.zeros(c.size, dtype=bool)
        inb = pos < len(flat_sorted)
        hit[inb] = flat_sorted[pos[inb]] == end_key[inb]
        soc_sel = (ch == 0) & hit & (bat_chunk >= 0)
        # energies: rows whose start falls in [window start, window start + duration) ...
        start_key = (tz << 32) + st
        pos2 = np.searchsorted(flat_sorted, start_key, side="right") - 1
        ok2 = pos2 >= 0
        prev = np.where(ok2, flat_sorted[np.maximum(pos2, 0)], 0)
        win_sel = (ch >= 1) & ok2 & ((prev >> 32) == tz) & (start_key - prev < duration_s)
        # and rows that start before a window start but run into the window (an hourly row and a 15:30
        # window): they carry that window's first interval too
        nxt = pos2 + 1
        ok3 = nxt < len(flat_sorted)
        after = np.where(ok3, flat_sorted[np.minimum(nxt, len(flat_sorted) - 1)], 0)
        early = (ch >= 1) & ~win_sel & ok3 & ((after >> 32) == tz) & (after < start_key + isec)
        pos2 = np.where(early, nxt, pos2)
        win_sel |= early
        # the telemetry reaches this day's window (a silent battery then counts as offline, never skipped)
        day_touched[order[pos[(ch == 0) & hit]] % n_days] = True
        day_touched[order[pos2[win_sel]] % n_days] = True
        for kind, sel, p in ((0, soc_sel, pos), (1, win_sel & nonexport[site], pos2)):
            idx = np.flatnonzero(sel)
            if idx.size == 0:
                continue
            matched = flat_sorted[p[idx]]
            parts.append({
                "kind": np.full(idx.size, kind, dtype=np.int8),
                "site": site[idx],
                "battery": bat_chunk[idx],
                "device": dev_chunk[idx],
                "channel": ch[idx],
                "day": (order[p[idx]] % n_days).astype(np.int32),
                "offset_s": (start_key[idx] - matched) if kind == 1 else np.zeros(idx.size, dtype=np.int64),
                "interval_s": isec[idx],
                "value": val[idx].astype(np.float64),
                "good": good[idx],
                "revision": (revision_all[lo:hi][c[idx]].astype(np.int64) if revision_all is not None
                             else np.zeros(idx.size, dtype=np.int64)),
            })
    if parts:
        rows = _Rows(**{k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    else:
        rows = _Rows(*(np.zeros(0, dtype=t) for t in (np.int8, np.int32, np.int32, np.int32, np.int8, np.int32,
                                                        np.int64, np.int64, np.float64, bool, np.int64)))
    return rows, has_value, day_touched


def _latest_revision(keys: np.ndarray, revision: np.ndarray) -> np.ndarray:
    """Indices keeping, per key, the row of the highest revision (the latest belief)."""
    order = np.lexsort((revision, keys))
    k = keys[order]
    last = np.ones(len(k), dtype=bool)
    last[:-1] = k[1:] != k[:-1]
    return order[last]


def _soc_matrix(rows: _Rows, n_batteries: int, n_days: int) -> np.ndarray:
    """soc_pct at window start per battery and day; NaN where the battery did not report a usable value."""
    soc = np.full((n_batteries, n_days), np.nan)
    sel = np.flatnonzero(rows.kind == 0)
    if sel.size:
        key = rows.battery[sel].astype(np.int64) * n_days + rows.day[sel]
        keep = sel[_latest_revision(key, rows.revision[sel])]
        v = np.where(rows.good[keep], rows.value[keep], np.nan)
        soc[rows.battery[keep], rows.day[keep]] = np.clip(v, 0.0, 100.0)
    return soc


def _net_load_min(rows: _Rows, sites: pd.DataFrame, n_days: int, duration_s: int) -> np.ndarray:
    """Smallest net load max(0, load_kw - pv_kw) over the window per site and day, kW; NaN when unknown.

    load - pv comes from load_kwh and pv_kwh rows, else from grid_kwh + battery_kwh (the site
    balance: grid = load - pv - battery). pv and battery energies are summed over devices;
    load and grid (site-level quantities) are averaged over the devices reporting them. A
    sub-slot with any silent row of a channel leaves that channel unknown there.
    """
    n_sites = len(sites)
    n_sub = int(np.ceil(duration_s / SUB_S))
    sel = np.flatnonzero(rows.kind == 1)
    out = np.full((n_sites, n_days), np.nan)
    if sel.size == 0:
        return out
    if rows.revision[sel].max(initial=0) > 0:  # several beliefs of one device-interval: keep the latest
        key = ((rows.device[sel].astype(np.int64) * n_days + rows.day[sel]) * 5 + rows.channel[sel]) * (1 << 24) \
            + rows.offset_s[sel] + (1 << 23)
        sel = sel[_latest_revision(key, rows.revision[sel])]
    ne = np.flatnonzero(~sites["export_allowed"].to_numpy())
    ne_pos = np.full(n_sites, -1)
    ne_pos[ne] = np.arange(ne.size)
    n_ne = ne.size
    good = rows.good[sel]
    value = rows.value[sel]
    isec = rows.interval_s[sel]
    # expand each row to the 5-minute sub-slots it covers inside the window
    reps = np.maximum(isec // SUB_S, 1)
    idx = np.repeat(np.arange(sel.size), reps)
    first = np.repeat(np.cumsum(reps) - reps, reps)
    slot = rows.offset_s[sel][idx] // SUB_S + (np.arange(idx.size) - first)
    inside = (slot >= 0) & (slot < n_sub)
    idx, slot = idx[inside], slot[inside]
    kw = value[idx] / (isec[idx] / 3600.0)
    cell = ((ne_pos[rows.site[sel][idx]].astype(np.int64) * n_days + rows.day[sel][idx]) * n_sub + slot) * 5 \
        + rows.channel[sel][idx]
    size = n_ne * n_days * n_sub * 5
    ok = good[idx]
    total = np.bincount(cell[ok], weights=kw[ok], minlength=size)
    count = np.bincount(cell[ok], minlength=size)
    bad = np.bincount(cell[~ok], minlength=size) > 0
    total = total.reshape(n_ne, n_days, n_sub, 5)
    count = count.reshape(n_ne, n_days, n_sub, 5)
    bad = bad.reshape(n_ne, n_days, n_sub, 5)
    known = (count > 0) & ~bad

    def chan(c: int, mean: bool, absent_is_zero: np.ndarray | None = None) -> np.ndarray:
        v = total[..., c] / np.maximum(count[..., c], 1) if mean else total[..., c]
        k = known[..., c]
        if absent_is_zero is not None:  # a site without that device: 0, known
            k = k | (absent_is_zero[:, None, None] & (count[..., c] == 0) & ~bad[..., c])
        return np.where(k, v, np.nan)

    no_pv = ~sites["has_pv"].to_numpy()[ne]
    via_load = chan(1, True) - chan(2, False, no_pv)
    via_grid = chan(3, True) + chan(4, False)
    net = np.where(np.isnan(via_load), via_grid, via_load)
    net = np.maximum(net, 0.0)
    out[ne] = net.min(axis=2)
    return out  # NaN propagates: one unknown sub-slot makes the window unknown


def _commands_matrices(commands: pd.DataFrame | None, sites: pd.DataFrame, batteries: pd.DataFrame,
                       days: np.ndarray, site_tz: np.ndarray, timezones: list[str]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """From dispatch history: refused[battery, day] and events used earlier in the month [site, day].

    Rule (docs/capacity.md): a battery whose command was refused (ok = False) on a local day is
    unavailable that whole day; a site's events are its distinct instruction_ids per local
    calendar month, and events on earlier days of the month count against max_events_per_month.
    """
    n_b, n_s, n_d = len(batteries), len(sites), len(days)
    refused = np.zeros((n_b, n_d), dtype=bool)
    used = np.zeros((n_s, n_d), dtype=np.int64)
    if commands is None or len(commands) == 0:
        return refused, used
    c = commands
    site = pd.Index(sites["site_id"]).get_indexer(c["site_id"].astype(str))
    sent = pd.to_datetime(c["sent_at"], utc=True)
    local_date = np.empty(len(c), dtype="datetime64[D]")
    tz_of_row = np.where(site >= 0, site_tz[np.maximum(site, 0)], -1)
    for i, tz in enumerate(timezones):
        m = tz_of_row == i
        if m.any():
            local_date[m] = sent[m].dt.tz_convert(tz).dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    keep = site >= 0
    day_d = np.array(days, dtype="datetime64[D]")
    day_pos = {d: i for i, d in enumerate(day_d)}
    # refusals
    bat = pd.Index(batteries["battery_id"]).get_indexer(c["battery_id"].astype(str))
    ok = c["ok"].astype(bool).to_numpy()
    rsel = keep & (bat >= 0) & ~ok
    if rsel.any():
        d_idx = np.array([day_pos.get(d, -1) for d in local_date[rsel]])
        m = d_idx >= 0
        refused[bat[rsel][m], d_idx[m]] = True
    # events per month: first local day of each (site, instruction)
    ev = pd.DataFrame({"site": site[keep], "instr": c["instruction_id"].astype(str).to_numpy()[keep],
                       "date": local_date[keep]}).groupby(["site", "instr"], as_index=False)["date"].min()
    if len(ev):
        dord = ev["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
        key = np.sort(ev["site"].to_numpy().astype(np.int64) * 1_000_000 + dord)
        d_ord = day_d.astype(np.int64)
        m_start = day_d.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
        s_idx = np.arange(n_s, dtype=np.int64)[:, None] * 1_000_000
        used = np.searchsorted(key, s_idx + d_ord[None, :]) - np.searchsorted(key, s_idx + m_start[None, :])
    return refused, used


def candidate_days(telemetry: pd.DataFrame, window: Window) -> np.ndarray:
    """Local calendar days spanned by the telemetry that fall in the months (and weekdays) asked for."""
    t = _ns(telemetry["interval_start"])
    if t.size == 0:
        return np.array([], dtype=object)
    lo = (np.datetime64(int(t.min()), "ns") - np.timedelta64(1, "D")).astype("datetime64[D]")
    hi = (np.datetime64(int(t.max()), "ns") + np.timedelta64(1, "D")).astype("datetime64[D]")
    days = pd.date_range(str(lo), str(hi), freq="D")
    days = days[days.month.isin(window.months)]
    if window.weekdays_only:
        days = days[days.dayofweek < 5]
    return np.array([d.date() for d in days], dtype=object)


def site_availability(registry: pd.DataFrame, telemetry: pd.DataFrame, iso: str, window: Window,
                      commands: pd.DataFrame | None = None) -> Availability:
    """Deliverable kW, reason and losses per site and sample day (see the module docstring).

    telemetry: canonical interval rows (site_id and device_id may be categorical; interval_start
    datetime64 UTC). commands: optional dispatch_commands-shaped frame (battery_id, site_id,
    instruction_id, ok, sent_at).
    """
    if not 0.0 < window.efficiency <= 1.0:
        raise CapacityInputError(f"round-trip efficiency {window.efficiency:g} is not in (0, 1]")
    if not window.duration_h > 0:
        raise CapacityInputError(f"duration {window.duration_h:g} h must be positive")
    sites, batteries, warnings = fleet_tables(registry, iso)
    days = candidate_days(telemetry, window)
    if len(days) == 0:
        raise CapacityInputError(f"no history in the sample window: the telemetry has no day in months "
                                 f"{','.join(map(str, window.months))}" + (" on weekdays" if window.weekdays_only else ""))
    timezones = sorted(sites["timezone"].unique())
    site_tz = pd.Index(timezones).get_indexer(sites["timezone"]).astype(np.int64)
    ws = window_starts_ns(days, timezones, window.window_start)
    duration_s = int(round(window.duration_h * 3600))
    rows, has_value, day_seen = _window_rows(telemetry, sites, batteries, ws, site_tz, duration_s)

    # a sample day is one the telemetry reaches at some site's window (any row, a `missing` one too), so a
    # battery silent there counts as offline that day, never skipped; the history must hold a usable value
    if not (rows.good & ~np.isnan(rows.value)).any():
        raise CapacityInputError(
            f"no history in the sample window: none of the {len(days)} candidate days ({days[0]} to {days[-1]}) has "
            f"a reported value at {window.window_start:%H:%M} local time; check --months, --window-start and the "
            "telemetry file")
    keep_days = np.flatnonzero(day_seen)
    soc_pct = _soc_matrix(rows, len(batteries), len(days))[:, keep_days]
    net_min = _net_load_min(rows, sites, len(days), duration_s)[:, keep_days]
    refused, used = _commands_matrices(commands, sites, batteries, days, site_tz, timezones)
    refused, used = refused[:, keep_days], used[:, keep_days]
    days = days[keep_days]
    n_s, n_d, n_b = len(sites), len(days), len(batteries)

    # per battery and day
    b_site = batteries["site"].to_numpy()
    rated = np.nan_to_num(batteries["rated_kw"].to_numpy())[:, None]
    cap = batteries["capacity_kwh"].to_numpy()[:, None]
    reserve_pct = np.nan_to_num(sites["reserve_floor_pct"].to_numpy())[b_site][:, None]
    reserve = cap * reserve_pct / 100.0
    k = np.sqrt(window.efficiency) / window.duration_h
    full = np.minimum(rated, np.nan_to_num(cap) * k)
    after_reserve = np.minimum(full, np.maximum(np.nan_to_num(cap - reserve), 0.0) * k)
    soc_kwh = cap * soc_pct / 100.0
    at_start = np.minimum(after_reserve, np.maximum(np.nan_to_num(soc_kwh - reserve), 0.0) * k)

    s = sites
    max_ev = s["max_events_per_month"].to_numpy()
    max_h = s["max_event_hours"].to_numpy()
    shape = (n_b, n_d)
    unavailable = {
        "not_active": np.broadcast_to(~s["active"].to_numpy()[b_site][:, None], shape),
        "no_rating": np.broadcast_to((np.isnan(batteries["rated_kw"].to_numpy())
                                      | np.isnan(batteries["capacity_kwh"].to_numpy()))[:, None], shape),
        "opt_out": np.broadcast_to(s["opt_out"].to_numpy()[b_site][:, None], shape),
        "event_hours": np.broadcast_to((max_h < window.duration_h)[b_site][:, None], shape),
        "no_events_left": (~np.isnan(max_ev)[:, None] & (used >= np.nan_to_num(max_ev)[:, None]))[b_site],
        "refused": refused,
        "no_telemetry": np.broadcast_to(~has_value[b_site][:, None], shape),
        "offline": np.broadcast_to(batteries["device_offline"].to_numpy()[:, None], shape) | np.isnan(soc_pct),
    }
    taken = np.zeros(shape, dtype=bool)
    detail: dict[str, np.ndarray] = {}
    for reason in UNAVAILABLE_REASONS:
        now = unavailable[reason] & ~taken
        detail[reason] = np.where(now, rated, 0.0)
        taken |= now
    avail = ~taken
    detail["power"] = np.where(avail, rated - full, 0.0)
    detail["reserve"] = np.where(avail, full - after_reserve, 0.0)
    detail["soc"] = np.where(avail, after_reserve - at_start, 0.0)
    battery_kw = np.where(avail, at_start, 0.0)

    # per site: sum the batteries, then the non-export cap
    def to_sites(a: np.ndarray) -> np.ndarray:
        out = np.zeros((n_s, n_d))
        np.add.at(out, b_site, a)
        return out

    site_detail = {r: to_sites(detail.pop(r)) for r in list(detail)}  # each battery array freed once summed
    pre_cap = to_sites(battery_kw)
    capped = ~s["export_allowed"].to_numpy()[:, None] & np.ones((1, n_d), dtype=bool)
    unknown = capped & np.isnan(net_min)
    limit = np.where(capped, np.nan_to_num(net_min, nan=0.0), np.inf)
    deliverable = np.minimum(pre_cap, limit)
    site_detail["no_net_load"] = np.where(unknown, pre_cap, 0.0)
    site_detail["non_export"] = np.where(unknown, 0.0, pre_cap - deliverable)
    deliverable = np.where(unknown, 0.0, deliverable)
    n_unknown = int((unknown & (pre_cap > 0)).sum())
    if n_unknown:
        warnings.append(f"{n_unknown} site-days of non-export sites lack the load/pv (or grid/battery) rows to know "
                        "their net load in the window and count as unavailable (no_net_load)")

    # the largest loss names the site-day (the first reason wins a tie), as argmax over the stacked
    # losses would, without stacking them: a running maximum
    best = np.zeros((n_s, n_d), dtype=np.int8)
    top = site_detail[REASONS[0]].copy()
    for i, r in enumerate(REASONS[1:], start=1):
        more = site_detail[r] > top
        best[more] = i
        np.maximum(top, site_detail[r], out=top)
    reason = np.where(top > 1e-9, best, np.int8(-1)).astype(np.int8)
    del top, best
    losses = {c: np.zeros((n_s, n_d)) for c in LOSS_CATEGORIES}
    for r, cat in REASON_CATEGORY.items():
        losses[cat] += site_detail[r]
    silent = int((~has_value).sum())
    if silent:
        warnings.append(f"{silent} sites have no telemetry value at all and are counted unavailable (no_telemetry)")
    return Availability(sites=sites.drop(columns=["active", "opt_out", "has_pv"]), days=days,
                        deliverable_kw=deliverable, reason=reason, losses_kw=losses, warnings=warnings)
