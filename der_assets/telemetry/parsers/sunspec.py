"""SunSpec Modbus snapshots (written by der_assets.connectors.sunspec). Every SunSpec quirk here.

Verification status: DOC-BASED on the SunSpec model definitions (models 1, 101-103, 124,
713, 802) and tested against the twin's pymodbus SunSpec server over loopback.

Payload: a poll log, one JSON document per poll (concatenated or NDJSON):

    {"format": "der_assets.sunspec_snapshot/1",
     "polled_at": "2026-07-15T12:05:00+00:00",      # our poll time, RFC 3339 with offset
     "unit_id": 1, "base_address": 40000,            # where "SunS" was found
     "models": [{"id": 103, "address": 40070, "length": 50,
                 "points": {"W": 4810.0, "WH": 45012345.0, "WH_SF": 0, "St": 4, ...},
                 "registers": [..raw 16-bit registers of the model body..]}, ...]}

`points` holds values with scale factors applied (raw x 10^SF) and not-implemented
sentinels as null; scale-factor points keep their integer exponent; models the connector
does not decode have "points": null. The raw registers are kept so a payload can be
re-decoded later.

Quirks handled here:
- SunSpec has no device time: `polled_at` (required, with offset) stamps each reading.
- pv_kwh from the inverter model (101/102/103) WH, a LIFETIME acc32 in Wh x 10^WH_SF:
  differenced through counters; it wraps at 2^32 x 10^WH_SF (unwrapped as a rollover).
  A null WH (the acc32 "0 = not implemented" sentinel, or a null WH_SF) is a missing reading.
- soc_pct from model 802 SoC, else 713 SoC, else 124 ChaState (% of AhrRtg), at interval end.
- Battery energy is NOT produced from the standard models: none of them has an energy counter,
  and the sign of 802 W is not verified here [A]. Instantaneous W is not integrated. A Generac
  PWRcell adds its vendor model 64259 with lifetime counters (parsers/generac.py): battery_kwh
  (DC discharge minus charge) and grid_kwh (import minus export) are differenced from those.
- A single snapshot yields no interval rows (not zeros).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..counters import combine_net, counter_to_intervals
from . import generac
from ._common import Ctx, concat, from_counter, load_json_docs, rows, soc_at_interval_end, to_float, to_int

FORMAT = "der_assets.sunspec_snapshot/1"
INTERVAL_S = 900
INVERTER_MODELS = (101, 102, 103)
#: sunssf scale factors range -10..10 (SunSpec Information Model Specification, "sunssf")
SF_RANGE = range(-10, 11)
SOC_POINTS = ((802, "SoC"), (713, "SoC"), (124, "ChaState"))


def _points(doc: dict, model_id: int):
    for m in doc["models"]:
        if to_int(m["id"], "model id") == model_id and m.get("points") is not None:
            if not isinstance(m["points"], dict):
                raise ValueError(f"model {model_id} points are not an object")
            return m["points"]
    return None


def parse_snapshot(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """A SunSpec poll log -> pv_kwh (WH counter) and soc_pct."""
    docs = load_json_docs(payload, ctx)
    recs = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            ctx.fail(f"not a SunSpec snapshot (format {doc.get('format') if isinstance(doc, dict) else None!r})")
        t = pd.Timestamp(doc["polled_at"])
        if t.tzinfo is None:
            ctx.fail(f"polled_at {doc['polled_at']!r} has no UTC offset")
        inv = next((p for p in (_points(doc, m) for m in INVERTER_MODELS) if p is not None), None)
        wh, wh_sf = (to_float(inv.get("WH")), inv.get("WH_SF")) if inv else (np.nan, None)
        if wh_sf is not None:
            wh_sf = to_int(wh_sf, "WH_SF")
            if wh_sf not in SF_RANGE:
                ctx.fail(f"WH_SF {wh_sf} is outside the SunSpec scale-factor range -10..10")
        soc = np.nan
        for model_id, name in SOC_POINTS:
            p = _points(doc, model_id)
            if p is not None and p.get(name) is not None:
                soc = to_float(p[name])
                break
        site = next((generac.counters_wh(m.get("registers")) for m in doc["models"]
                     if isinstance(m, dict) and m.get("id") == generac.MODEL_ID), None) or {}
        recs.append({"t": t.tz_convert("UTC"), "wh": wh, "wh_sf": wh_sf, "soc": soc,
                     **{k: site.get(k, np.nan) for k in generac.COUNTERS_WS}})
    df = pd.DataFrame(recs)
    ctx.see_window(df["t"])
    frames = []
    if df["wh"].notna().any():
        sfs = {int(s) for s in df["wh_sf"].dropna()}
        if len(sfs) > 1:
            ctx.fail(f"WH_SF changes within the payload ({sorted(sfs)}): counter scale is ambiguous")
        rollover = 2.0**32 * 10.0 ** (sfs.pop() if sfs else 0)
        c = counter_to_intervals(df["t"], df["wh"], interval_s=INTERVAL_S, max_gap_s=INTERVAL_S, rollover_at=rollover)
        frames.append(from_counter(ctx, "pv_kwh", c, INTERVAL_S, 1e-3))
    for channel, (plus, minus) in (("battery_kwh", ("bat_out", "bat_in")), ("grid_kwh", ("net_in", "net_out"))):
        if df[plus].notna().any() or df[minus].notna().any():
            a, b = (counter_to_intervals(df["t"], df[k], interval_s=INTERVAL_S, max_gap_s=INTERVAL_S) for k in (plus, minus))
            frames.append(from_counter(ctx, channel, combine_net(a, b), INTERVAL_S, 1e-3))
    if df["soc"].notna().any():
        s = soc_at_interval_end(df["t"], df["soc"], INTERVAL_S)
        frames.append(rows(ctx, "soc_pct", s["interval_start"], s["energy"], s["quality"], INTERVAL_S))
    return concat(frames)


ENDPOINTS = {"snapshot": parse_snapshot}
