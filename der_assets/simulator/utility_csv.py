"""The twin's utility interval CSV exports: a share of its meters deliver CSV instead of Green Button XML.

Why: the AMI inbox must be exercised on the CSV path (`der dev`, tests) as on ESPI, from the same
meters, so the two can be held equal. The file is written in the layout a mapping under
telemetry/data/utility_csv describes (PECO sites in the peco layout, ComEd sites in the comed
layout, by the registry's EDC), with the preamble and section lines those utilities write.

Values are the Green Button writer's own quarter-hours (`greenbutton.meter_intervals`: whole Wh
of forward and reverse flow, meter rounding), written in kWh with 3 decimals, so a day's CSV and
its ESPI file carry the same energy. A quarter-hour the twin lacks is a row with a blank value.

Quirks written as the layouts' sources say (see each mapping's citation):
- Opower layouts (peco, comed): "Electric usage" rows, END TIME the interval's last minute,
  USAGE net (import +, export -); the fall-back day repeats 01:00-01:45 in clock order, the
  spring-forward day has no 02:xx rows.
- SCE: per local day a delivered and a received section, each "start to end" in local time;
  the fall-back repeat is written as 02:00-02:45 twice (dst_repeated_hour = 2).

Share: DER_TWIN_UTILITY_CSV_SHARE (0..1, default 0: every meter sends Green Button XML);
`der dev` sets 0.25. Which meters: a hash of the meter id, so reruns agree.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from der_assets.simulator.greenbutton import INTERVAL_S, day_window, meter_intervals
from der_assets.simulator.hub import TwinHub
from der_assets.telemetry.parsers.utility_csv import Mapping, Table, shipped_mappings

SHARE_ENV = "DER_TWIN_UTILITY_CSV_SHARE"


def csv_share() -> float:
    """The share of meters that deliver CSV, from the environment (0 when unset)."""
    raw = os.environ.get(SHARE_ENV, "").strip()
    share = float(raw) if raw else 0.0
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{SHARE_ENV}={raw!r} must be between 0 and 1")
    return share


def layout_for(meter_id: str, edc: object, share: float) -> str | None:
    """The mapping name this meter's utility CSV uses, or None (it sends Green Button XML)."""
    if share <= 0 or not isinstance(edc, str):
        return None
    u = int.from_bytes(hashlib.sha256(f"utility_csv|{meter_id}".encode()).digest()[:8], "big") / 2**64
    if u >= share:
        return None
    key = edc.strip().lower()
    return next((n for n, m in shipped_mappings().items() if key in {e.lower() for e in m.edc}), None)


def file_name(layout: str, meter_id: str, day: dt.date) -> str:
    return f"{layout}_electric_usage_interval_data_{meter_id}_{day:%Y-%m-%d}.csv"


# ---- the generic writer (any mapping)


def _labels(m: Mapping, start_utc: pd.DatetimeIndex, interval_s: int, tz: str) -> list[tuple[dt.datetime, dt.datetime]]:
    """(start, end) local wall labels per interval, the repeated fall-back hour written where the layout writes it."""
    zone = ZoneInfo(tz)
    out = []
    for s in start_utc:
        a = s.to_pydatetime().astimezone(zone)
        b = (s + pd.Timedelta(seconds=interval_s)).to_pydatetime().astimezone(zone)
        shift = dt.timedelta(0)
        # the clock's second pass of the repeated hour; a layout that writes the repeat one hour late moves it
        if a.fold == 1 and m.dst_repeated_hour != a.hour:
            shift = dt.timedelta(hours=m.dst_repeated_hour - a.hour)
        start = a.replace(tzinfo=None, fold=0) + shift
        # a beginning label's row shows start and start + length; an ending label is the clock at the end
        end = b.replace(tzinfo=None, fold=0) if m.label == "ending" else start + dt.timedelta(seconds=interval_s)
        out.append((start, end))
    return out


def _quality_word(m: Mapping, quality: str) -> str:
    if quality in ("measured", "missing"):
        return ""
    words = [k for k, v in m.quality_map.items() if v == quality]
    return words[0] if words else quality  # a word the mapping lacks reads back as suspect


