"""A small synthetic settlement month: six sites in three resources, July 2026 AMI, three PJM events.

- AGG-A: sites S1-S3 (resource_id AGG-A), meters M1-M3.
- PJM-BGE: sites S4-S5 (blank resource_id, zone BGE: the `<ISO>-<zone>` rule), meters M4-M5.
- AGG-X: site S6, retired: a resource the registry knows with no site enrolled.
Loads are deterministic (seeded); during each event every site's battery takes 2 kW off its load.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

TZ = "America/New_York"
RATE = 3000.0  # $/MWh
METHOD = "pjm_same_day_3_2"
EVENTS = [("E1", "2026-07-14T18:00:00Z", "2026-07-14T20:00:00Z"),
          ("E2", "2026-07-21T19:00:00Z", "2026-07-21T21:00:00Z"),
          ("E3", "2026-07-28T17:00:00Z", "2026-07-28T19:00:00Z")]
SITES = [("S1", "M1", "AGG-A", "PSEG", "active"), ("S2", "M2", "AGG-A", "PSEG", "active"),
         ("S3", "M3", "AGG-A", "PSEG", "active"), ("S4", "M4", "", "BGE", "active"),
         ("S5", "M5", "", "BGE", "active"), ("S6", "M6", "AGG-X", "PSEG", "retired")]


def registry_frame() -> pd.DataFrame:
    rows = []
    for site, meter, resource, zone, status in SITES:
        rows.append({"subscriber_id": f"C-{site}", "site_id": site, "timezone": TZ, "iso": "PJM", "zone": zone,
                     "resource_id": resource, "interconnection_type": "nem", "export_allowed": "false",
                     "opt_out": "false", "site_status": status, "meter_id": meter, "meter_interval_min": "15",
                     "device_id": f"B-{site}", "device_type": "battery", "rated_kw": "5", "capacity_kwh": "13.5",
                     "device_status": "retired" if status == "retired" else "active"})
    return pd.DataFrame(rows)


def write_registry(path: Path) -> Path:
    registry_frame().to_csv(path, index=False, lineterminator="\n")
    return path


def events_json() -> list[dict]:
    days = [start[:10] for _, start, _ in EVENTS]
    return [{"event_id": eid, "iso": "PJM", "start": start, "end": end, "timezone": TZ,
             "notified_at": start[:11] + "12:00:00Z", "other_event_days": [d for d in days if d != start[:10]],
             "rate_usd_per_mwh": RATE, "method": METHOD} for eid, start, end in EVENTS]


def write_events(path: Path) -> Path:
    path.write_text(json.dumps(events_json(), indent=1))
    return path


def meter_frame(seed: int = 3) -> pd.DataFrame:
    """15-minute AMI for M1-M5, July 2026 UTC; kWh per interval, + import."""
    rng = np.random.default_rng(seed)
    starts = pd.date_range("2026-07-01", "2026-08-01", freq="15min", inclusive="left", tz="UTC")
    hour = (starts.hour + starts.minute / 60.0 - 4) % 24  # local (EDT) hour of day
    frames = []
    for i, meter in enumerate(["M1", "M2", "M3", "M4", "M5"]):
        kw = 1.2 + 0.3 * i + 1.5 * np.clip(np.sin((hour - 8) / 24 * 2 * np.pi), 0, None) + rng.normal(0, 0.15, len(starts))
        for _, start, end in EVENTS:
            kw = np.where((starts >= pd.Timestamp(start)) & (starts < pd.Timestamp(end)), kw - 2.0, kw)
        frames.append(pd.DataFrame({"meter_id": meter, "interval_start": starts, "interval_s": 900,
                                    "grid_kwh": np.round(kw * 0.25, 4)}))
    return pd.concat(frames, ignore_index=True)


def write_meter(frame: pd.DataFrame, path: Path) -> Path:
    out = frame.copy()
    out["interval_start"] = out["interval_start"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, na_rep="", lineterminator="\n")
    return path


STATEMENT_COLUMNS = ["statement_id", "iso", "resource_id", "event_id", "interval_start", "interval_s", "iso_baseline_kw",
                     "iso_load_kw", "iso_reduction_kwh", "rate_usd_per_mwh", "amount_usd"]


def write_statement(lines: pd.DataFrame, path: Path) -> Path:
    out = lines[STATEMENT_COLUMNS].copy()
    out["interval_start"] = pd.to_datetime(out["interval_start"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, lineterminator="\n", float_format="%.6f")
    return path
