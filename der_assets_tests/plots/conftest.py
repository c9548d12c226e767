"""A hand-made canonical fleet day: every value is chosen so the fleet kW can be checked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry.schema import CANONICAL_COLUMNS, validate


def fleet_rows(start: str, hours: float = 24, *, sites: int = 3, interval_s: int = 900) -> pd.DataFrame:
    """Canonical rows for `sites` sites from `start` (UTC) for `hours`.

    Site k (k = 1..sites) has PV at k kW, load at 2 kW, its battery discharging 0.5 kW with SoC 40 + 10 (k mod 5) %,
    and grid = load - pv - battery. Each value is energy per interval (kW x interval hours).
    """
    grid = pd.date_range(pd.Timestamp(start, tz="UTC"), periods=int(hours * 3600 // interval_s),
                         freq=pd.Timedelta(seconds=interval_s))
    h = interval_s / 3600
    frames = []
    for k in range(1, sites + 1):
        site = f"S{k}"
        kw = {("pv_kwh", f"{site}-PV"): k, ("battery_kwh", f"{site}-BAT"): 0.5, ("load_kwh", site): 2.0,
              ("grid_kwh", site): 2.0 - k - 0.5}
        for (channel, device), p in kw.items():
            frames.append(pd.DataFrame({"site_id": site, "device_id": device, "channel": channel,
                                        "interval_start": grid, "value": p * h}))
        frames.append(pd.DataFrame({"site_id": site, "device_id": f"{site}-BAT", "channel": "soc_pct",
                                    "interval_start": grid, "value": 40.0 + 10 * (k % 5)}))
    rows = pd.concat(frames, ignore_index=True)
    rows["source"] = "simulator"
    rows["interval_s"] = np.int64(interval_s)
    rows["quality"] = "measured"
    rows["received_at"] = rows["interval_start"] + pd.Timedelta(minutes=20)
    rows["revision"] = np.int64(0)
    return validate(rows[CANONICAL_COLUMNS])


@pytest.fixture
def day_rows() -> pd.DataFrame:
    return fleet_rows("2026-06-01")
