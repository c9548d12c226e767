"""SMA ennexOS / Sunny Portal monitoring API (cloud JSON). Every SMA quirk lives in this file.

Verification status: DOC-BASED. The SolarNetwork ennexOS captures are GPL and were held out
of shared/fixtures, so this follows reference/vendor-formats.md §3 and is tested on payloads
written to that shape: {plant{plantId,name,timezone}, device{deviceId,name,timezone},
setType, resolution, set:[{time, pvGeneration, ...}]}.

Quirks handled here:
- Endpoint /v1/devices/{id}/measurements/sets/{set}/{period}; only setType EnergyAndPowerPv
  with ReturnEnergyValues=true is read: pvGeneration is Wh per interval -> pv_kwh. A set
  without pvGeneration (energy values not requested) is a ParseError, not zeros; other set
  types are a ParseError (their fields are not documented here).
- `time` is site-LOCAL without offset; plant.timezone (or device.timezone) names the zone and
  must agree with the site tz passed in.
- `time` labels the END of each interval: a Day answer runs from 00:05 to the next day's 00:00
  (SolarNetwork's SMA client, solarnetwork-central SmaCloudDatumStreamService: "SMA data is
  queried by day, and the first data starts at 00:05 and ends at next day at 00:00"; real
  captures reviewed for issue 12 agree). interval_start = label (placed in UTC) - resolution,
  so the 24:00 label is the last interval of its own day, and a DST day of 5-minute steps has
  276 or 300 labels from 00:05 to 24:00 local.
- resolution FiveMinutes / FifteenMinutes / OneHour -> 300 / 900 / 3600 s; others refused.
- DST: a repeated fall-back label listed twice is placed by order (first = DST); listed once
  it is kept on the first pass and flagged 'suspect' (SMA's behaviour is undocumented).
  Null/zero values at nonexistent spring-forward labels are dropped; non-zero is a ParseError.
- The first 5-min reading after a device comes online can be absurd (1,024,843 Wh where
  <= 640 Wh is possible, SolarNetwork's note again): values far above the payload's own 90th
  percentile, or above what the inverter's nameplate (Ctx.nameplate_kw, the registry's
  rated_kw) can make in the interval, are kept and flagged 'suspect'. The nameplate check is
  what catches it in a short morning payload.
- null pvGeneration -> missing row, never 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import timeutil
from ._common import Ctx, floats, load_json, over_nameplate, rows, spike_mask

RESOLUTION_S = {"FiveMinutes": 300, "FifteenMinutes": 900, "OneHour": 3600}
LABEL_FMT = "%Y-%m-%dT%H:%M:%S"


def parse_measurements(payload: bytes, ctx: Ctx) -> pd.DataFrame:
    """measurements/sets/EnergyAndPowerPv/{period}?ReturnEnergyValues=true -> pv_kwh."""
    doc = load_json(payload, ctx)
    set_type = doc.get("setType")
    if set_type != "EnergyAndPowerPv":
        ctx.fail(f"setType {set_type!r} not supported (need EnergyAndPowerPv)")
    res = doc.get("resolution")
    if res not in RESOLUTION_S:
        ctx.fail(f"resolution {res!r} is not interval data (need one of {sorted(RESOLUTION_S)})")
    interval_s = RESOLUTION_S[res]
    payload_tz = (doc.get("plant") or {}).get("timezone") or (doc.get("device") or {}).get("timezone")
    tz = ctx.need_tz(payload_tz)
    entries = doc["set"]
    if entries and not any("pvGeneration" in e for e in entries):
        ctx.fail("set has no pvGeneration energy values (request with ReturnEnergyValues=true)")
    naive = timeutil.parse_naive([e["time"] for e in entries], LABEL_FMT)
    wh = floats(e.get("pvGeneration") for e in entries)
    loc = timeutil.localize_labels(naive, tz)
    ctx.see_window(loc["utc"])
    status = loc["status"].to_numpy()
    nonexist = status == timeutil.NONEXISTENT
    if (nonexist & np.isfinite(wh) & (wh != 0)).any():
        ctx.fail(f"non-zero pvGeneration at nonexistent local time ({tz})")
    keep = ~nonexist
    kwh = wh / 1000.0
    spikes = spike_mask(wh) | over_nameplate(kwh, interval_s, ctx.nameplate_kw)
    quality = np.where((status == timeutil.FOLD_UNKNOWN) | spikes, "suspect", "measured")[keep]
    start = timeutil.interval_start_from_end(loc["utc"][keep], interval_s)  # labels are interval END
    return rows(ctx, "pv_kwh", start, kwh[keep], quality, interval_s)


ENDPOINTS = {"measurements": parse_measurements}
