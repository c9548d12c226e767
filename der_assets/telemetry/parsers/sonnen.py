"""sonnenBatterie local API v2 (JSON on port 80). Every sonnen quirk lives in this file.

Verification status: FIXTURE-VERIFIED against MarkusBiggus/sonnen_api_v2's mock responses
(Python dicts modelled on a real sonnenBatterie 10; charging, discharging and off-grid
states). Those are not raw HTTP captures, so field names and signs are verified, byte-level
formatting is not.

Quirks handled here:
- /api/v2/status is instantaneous: Production_W, Consumption_W, GridFeedIn_W (+ export /
  - import, the OPPOSITE of our grid sign), Pac_total_W (+ discharge / - charge), USOC.
  No counters, so energy is integrated from power -> 'estimated'. Checked on the fixtures:
  charging 2972 W pv = 1578 W load + 1394 W charge; discharging 1541 W load = 103 W pv +
  1438 W discharge.
- soc_pct uses USOC (the user-visible, usable SoC that BackupBuffer and reserve floors refer
  to), not RSOC (raw cell SoC).
- Timestamp is LOCAL wall time without offset ("YYYY-MM-DD HH:MM:SS"); the site tz is needed.
  A nonexistent (spring-forward) stamp is a ParseError; a repeated fall-back stamp that the
  poll order cannot place is kept on the first pass and flagged 'suspect'.
- The legacy v1 API sends numbers as strings ("-12.20"); accepted everywhere.
- /api/v2/powermeter: list of {direction: production|consumption, kwh_imported, ...} with
  LIFETIME kWh registers and NO timestamp. The poll time must be supplied: wrap each body as
  {"polled_at": "<RFC3339>", "body": [...]}; a single bare body uses received_at.
  production.kwh_imported -> pv; consumption.kwh_imported -> load.
- Both are snapshot endpoints: pass a poll log (concatenated bodies) to get intervals.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import timeutil
from ..counters import counter_to_intervals
from ._common import (Ctx, concat, from_counter, load_json_docs, power_to_intervals, rows, soc_at_interval_end,
                      to_float, to_text, unwrap_polls)

INTERVAL_S = 900
LABEL_FMT = "%Y-%m-%d %H:%M:%S"
POWER_FIELDS = {  # channel -> (field, sign to our convention)
    "pv_kwh": ("Production_W", 1.0),
    "load_kwh": ("Consumption_W", 1.0),
    "grid_kwh": ("GridFeedIn_W", -1.0),
    "battery_kwh": ("Pac_total_W", 1.0),
}


def parse_status(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/api/v2/status poll log -> estimated pv/load/grid/battery energy and soc_pct."""
    bodies = [b for _t, b in unwrap_polls(load_json_docs(payload, ctx))]
    for b in bodies:
        if not isinstance(b, dict) or "Timestamp" not in b:
            ctx.fail("status body has no Timestamp")
    tz = ctx.need_tz()
    naive = timeutil.parse_naive([b["Timestamp"] for b in bodies], LABEL_FMT)
    loc = timeutil.localize_labels(naive, tz)
    ctx.see_window(loc["utc"])
    if (loc["status"] == timeutil.NONEXISTENT).any():
        bad = naive[(loc["status"] == timeutil.NONEXISTENT).to_numpy()][0]
        ctx.fail(f"Timestamp {bad} does not exist in {tz} (spring-forward gap)")
    unknown = (loc["status"] == timeutil.FOLD_UNKNOWN).to_numpy()
    t = loc["utc"]
    frames = []
    for channel, (field, sign) in POWER_FIELDS.items():
        p = np.array([to_float(b[field]) for b in bodies]) * sign
        e = power_to_intervals(t, p, INTERVAL_S)
        frames.append(_flag_unknown(rows(ctx, channel, e["interval_start"], e["energy"], e["quality"], INTERVAL_S),
                                    t[unknown], INTERVAL_S))
    soc = np.array([to_float(b["USOC"]) for b in bodies])
    s = soc_at_interval_end(t, soc, INTERVAL_S)
    frames.append(_flag_unknown(rows(ctx, "soc_pct", s["interval_start"], s["energy"], s["quality"], INTERVAL_S),
                                t[unknown], INTERVAL_S, at_end=True))
    return concat(frames)


def _flag_unknown(df: pd.DataFrame, unplaced: pd.Series, interval_s: int, at_end: bool = False) -> pd.DataFrame:
    """Rows fed by a fall-back stamp we could not place are kept but flagged suspect."""
    if len(unplaced) == 0:
        return df
    idx = pd.DatetimeIndex(unplaced)
    starts = (idx.ceil(f"{interval_s}s") - pd.Timedelta(seconds=interval_s)) if at_end else idx.floor(f"{interval_s}s")
    hit = df["interval_start"].isin(starts) & (df["quality"] != "missing")
    df.loc[hit, "quality"] = "suspect"
    return df


def parse_powermeter(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/api/v2/powermeter poll log -> pv and load from lifetime kWh registers."""
    polls = unwrap_polls(load_json_docs(payload, ctx))
    if len(polls) > 1 and any(t is None for t, _ in polls):
        ctx.fail("powermeter bodies carry no time: wrap each as {\"polled_at\": ..., \"body\": ...}")
    recs = []
    for t, body in polls:
        if not isinstance(body, list):
            ctx.fail("powermeter body must be a list of meters")
        t = t if t is not None else ctx.received_at
        for m in body:
            if not isinstance(m, dict):
                ctx.fail(f"powermeter entry {m!r} is not an object")
            recs.append({"t": t, "direction": to_text(m["direction"], "direction"), "kwh": to_float(m["kwh_imported"])})
    df = pd.DataFrame(recs, columns=["t", "direction", "kwh"])
    ctx.see_window(df["t"])
    frames = []
    for direction, channel in (("production", "pv_kwh"), ("consumption", "load_kwh")):
        g = df[df["direction"] == direction]
        if len(g):
            c = counter_to_intervals(g["t"], g["kwh"], interval_s=INTERVAL_S, max_gap_s=INTERVAL_S)
            frames.append(from_counter(ctx, channel, c, INTERVAL_S))
    return concat(frames)


ENDPOINTS = {
    "status": parse_status,
    "powermeter": parse_powermeter,
}
