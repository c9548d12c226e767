"""Fronius Solar API v1 (local JSON). Every Fronius quirk lives in this file.

Verification status: FIXTURE-VERIFIED. GetArchiveData against akleber/fronius-json-tools'
real 2017-08-30 Detail capture (288 x 300 s meter registers) and DailySum; and
GetPowerFlowRealtimeData against the akleber 1.23.2-1 capture (battery, meter at grid) and
pyfronius' v1 capture (meter at load, P_PV null).

Quirks handled here:
- Envelope {Head{Status{Code,Reason}, Timestamp}, Body{Data}}: Status.Code != 0 -> ParseError
  carrying Reason, never an empty result.
- Times are RFC 3339 WITH offset, so no site tz is needed; archive values are keyed by
  SECONDS SINCE Start (elapsed seconds, so a DST day is just 82800/90000 s long). Keys that
  are not multiples of the logging step, or that run past End, are a ParseError, because the
  documented DST archive problems would show up exactly like that.
- Archive meter channels EnergyReal_WAC_Plus_Absolute / _Minus_Absolute are LIFETIME
  registers (Wh): Plus = energy taken from the grid, Minus = fed in, for a meter at the feed-in
  point -> grid_kwh = d(Plus) - d(Minus). The day window [Start, End] is claimed, so the
  last step of the day (no reading at 24:00) comes back as a 'missing' row, not dropped.
- Logging step (5-30 min, configurable) is read from the key spacing; 300/900/3600 s are
  kept as they are, other steps are re-gridded to 900 s by counter interpolation.
- SeriesType=DailySum is a day total, not interval data: ParseError. Inverter per-interval
  channels (EnergyReal_WAC_Sum_Produced in Detail) have unverified label semantics here and
  are not read; a payload with no meter register channel is a ParseError.
- PowerFlow Site: P_Grid + import / - export; P_Load NEGATIVE = consumption (load = -P_Load);
  P_Akku + discharge / - charge, null when no battery; P_PV null when unknown (missing,
  never 0). E_Total (Wh lifetime) is the pv counter and is preferred over P_PV; on GEN24 it
  only updates every 5 min, fine for 15-min intervals. Inverters.*.SOC gives soc_pct, but only
  from a battery that is there: a GEN24 whose battery is disabled answers Battery_Mode
  "disabled", P_Akku null and SOC 0, and that 0 is nobody's measurement. An inverter's SOC is
  read only when its Battery_Mode is not "disabled" and Site.P_Akku is not null (null = no
  battery, per the Solar API doc); otherwise no soc_pct sample is taken from that body.
  Snapshot endpoint: pass a poll log (concatenated bodies); power-only channels are
  integrated -> 'estimated'.
"""

from __future__ import annotations

from functools import reduce
from math import gcd

import numpy as np
import pandas as pd

from .. import timeutil
from ..counters import combine_net, counter_to_intervals
from ._common import (Ctx, concat, energy_unit_scale, floats, from_counter, load_json, load_json_docs,
                      power_to_intervals, rows, soc_at_interval_end, to_float)

PLUS = "EnergyReal_WAC_Plus_Absolute"
MINUS = "EnergyReal_WAC_Minus_Absolute"
NATIVE_S = (300, 900, 3600)
REALTIME_S = 900


def _check_status(doc: dict, ctx: Ctx) -> None:
    status = doc["Head"]["Status"]
    if status.get("Code") != 0:
        ctx.fail(f"Fronius status {status.get('Code')}: {status.get('Reason') or status.get('UserMessage')}")


def _register(node: dict, name: str, start: pd.Timestamp, ctx: Ctx):
    ch = node["Data"][name]
    scale = energy_unit_scale(ch.get("Unit"), ctx)
    values = ch["Values"] or {}
    secs = np.array([int(k) for k in values], dtype="int64")
    order = np.argsort(secs)
    secs = secs[order]
    vals = floats(list(values.values()))[order]
    return secs, vals * scale


