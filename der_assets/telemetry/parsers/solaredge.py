"""SolarEdge Monitoring API v1 (cloud JSON). Every SolarEdge quirk lives in this file.

Verification status: DOC-BASED. No SolarEdge capture is in shared/fixtures (the SolarNetwork
captures are GPL and were held out), so these parsers follow reference/vendor-formats.md §1
and are tested on small payloads written to that documented shape.

Quirks handled here:
- Timestamps are site-local strings without an offset ("YYYY-MM-DD hh:mm:ss"); the site tz
  comes from /site/{id}/details location.timeZone and is passed in as `tz`.
- energyDetails / powerDetails labels are interval-BEGINNING (inferred from fixtures upstream).
- Fall-back day: the API SUMS the two repeated-hour passes into one set of slots. A repeated
  label that appears once is split evenly over both passes and marked 'estimated'; if the
  payload does list it twice, order decides (first = DST).
- Spring-forward day: the missing hour shows up as empty slots. Empty/zero slots at a
  nonexistent local time are dropped (no such interval exists); a non-zero one is a ParseError.
- Missing data: a value entry with no "value" key or "value": null -> missing row, never 0.
- Duplicate timestamps: identical values are collapsed; conflicting ones keep the last, suspect.
- energyDetails meters: Production -> pv, Consumption -> load, Purchased - FeedIn -> grid.
  SelfConsumption is a calculated virtual meter and is skipped (it is derivable).
- powerDetails is average W per slot -> energy = W x slot, 'estimated' (energyDetails is the
  counter-backed source).
- /meters, /storageData, /equipment data carry LIFETIME registers (Wh) at irregular ~5 min
  stamps: differenced through counters.counter_to_intervals. Readings whose local stamp
  cannot be placed in UTC (repeated hour seen once, nonexistent hour) are dropped; the
  counter still conserves the energy and the affected intervals come back 'estimated'.
- storageData battery power sign is unverified [A]; it is NOT used. Battery energy comes from
  lifeTimeEnergyDischarged - lifeTimeEnergyCharged (+ discharge), SoC from
  batteryPercentageState.
- /meters pairs FeedIn with Purchased by site and connection (connectedSolaredgeDeviceSN), not
  by meter serial: real sites carry the two registers under different serials. One pair per
  site pairs whatever the serials; a register that cannot be paired gives no grid rows and is
  listed in the notes, and the payload's other registers (production) are still read.
- equipmentData totalEnergy is the inverter's lifetime AC output -> pv_kwh. On StorEdge
  (DC-coupled battery) inverters it also includes battery discharge [A, unverified]. On many
  inverters the register moves in whole kWh, so differencing it every 5 minutes gives runs of
  "measured" zeros and then 1 kWh jumps while totalActivePower says 1.5 kW. A coarse register
  is told from the data itself (every reading a multiple of 1,000 Wh, and at least one step);
  then pv_kwh comes from integrating totalActivePower (W, trapezoids between readings),
  'estimated', and an interval with no telemetry for 1.5 steps is 'missing' (power is not
  spread over an inverter's night); with no power field, from the register over whole hours,
  'estimated'.
- A PV value above what the inverter's nameplate (Ctx.nameplate_kw) can make in the interval
  is 'suspect' however short the payload.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pandas as pd

from .. import timeutil
from ..counters import FLAG_GAP, combine_net, counter_to_intervals
from ._common import (Ctx, concat, energy_unit_scale, floats, from_counter, load_json, over_nameplate, rows,
                      soc_at_interval_end, spike_mask, to_text)

TIME_UNITS_S = {"QUARTER_OF_AN_HOUR": 900, "HOUR": 3600}
ENERGY_METERS = {"Production": "pv_kwh", "Consumption": "load_kwh"}
GRID_METERS = ("Purchased", "FeedIn")
KNOWN_METERS = {"Production", "Consumption", "SelfConsumption", "FeedIn", "Purchased"}
LABEL_FMT = "%Y-%m-%d %H:%M:%S"
TELEMETRY_S = 300  # storage / equipment telemetry cadence


def _interval_s(block: dict, ctx: Ctx) -> int:
    unit = block.get("timeUnit")
    if unit not in TIME_UNITS_S:
        ctx.fail(f"timeUnit {unit!r} is not interval data (need QUARTER_OF_AN_HOUR or HOUR)")
    return TIME_UNITS_S[unit]


def _values(entries: List[dict]) -> tuple:
    labels = [e["date"] for e in entries]
    vals = floats(e.get("value") for e in entries)
    return labels, vals


def _slots_to_utc(labels, vals: np.ndarray, ctx: Ctx, *, summed_quality: str) -> pd.DataFrame:
    """Local slot labels -> UTC rows (interval_start, value, quality), with SolarEdge's DST rules."""
    tz = ctx.need_tz()
    naive = timeutil.parse_naive(labels, LABEL_FMT)
    loc = timeutil.localize_labels(naive, tz)
    ctx.see_window(loc["utc"])
    status = loc["status"].to_numpy()
    nonexist = status == timeutil.NONEXISTENT
    bad = nonexist & np.isfinite(vals) & (vals != 0)
    if bad.any():
        ctx.fail(f"non-zero value at nonexistent local time {naive[np.argmax(bad)]} ({tz})")
    keep = ~nonexist
    utc = loc["utc"][keep].reset_index(drop=True)
    v = vals[keep]
    st = status[keep]
    quality = np.full(len(v), "measured", dtype=object)
    out = pd.DataFrame({"interval_start": utc, "value": v, "quality": quality})

    summed = st == timeutil.FOLD_UNKNOWN
    if summed.any():
        half = out.loc[summed].copy()
        half["value"] = half["value"] / 2.0
        half["quality"] = summed_quality
        partner = half.copy()
        partner["interval_start"] = timeutil.fold_partner_utc(half["interval_start"], tz)
        out = pd.concat([out.loc[~summed], half, partner], ignore_index=True)
    return _dedupe(out)


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Duplicate timestamps: equal values collapse; conflicting values keep the last as suspect."""
    df = df.sort_values("interval_start", kind="stable")
    key = df["interval_start"]
    dup = key.duplicated(keep=False)
    if not dup.any():
        return df.reset_index(drop=True)
    nunique = df[dup].groupby("interval_start")["value"].nunique(dropna=False)
    conflicted = set(nunique[nunique > 1].index)
    df = df.drop_duplicates("interval_start", keep="last").copy()
    df.loc[df["interval_start"].isin(conflicted), "quality"] = "suspect"
    return df.reset_index(drop=True)


def _per_interval(ctx: Ctx, block: dict, *, scale_kwh, summed_quality: str, base_quality: str) -> pd.DataFrame:
    interval_s = _interval_s(block, ctx)
    series: Dict[str, pd.DataFrame] = {}
    for meter in block["meters"]:
        mtype = to_text(meter["type"], "meter type")
        if mtype not in KNOWN_METERS:
            ctx.fail(f"unknown meter type {mtype!r}")
        labels, vals = _values(meter["values"])
        df = _slots_to_utc(labels, vals * scale_kwh(interval_s), ctx, summed_quality=summed_quality)
        if base_quality != "measured":
            df.loc[df["quality"] == "measured", "quality"] = base_quality
        spikes = spike_mask(df["value"].to_numpy())
        if mtype == "Production":
            spikes |= over_nameplate(df["value"].to_numpy(), interval_s, ctx.nameplate_kw)
        df.loc[spikes, "quality"] = "suspect"
        series[mtype] = df
    frames = []
    for mtype, channel in ENERGY_METERS.items():
        if mtype in series:
            d = series[mtype]
            frames.append(rows(ctx, channel, d["interval_start"], d["value"], d["quality"], interval_s))
    present = [m for m in GRID_METERS if m in series]
    if len(present) == 1:
        ctx.fail(f"grid needs both Purchased and FeedIn meters; payload has only {present[0]}")
    if len(present) == 2:
        a = series["Purchased"].rename(columns={"value": "energy"}).assign(flag="")
        b = series["FeedIn"].rename(columns={"value": "energy"}).assign(flag="")
        net = combine_net(a, b)
        frames.append(from_counter(ctx, "grid_kwh", net, interval_s))
    return concat(frames)


def parse_energy_details(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/site/{id}/energyDetails: Wh per slot."""
    block = load_json(payload, ctx)["energyDetails"]
    scale = energy_unit_scale(block.get("unit"), ctx)
    return _per_interval(ctx, block, scale_kwh=lambda _s: scale, summed_quality="estimated", base_quality="measured")