def _row(m: Mapping, t: Table, label: tuple, kwh: float, quality: str, decimals: int, meter: str = "") -> list[str]:
    a, b = label
    cells = {h: "" for h in t.header}
    value = "" if quality == "missing" or not np.isfinite(kwh) else f"{kwh:.{decimals}f}"
    if t.period:
        cells[t.period] = f"{a:{m.datetime_format}}{t.period_separator}{b:{m.datetime_format}}"
    elif t.timestamp:
        cells[t.timestamp] = f"{(b if m.label == 'ending' else a):{m.datetime_format}}"
    else:
        shown = b if m.label == "ending" else a
        cells[t.date] = f"{shown:{m.date_format}}"
        cells[t.start] = f"{shown:{m.time_format}}"
        if t.end:
            end = b - dt.timedelta(minutes=1) if t.end_inclusive else b
            cells[t.end] = f"{end:{m.time_format}}"
    cells[t.value] = value
    if t.quality:
        cells[t.quality] = _quality_word(m, quality)
    if t.units_column:
        cells[t.units_column] = m.units
    if t.type_column:
        cells[t.type_column] = t.type_value
    if t.meter:
        cells[t.meter] = meter
    return [cells[h] for h in t.header]


def write_layout(m: Mapping, frame: pd.DataFrame, *, tz: str, interval_s: int = INTERVAL_S,
                 account: str = "0000000000", location: str = "", decimals: int = 3, meter: str = "") -> bytes:
    """Intervals as the layout's CSV. frame: interval_start (UTC), grid_kwh (net, import +) or
    delivered_kwh and received_kwh, and quality (measured / estimated / missing)."""
    f = frame.sort_values("interval_start").reset_index(drop=True)
    starts = pd.DatetimeIndex(f["interval_start"])
    labels = _labels(m, starts, interval_s, tz)
    quality = f["quality"].astype(str).tolist() if "quality" in f else ["measured"] * len(f)
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    roles = {t.role: t for t in m.tables}
    if "net" in roles:
        grid = f["grid_kwh"] if "grid_kwh" in f else f["delivered_kwh"] - f["received_kwh"]
        for line in (["Name", "DER TWIN"], ["Address", location or "1 TWIN ST"], ["Account Number", account],
                     ["Service", "Service 1"], []):
            w.writerow(line)
        t = roles["net"]
        w.writerow(list(t.header))
        for lab, v, q in zip(labels, grid.to_numpy(dtype=float), quality, strict=True):
            w.writerow(_row(m, t, lab, v, q, decimals, meter))
        return out.getvalue().encode("utf-8")
    delivered = f["delivered_kwh"] if "delivered_kwh" in f else f["grid_kwh"].clip(lower=0)
    received = f["received_kwh"] if "received_kwh" in f else (-f["grid_kwh"]).clip(lower=0)
    days = [lab[0].date() for lab in labels]
    first = labels[0][0] if labels else dt.datetime(2000, 1, 1)
    n_days = len(set(days))
    out.write(f'Energy Usage Information\n"For location: {location or "TWIN"}"\n\nMeter Reading Information\n'
              f'"Type of readings: Electricity"\n\nDetailed Usage\n"Start date: {first:%Y-%m-%d} 00:00:00  for {n_days} days"\n\n')
    for day in sorted(set(days)):
        idx = [i for i, d in enumerate(days) if d == day]
        for role, values in (("delivered", delivered), ("received", received)):
            if role not in roles:
                continue
            t = roles[role]
            out.write(f'"Data for period starting: {day:%Y-%m-%d} 00:00:00  for 24 hours"\n')
            w.writerow(list(t.header))
            v = values.to_numpy(dtype=float)
            for i in idx:
                w.writerow(_row(m, t, labels[i], v[i], quality[i], decimals, meter))
            out.write("\n")
    return out.getvalue().encode("utf-8")


# ---- the twin


def day_csv(hub: TwinHub, site_id: str, day: dt.date, layout: str) -> bytes:
    """One meter's local day in `layout`, from the same quarter-hours the Green Button file carries."""
    site = hub.sites.loc[site_id]
    tz = str(site["timezone"])
    start, end = day_window(tz, day)
    data = meter_intervals(hub, site_id, day).set_index("interval_start")
    grid = pd.DatetimeIndex(pd.date_range(start, end, freq=f"{INTERVAL_S}s", inclusive="left"))
    fwd = data["forward_wh"].reindex(grid).to_numpy(dtype=float) / 1000.0
    rev = data["reverse_wh"].reindex(grid).to_numpy(dtype=float) / 1000.0
    frame = pd.DataFrame({"interval_start": grid, "delivered_kwh": fwd, "received_kwh": rev,
                          "quality": np.where(np.isnan(fwd), "missing", "measured")})
    account, address = site.get("edc_account"), site.get("address")
    return write_layout(shipped_mappings()[layout], frame, tz=tz,
                        account=str(account) if pd.notna(account) and str(account) else "0000000000",
                        location=str(address) if pd.notna(address) else "", meter=str(site["meter_id"]))