def parse_archive(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """GetArchiveData.cgi, SeriesType=Detail: meter lifetime registers -> grid_kwh."""
    doc = load_json(payload, ctx)
    _check_status(doc, ctx)
    series_type = doc["Head"].get("RequestArguments", {}).get("SeriesType", "Detail")
    if series_type != "Detail":
        ctx.fail(f"SeriesType {series_type!r} is not interval data (need Detail)")
    frames = []
    for node_key, node in doc["Body"]["Data"].items():
        channels = node.get("Data") or {}
        if PLUS not in channels and MINUS not in channels:
            continue
        if not (PLUS in channels and MINUS in channels):
            ctx.fail(f"{node_key}: grid needs both {PLUS} and {MINUS}")
        start = timeutil.parse_aware(node["Start"])
        end = timeutil.parse_aware(node["End"])
        ctx.window = (start, end)
        regs = {}
        for name in (PLUS, MINUS):
            secs, kwh = _register(node, name, start, ctx)
            regs[name] = (secs, kwh)
        secs = regs[PLUS][0]
        if not len(secs) and not len(regs[MINUS][0]):  # nothing logged in the window: no rows, not an error
            frames.append(None)
            continue
        step = reduce(gcd, np.diff(secs).tolist()) if len(secs) > 1 else 300
        if step <= 0 or secs.min() < 0 or secs.max() > (end - start).total_seconds() + 1:
            ctx.fail(f"{node_key}: archive keys {secs.min()}..{secs.max()} s do not fit Start..End")
        interval_s = step if step in NATIVE_S else 900
        window = (start, end + pd.Timedelta(seconds=1))
        per = {}
        for name, (s, kwh) in regs.items():
            t = start + pd.to_timedelta(s, unit="s")
            per[name] = counter_to_intervals(t, kwh, interval_s=interval_s, max_gap_s=1.5 * step, window=window)
        dev = ctx.device_id or node_key.split(":", 1)[-1]
        frames.append(from_counter(ctx, "grid_kwh", combine_net(per[PLUS], per[MINUS]), interval_s, device_id=dev))
    if not frames:
        ctx.fail(f"no meter register channel ({PLUS}/{MINUS}) in archive payload")
    return concat(frames)


def parse_power_flow(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """GetPowerFlowRealtimeData.fcgi poll log -> pv (E_Total counter), grid/load/battery (estimated), soc."""
    docs = load_json_docs(payload, ctx)
    recs = []
    for doc in docs:
        _check_status(doc, ctx)
        site = doc["Body"]["Data"]["Site"]
        battery_there = site.get("P_Akku") is not None
        socs = [to_float(inv.get("SOC")) for inv in (doc["Body"]["Data"].get("Inverters") or {}).values()
                if isinstance(inv, dict) and "SOC" in inv and battery_there
                and str(inv.get("Battery_Mode", "")).strip().lower() != "disabled"]
        recs.append(
            {
                "t": timeutil.parse_aware(doc["Head"]["Timestamp"]),
                "p_pv_w": to_float(site.get("P_PV")),
                "p_grid_w": to_float(site.get("P_Grid")),
                "p_load_w": to_float(site.get("P_Load")),
                "p_akku_w": to_float(site.get("P_Akku")),
                "e_total_wh": to_float(site.get("E_Total")),
                "soc_pct": float(np.nanmean(socs)) if socs else np.nan,
            }
        )
    df = pd.DataFrame(recs)
    ctx.see_window(df["t"])
    frames = []
    if df["e_total_wh"].notna().any():
        c = counter_to_intervals(df["t"], df["e_total_wh"], interval_s=REALTIME_S, max_gap_s=REALTIME_S)
        frames.append(from_counter(ctx, "pv_kwh", c, REALTIME_S, 1e-3))
    elif df["p_pv_w"].notna().any():
        frames.append(_integrated(ctx, "pv_kwh", df["t"], df["p_pv_w"]))
    frames.append(_integrated(ctx, "grid_kwh", df["t"], df["p_grid_w"]))
    frames.append(_integrated(ctx, "load_kwh", df["t"], -df["p_load_w"]))
    if df["p_akku_w"].notna().any():
        frames.append(_integrated(ctx, "battery_kwh", df["t"], df["p_akku_w"]))
    if df["soc_pct"].notna().any():
        s = soc_at_interval_end(df["t"], df["soc_pct"], REALTIME_S)
        frames.append(rows(ctx, "soc_pct", s["interval_start"], s["energy"], s["quality"], REALTIME_S))
    return concat(frames)


def _integrated(ctx: Ctx, channel: str, t, power_w) -> pd.DataFrame:
    e = power_to_intervals(t, power_w, REALTIME_S)
    return rows(ctx, channel, e["interval_start"], e["energy"], e["quality"], REALTIME_S)


ENDPOINTS = {
    "GetArchiveData": parse_archive,
    "GetPowerFlowRealtimeData": parse_power_flow,
}