def parse_power_details(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/site/{id}/powerDetails: average W per slot, integrated -> 'estimated'."""
    block = load_json(payload, ctx)["powerDetails"]
    unit = str(block.get("unit", "")).strip()
    per_kw = {"W": 1e-3, "kW": 1.0}
    if unit not in per_kw:
        ctx.fail(f"powerDetails unit {unit!r} is not a power unit (W/kW)")
    # summed repeated hour is undocumented for power: split it, but flag it suspect
    return _per_interval(
        ctx, block, scale_kwh=lambda s: per_kw[unit] * s / 3600.0, summed_quality="suspect", base_quality="estimated"
    )


def _placeable(labels, ctx: Ctx) -> pd.DataFrame:
    """Irregular local reading stamps -> UTC; unplaceable readings get NaT (dropped by counters)."""
    tz = ctx.need_tz()
    naive = timeutil.parse_naive(labels, LABEL_FMT)
    loc = timeutil.localize_labels(naive, tz)
    unplaceable = loc["status"].isin([timeutil.NONEXISTENT, timeutil.FOLD_UNKNOWN])
    loc.loc[unplaceable, "utc"] = pd.NaT
    ctx.see_window(loc["utc"])
    return loc


def _counter(ctx: Ctx, labels, values_wh, interval_s: int) -> pd.DataFrame:
    loc = _placeable(labels, ctx)
    v = np.where(loc["utc"].isna(), np.nan, values_wh)
    return counter_to_intervals(loc["utc"], v, interval_s=interval_s,
                                max_gap_s=1.5 * interval_s)


def _grid_pairs(grid: List[tuple]) -> tuple:
    """(Purchased, FeedIn) register pairs of one site, and the registers left unpaired.

    grid: (meterType, serial, connection, counter frame). One of each at the site pair whatever
    their serials; otherwise they pair per connection (connectedSolaredgeDeviceSN), one of each.
    """
    by_type = {m: [g for g in grid if g[0] == m] for m in GRID_METERS}
    if all(len(v) == 1 for v in by_type.values()):
        return [(by_type["Purchased"][0], by_type["FeedIn"][0])], []
    pairs, unpaired = [], []
    for conn in dict.fromkeys(g[2] for g in grid):
        here = {m: [g for g in by_type[m] if g[2] == conn] for m in GRID_METERS}
        if all(len(v) == 1 for v in here.values()):
            pairs.append((here["Purchased"][0], here["FeedIn"][0]))
        else:
            unpaired.extend(here["Purchased"] + here["FeedIn"])
    return pairs, unpaired


def parse_meters(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/site/{id}/meters: lifetime register Wh per meter; grid = Purchased - FeedIn, paired by site
    and connection (a meter that cannot be paired is listed in the notes, never fatal)."""
    block = load_json(payload, ctx)["meterEnergyDetails"]
    interval_s = _interval_s(block, ctx)
    scale = energy_unit_scale(block.get("unit", "Wh"), ctx)
    frames, grid = [], []
    for meter in block["meters"]:
        mtype = to_text(meter["meterType"], "meterType")
        if mtype not in KNOWN_METERS:
            ctx.fail(f"unknown meterType {mtype!r}")
        serial = str(meter.get("meterSerialNumber") or ctx.device_id or ctx.site_id)
        labels, vals = _values(meter["values"])
        counter = _counter(ctx, labels, vals, interval_s)
        if mtype in ENERGY_METERS:
            frames.append(from_counter(ctx, ENERGY_METERS[mtype], counter, interval_s, scale, ctx.device_id or serial))
        elif mtype in GRID_METERS:
            grid.append((mtype, serial, str(meter.get("connectedSolaredgeDeviceSN") or ""), counter))
    pairs, unpaired = _grid_pairs(grid)
    for (_, p_serial, _, purchased), (_, _, _, feed_in) in pairs:
        dev = ctx.device_id or p_serial  # one serial, or the import register's where they differ
        frames.append(from_counter(ctx, "grid_kwh", combine_net(purchased, feed_in), interval_s, scale, dev))
    if unpaired:
        listed = ", ".join(f"{m} {serial}" + (f" on {conn}" if conn else "") for m, serial, conn, _ in unpaired)
        ctx.note(f"no grid_kwh from {len(unpaired)} register(s) without a Purchased/FeedIn partner "
                 f"at the same connection: {listed}")
    return concat(frames)


def parse_storage_data(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/site/{id}/storageData: per-battery lifetime charged/discharged Wh and SoC %."""
    block = load_json(payload, ctx)["storageData"]
    frames = []
    for bat in block["batteries"]:
        dev = ctx.device_id or str(bat["serialNumber"])
        tel = bat["telemetries"]
        if not tel:
            continue
        labels = [t["timeStamp"] for t in tel]
        charged = floats(t.get("lifeTimeEnergyCharged") for t in tel)
        discharged = floats(t.get("lifeTimeEnergyDischarged") for t in tel)
        dis = _counter(ctx, labels, discharged, TELEMETRY_S)
        chg = _counter(ctx, labels, charged, TELEMETRY_S)
        frames.append(from_counter(ctx, "battery_kwh", combine_net(dis, chg), TELEMETRY_S, 1e-3, dev))
        loc = _placeable(labels, ctx)
        soc = floats(t.get("batteryPercentageState") for t in tel)
        ok = loc["utc"].notna().to_numpy()
        s = soc_at_interval_end(loc["utc"][ok], soc[ok], TELEMETRY_S)
        frames.append(rows(ctx, "soc_pct", s["interval_start"], s["energy"], s["quality"], TELEMETRY_S, dev))
    return concat(frames)


COARSE_WH = 1000.0  # a lifetime register that only ever shows whole kWh


def _coarse(total_wh: np.ndarray) -> bool:
    """The register moves in whole kWh: every reading a multiple of 1,000 Wh, and it moved."""
    v = total_wh[np.isfinite(total_wh)]
    return len(v) >= 2 and bool(np.all(np.mod(v, COARSE_WH) == 0)) and v.max() > v.min()


def _integrated_power(ctx: Ctx, labels, power_w: np.ndarray, interval_s: int) -> pd.DataFrame:
    """totalActivePower (W) at irregular stamps -> Wh per interval by trapezoids between readings,
    through the counter machinery (so energy is conserved across grid edges), 'estimated'."""
    loc = _placeable(labels, ctx)
    t = loc["utc"]
    ok = (t.notna() & np.isfinite(power_w)).to_numpy()
    t_ok = pd.DatetimeIndex(t[ok])
    order = np.argsort(t_ok.asi8, kind="stable")
    t_ok, p = t_ok[order], power_w[ok][order]
    dt_s = np.diff(t_ok.asi8) / 1e9
    step_wh = (p[1:] + p[:-1]) / 2.0 * dt_s / 3600.0
    max_gap_s = 1.5 * interval_s
    step_wh[dt_s > max_gap_s] = 0.0  # no telemetry (an inverter asleep): nothing is known, nothing spread
    wh = np.concatenate([[0.0], np.cumsum(step_wh)]) if len(p) else p
    c = counter_to_intervals(t_ok, wh, interval_s=interval_s, max_gap_s=max_gap_s, bidirectional=True)
    c.loc[c["flag"] == FLAG_GAP, ["energy", "quality"]] = [np.nan, "missing"]
    c.loc[c["quality"] == "measured", "quality"] = "estimated"
    with np.errstate(invalid="ignore"):
        c.loc[c["energy"] < 0, "quality"] = "suspect"  # an inverter drawing power: kept, flagged
    return c


def parse_equipment_data(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/equipment/{site}/{serial}/data: inverter lifetime totalEnergy (Wh) -> pv_kwh; a whole-kWh
    register is replaced by integrated totalActivePower (or hourly register steps), 'estimated'."""
    tel = load_json(payload, ctx)["data"]["telemetries"]
    if not tel:
        return concat([])
    labels = [t["date"] for t in tel]
    total_wh = floats(t.get("totalEnergy") for t in tel)
    if not _coarse(total_wh):
        pv = from_counter(ctx, "pv_kwh", _counter(ctx, labels, total_wh, TELEMETRY_S), TELEMETRY_S, 1e-3)
        return _nameplate_check(pv, TELEMETRY_S, ctx)
    power_w = floats(t.get("totalActivePower") for t in tel)
    if np.isfinite(power_w).sum() >= 2:
        ctx.note("totalEnergy moves in whole kWh (every reading a multiple of 1,000 Wh): pv_kwh integrates "
                 "totalActivePower instead, marked estimated")
        pv = from_counter(ctx, "pv_kwh", _integrated_power(ctx, labels, power_w, TELEMETRY_S), TELEMETRY_S, 1e-3)
        return _nameplate_check(pv, TELEMETRY_S, ctx)
    ctx.note("totalEnergy moves in whole kWh and no totalActivePower was sent: pv_kwh is the register's "
             "steps over whole hours, marked estimated")
    hourly = _counter(ctx, labels, total_wh, 3600)
    hourly.loc[hourly["quality"] == "measured", "quality"] = "estimated"
    return _nameplate_check(from_counter(ctx, "pv_kwh", hourly, 3600, 1e-3), 3600, ctx)


def _nameplate_check(pv: pd.DataFrame, interval_s: int, ctx: Ctx) -> pd.DataFrame:
    pv.loc[over_nameplate(pv["value"].to_numpy(), interval_s, ctx.nameplate_kw), "quality"] = "suspect"
    return pv


ENDPOINTS = {
    "energyDetails": parse_energy_details,
    "powerDetails": parse_power_details,
    "meters": parse_meters,
    "storageData": parse_storage_data,
    "equipmentData": parse_equipment_data,
}
