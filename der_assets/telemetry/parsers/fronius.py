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
- SeriesType=DailySum is a day total, not interval data: ParseError.
- Inverter nodes ("inverter/<n>") carry EnergyReal_WAC_Sum_Produced: Wh the inverter produced
  IN each logging step (a per-step energy, not a register: the DailySum capture's day value is
  a fractional Wh sum, 15587.78), read as measured pv_kwh. A key labels the step that starts
  there, as the twin serves it [A: the Solar API document keys values by seconds since Start
  without saying which end of a step a per-step energy belongs to]. With several inverters
  (Scope=System) the site's PV is their sum, and a step one of them lacks is missing. Steps
  other than 300/900/3600 s are re-gridded to 900 s through the running sum. On a hybrid
  inverter the AC output also carries battery discharge [A, as SolarEdge StorEdge].
- No battery channel: the documented archive channels are the meter registers and the
  inverter's per-step energy (reference/vendor-formats.md section 5; both captures and the
  twin carry nothing else), so battery_kwh and soc_pct come only from the PowerFlow poll log
  and a past day has none. A payload with neither a meter register nor an inverter energy
  channel is a ParseError.
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
from ._common import (Ctx, concat, conflicting_duplicates, energy_unit_scale, floats, from_counter, load_json,
                      load_json_docs, power_to_intervals, rows, soc_at_interval_end, to_float, to_int, to_text)

PLUS = "EnergyReal_WAC_Plus_Absolute"
MINUS = "EnergyReal_WAC_Minus_Absolute"
PRODUCED = "EnergyReal_WAC_Sum_Produced"
NATIVE_S = (300, 900, 3600)
REALTIME_S = 900


def _check_status(doc: dict, ctx: Ctx) -> None:
    status = doc["Head"]["Status"]
    code = status.get("Code")
    if code is None or to_int(code, "Status.Code") != 0:  # false is not 0 (the number rule)
        ctx.fail(f"Fronius status {status.get('Code')}: {status.get('Reason') or status.get('UserMessage')}")


def _register(node: dict, name: str, start: pd.Timestamp, ctx: Ctx):
    ch = node["Data"][name]
    scale = energy_unit_scale(ch.get("Unit"), ctx)
    values = ch["Values"] or {}
    if not isinstance(values, dict):
        ctx.fail(f"{name} Values is not an object keyed by seconds since Start")
    secs = np.array([to_int(k, f"{name} key") for k in values], dtype="int64")
    order = np.argsort(secs, kind="stable")
    secs = secs[order]
    vals = floats(list(values.values()))[order]
    return secs, vals * scale


def parse_archive(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """GetArchiveData.cgi, SeriesType=Detail: meter lifetime registers -> grid_kwh, inverter
    per-step energy -> pv_kwh."""
    doc = load_json(payload, ctx)
    _check_status(doc, ctx)
    series_type = doc["Head"].get("RequestArguments", {}).get("SeriesType", "Detail")
    if series_type != "Detail":
        ctx.fail(f"SeriesType {series_type!r} is not interval data (need Detail)")
    frames = []
    produced = []  # (node_key, start, end, secs, kwh) per inverter node
    for node_key, node in doc["Body"]["Data"].items():
        channels = node.get("Data") or {}
        if PRODUCED in channels and not (PLUS in channels or MINUS in channels):
            start, end = timeutil.parse_aware(node["Start"]), timeutil.parse_aware(node["End"])
            ctx.see_window([start, end])
            produced.append((node_key, start, end, *_register(node, PRODUCED, start, ctx)))
            continue
        if PLUS not in channels and MINUS not in channels:
            continue
        if not (PLUS in channels and MINUS in channels):
            ctx.fail(f"{node_key}: grid needs both {PLUS} and {MINUS}")
        start = timeutil.parse_aware(node["Start"])
        end = timeutil.parse_aware(node["End"])
        ctx.see_window([start, end])  # the declared window obeys the time rule (_common)
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
    if produced:
        frames.append(_produced(ctx, produced))
    if not frames:
        ctx.fail(f"no meter register ({PLUS}/{MINUS}) or inverter energy ({PRODUCED}) channel in archive payload")
    return concat(frames)


def _produced(ctx: Ctx, nodes: list) -> pd.DataFrame | None:
    """The site's pv_kwh from the inverters' per-step Wh: every step of [Start, End] is a row
    (a step no inverter logged is missing), the inverters summed step by step."""
    start, end = nodes[0][1], nodes[0][2]
    if any(n[1] != start or n[2] != end for n in nodes):
        ctx.fail("inverter nodes disagree on Start/End: " + ", ".join(f"{n[0]} {n[1]}..{n[2]}" for n in nodes))
    keys = np.unique(np.concatenate([n[3] for n in nodes]))
    if not len(keys):
        return None  # nothing logged in the window: no rows, not an error
    step = reduce(gcd, np.diff(keys).tolist()) if len(keys) > 1 else 300
    span_s = (end - start).total_seconds()
    if step <= 0 or keys.min() < 0 or keys.max() > span_s + 1 or (keys % step).any():
        ctx.fail(f"inverter archive keys {keys.min()}..{keys.max()} s do not fit Start..End at {step} s steps")
    if step < 300:  # every step of Start..End is a row: a 1 s "step" over a long window is millions of them
        ctx.fail(f"inverter archive keys are {step} s apart: not a logging step (the data manager logs every "
                 "5 to 30 minutes)")
    grid = np.arange(0, int(span_s) + 1, step, dtype="int64")  # every step starting in [Start, End]
    total = np.zeros(len(grid))
    clash = np.zeros(len(grid), dtype=bool)
    for _, _, _, secs, kwh in nodes:
        per = np.full(len(grid), np.nan)
        at = np.searchsorted(grid, secs)
        per[at] = kwh  # keys "60" and "060" are one step: the last is kept, and a conflict is suspect
        clash[at[conflicting_duplicates(secs, kwh)]] = True
        total += per  # a step one inverter lacks stays NaN: missing, never a partial sum
    starts = start + pd.to_timedelta(grid, unit="s")
    if step in NATIVE_S:
        return rows(ctx, "pv_kwh", starts, total, np.where(clash, "suspect", "measured"), step)
    # an odd logging step: its running sum is a register, re-gridded like the meter's
    reading_t = start + pd.to_timedelta(np.r_[grid[:1], grid + step], unit="s")
    running = np.r_[0.0, np.cumsum(np.nan_to_num(total))]
    running[1:][np.isnan(total)] = np.nan
    c = counter_to_intervals(reading_t, running, interval_s=900, max_gap_s=1.5 * step,
                             window=(start, end + pd.Timedelta(seconds=1)))
    return from_counter(ctx, "pv_kwh", c, 900)


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
                and (to_text(inv.get("Battery_Mode"), "Battery_Mode") or "").strip().lower() != "disabled"]
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
