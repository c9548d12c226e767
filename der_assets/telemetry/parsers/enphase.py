"""Enphase: Enlighten Monitoring API v4 (cloud) and the IQ Gateway / Envoy local API.

Every Enphase quirk lives in this file.

Verification status:
- FIXTURE-VERIFIED: production.json, ivp_meters_readings (real gateway captures from
  pyenphase, firmware 3.9.36 / 7.6.185 / 8.2.4345 / 8.3.5433, plus docs/json_data).
- DOC-BASED: production_micro, production_meter, consumption_meter, battery (cloud v4); the
  v4 captures are GPL and were held out, so these follow reference/vendor-formats.md §2a.

Cloud v4 quirks:
- `end_at` (epoch s) is the interval END -> interval_start = end_at - interval.
- production_micro is 5-min `enwh` (Wh); production_meter is 15-min `wh_del` (not enwh);
  consumption_meter is 15-min `enwh`; battery has charge.enwh / discharge.enwh / soc.percent.
- Interval spacing must be a multiple of the endpoint's resolution, else ParseError.
- devices_reporting < total_devices: the sum is partial until late micros report (it is
  superseded by a later revision), so the row is kept but flagged 'suspect'.
- Intervals can fall outside the envelope start_at/end_at: the envelope is NOT used to filter.
- Numbers may arrive as strings, SoC as "97%".

IQ Gateway (local) quirks:
- Snapshot endpoints: one body is one reading of lifetime counters. Intervals need two or
  more readings, so the payload may be a poll log: several bodies concatenated (NDJSON or
  pretty-printed). A single body yields no interval rows (not zeros).
- production.json: pv from production[type=eim, measurementType=production].whLifetime when
  that CT is active, else production[type=inverters].whLifetime, which on non-metered
  firmware < 8 wraps at 1.19 MWh (= 2^32 Ws): unwrapped as a rollover. load from
  total-consumption.whLifetime; grid from net-consumption.whLifetime, a NET register that
  legitimately falls while exporting (+ import, - export), differenced without reset logic.
  readingTime 0 means "no reading" and is dropped. Firmware 8.3.5433 reports
  total-consumption identical to net-consumption: both channels are then flagged 'suspect'.
  Firmware 3.9.36 answers production.json with an HTML error page: ParseError.
- ivp_meters_readings: rows are keyed by meter eid only; which eid is production / net /
  total / storage is in /ivp/meters, so the poll log must include an /ivp/meters body
  (ParseError otherwise). Disabled meters and timestamp 0 are ignored.
  pv = d(actEnergyDlvd) (micro standby draw in actEnergyRcvd is load, not negative pv);
  net-consumption grid = d(actEnergyDlvd) - d(actEnergyRcvd); total-consumption load =
  d(actEnergyDlvd); storage battery = d(actEnergyDlvd) - d(actEnergyRcvd), + discharge
  (sign inferred from docs_json_data: storage activePower -7084 W while net import is small,
  i.e. charging; [V-fixture, inference]). Other meter types (backfeed, evse, pv3p, load) are
  not canonical channels and are skipped.
"""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from .. import timeutil
from ..counters import combine_net, counter_to_intervals
from ._common import Ctx, concat, floats, from_counter, load_json, load_json_docs, rows, spike_mask, to_float

# ---- cloud v4 -------------------------------------------------------------------------

MICRO_S = 300
METER_S = 900


def _v4_intervals(payload: bytes, ctx: Ctx, interval_s: int):
    doc = load_json(payload, ctx)
    if not isinstance(doc, dict) or "intervals" not in doc:
        ctx.fail("v4 telemetry body has no 'intervals' list")
    items = doc["intervals"]
    end = timeutil.from_epoch_s([i["end_at"] for i in items])
    start = timeutil.interval_start_from_end(end, interval_s)
    ctx.see_window(start)
    if len(end) > 1:
        steps = np.diff(np.sort(end.asi8)) // 10**9
        if (steps % interval_s != 0).any() or (steps == 0).any():
            ctx.fail(f"end_at spacing {sorted(set(steps.tolist()))[:5]} s does not fit {interval_s} s intervals")
    return doc, items, start


