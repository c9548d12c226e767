"""Small hand-made fleets for the simulator tests (the registry's demo fleet is not used here)."""

from __future__ import annotations

import numpy as np
import pandas as pd

PHILADELPHIA = (39.95, -75.16, "America/New_York")
CHICAGO = (41.88, -87.63, "America/Chicago")


def site_row(site_id: str, where=PHILADELPHIA, **overrides) -> dict:
    lat, lon, tz = where
    row = {
        "site_id": site_id,
        "latitude": lat,
        "longitude": lon,
        "timezone": tz,
        "pv_dc_kw": 7.0,
        "pv_ac_kw": 7.6,
        "tilt_deg": 30.0,
        "azimuth_deg": 180.0,
        "battery_kwh": 13.5,
        "battery_kw": 5.0,
        "battery_efficiency": 0.9,
        "reserve_floor_pct": 20.0,
        "export_allowed": True,
    }
    row.update(overrides)
    return row


def mixed_frame(n: int, seed: int = 0) -> pd.DataFrame:
    """n sites split between Philadelphia and Chicago with jittered location, array and battery."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        where = PHILADELPHIA if i % 2 == 0 else CHICAGO
        lat, lon, tz = where
        rows.append(
            site_row(
                f"T{i:04d}",
                (lat + rng.normal(0, 0.1), lon + rng.normal(0, 0.1), tz),
                pv_dc_kw=float(rng.uniform(3, 12)),
                pv_ac_kw=float(rng.uniform(3, 10)),
                tilt_deg=float(rng.uniform(5, 45)),
                azimuth_deg=float(rng.uniform(90, 270)),
                battery_kwh=float(rng.choice([0.0, 10.0, 13.5, 20.0])),
                battery_kw=float(rng.choice([3.8, 5.0, 7.6])),
                export_allowed=bool(rng.random() < 0.5),
            )
        )
    return pd.DataFrame(rows)