def _partial_mask(doc: dict, items: List[dict]) -> np.ndarray:
    total = doc.get("total_devices")
    if total is None:
        return np.zeros(len(items), dtype=bool)
    rep = floats(i.get("devices_reporting") for i in items)
    return np.isfinite(rep) & (rep < to_float(total))


def _v4_energy(payload: bytes, ctx: Ctx, field: str, channel: str, interval_s: int) -> pd.DataFrame:
    doc, items, start = _v4_intervals(payload, ctx, interval_s)
    wh = floats(i.get(field) for i in items)
    quality = np.where(_partial_mask(doc, items) | spike_mask(wh), "suspect", "measured")
    return rows(ctx, channel, start, wh / 1000.0, quality, interval_s)


def parse_production_micro(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/production_micro: 5-min enwh."""
    return _v4_energy(payload, ctx, "enwh", "pv_kwh", MICRO_S)


def parse_production_meter(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/production_meter: 15-min wh_del."""
    return _v4_energy(payload, ctx, "wh_del", "pv_kwh", METER_S)


def parse_consumption_meter(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/consumption_meter: 15-min enwh."""
    return _v4_energy(payload, ctx, "enwh", "load_kwh", METER_S)


def _nested(items: List[dict], outer: str, inner: str) -> np.ndarray:
    return floats((i.get(outer) or {}).get(inner) for i in items)


def parse_battery(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """v4 /telemetry/battery: discharge.enwh - charge.enwh (+ discharge), soc.percent at end_at."""
    doc, items, start = _v4_intervals(payload, ctx, METER_S)
    charge = _nested(items, "charge", "enwh")
    discharge = _nested(items, "discharge", "enwh")
    soc = _nested(items, "soc", "percent")
    return concat(
        [
            rows(ctx, "battery_kwh", start, (discharge - charge) / 1000.0, "measured", METER_S),
            rows(ctx, "soc_pct", start, soc, "measured", METER_S),
        ]
    )


# ---- IQ Gateway (local) -----------------------------------------------------------------

LOCAL_S = 900
INVERTER_ROLLOVER_WH = 2**32 / 3600.0  # whLifetime wraps at 1.19 MWh on fw < 8 (2^32 Ws)


def _local_counter(t, wh, *, bidirectional: bool = False, rollover_at: Optional[float] = None) -> pd.DataFrame:
    return counter_to_intervals(
        t, wh, interval_s=LOCAL_S, max_gap_s=LOCAL_S, bidirectional=bidirectional, rollover_at=rollover_at
    )


def _reading(block: dict):
    t = to_float(block.get("readingTime"))
    if not np.isfinite(t) or t <= 0:
        return None
    return timeutil.from_epoch_s([t])[0], to_float(block.get("whLifetime"))


def parse_production_json(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/production.json (poll log of one or more bodies) -> pv, load, grid via lifetime Wh."""
    docs = load_json_docs(payload, ctx)
    series: Dict[str, list] = {"pv_eim": [], "pv_inv": [], "load": [], "net": []}
    twin = False
    for doc in docs:
        if not isinstance(doc, dict) or "production" not in doc:
            ctx.fail("production.json body has no 'production' list")
        for b in doc["production"]:
            r = _reading(b)
            if r is None:
                continue
            if b.get("type") == "eim" and b.get("measurementType") == "production" and to_float(b.get("activeCount")) > 0:
                series["pv_eim"].append(r)
            elif b.get("type") == "inverters":
                series["pv_inv"].append(r)
        cons = {b.get("measurementType"): b for b in doc.get("consumption", []) if b.get("type") == "eim"}
        tot, net = cons.get("total-consumption"), cons.get("net-consumption")
        if tot is not None and net is not None and tot.get("whLifetime") == net.get("whLifetime") \
                and tot.get("wNow") == net.get("wNow"):
            twin = True  # fw 8.3.5433: total-consumption is a copy of net-consumption
        for key, b in (("load", tot), ("net", net)):
            if b is not None and (r := _reading(b)) is not None:
                series[key].append(r)

    def split(pairs):
        return [p[0] for p in pairs], [p[1] for p in pairs]

    every = [p[0] for v in series.values() for p in v]
    ctx.see_window(every)
    frames = []
    if series["pv_eim"]:
        t, v = split(series["pv_eim"])
        frames.append(from_counter(ctx, "pv_kwh", _local_counter(t, v), LOCAL_S, 1e-3))
    elif series["pv_inv"]:
        t, v = split(series["pv_inv"])
        frames.append(from_counter(ctx, "pv_kwh", _local_counter(t, v, rollover_at=INVERTER_ROLLOVER_WH), LOCAL_S, 1e-3))
    twin_q = "suspect" if twin else None
    if series["load"]:
        t, v = split(series["load"])
        frames.append(_maybe_flag(from_counter(ctx, "load_kwh", _local_counter(t, v), LOCAL_S, 1e-3), twin_q))
    if series["net"]:
        t, v = split(series["net"])
        frames.append(_maybe_flag(from_counter(ctx, "grid_kwh", _local_counter(t, v, bidirectional=True), LOCAL_S, 1e-3), twin_q))
    return concat(frames)


def _maybe_flag(df: pd.DataFrame, quality: Optional[str]) -> pd.DataFrame:
    if quality:
        df.loc[df["quality"] != "missing", "quality"] = quality
    return df


def _is_meter_config(doc) -> bool:
    return isinstance(doc, list) and bool(doc) and all(
        isinstance(m, dict) and "measurementType" in m and "timestamp" not in m for m in doc
    )


def parse_ivp_meters_readings(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """/ivp/meters/readings poll log (with an /ivp/meters body) -> pv, grid, load, battery."""
    docs = load_json_docs(payload, ctx)
    config: Dict[int, str] = {}
    readings: List[dict] = []
    for doc in docs:
        if _is_meter_config(doc):
            config.update({int(m["eid"]): m["measurementType"] for m in doc if m.get("state") == "enabled"})
        elif isinstance(doc, list):
            readings.extend(doc)
        else:
            ctx.fail("expected a JSON list of meter readings or an /ivp/meters config list")
    if not config:
        ctx.fail("no /ivp/meters config in payload: cannot tell which eid is production, net or total")
    df = pd.DataFrame(
        {
            "eid": [int(r["eid"]) for r in readings],
            "t": floats(r.get("timestamp") for r in readings),
            "dlvd": floats(r["actEnergyDlvd"] for r in readings),
            "rcvd": floats(r["actEnergyRcvd"] for r in readings),
        }
    )
    df = df[df["eid"].isin(config) & (df["t"] > 0)]
    df["utc"] = timeutil.from_epoch_s(df["t"]) if len(df) else pd.DatetimeIndex([], tz="UTC")
    ctx.see_window(df["utc"])
    frames = []
    for eid, g in df.groupby("eid"):
        kind = config[eid]
        dl = _local_counter(g["utc"], g["dlvd"])
        if kind == "production":
            frames.append(from_counter(ctx, "pv_kwh", dl, LOCAL_S, 1e-3))
        elif kind == "total-consumption":
            frames.append(from_counter(ctx, "load_kwh", dl, LOCAL_S, 1e-3))
        elif kind in ("net-consumption", "storage"):
            net = combine_net(dl, _local_counter(g["utc"], g["rcvd"]))
            channel = "grid_kwh" if kind == "net-consumption" else "battery_kwh"
            frames.append(from_counter(ctx, channel, net, LOCAL_S, 1e-3))
    return concat(frames)


ENDPOINTS = {
    "production_micro": parse_production_micro,
    "production_meter": parse_production_meter,
    "consumption_meter": parse_consumption_meter,
    "battery": parse_battery,
    "production.json": parse_production_json,
    "ivp_meters_readings": parse_ivp_meters_readings,
}
