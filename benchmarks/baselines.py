"""Benchmark: ISO baselines for a month of 15-minute AMI, 10,000 meters, ten events.

Target (issue 10): all ten events' baselines in at most 5x one pandas groupby pass over the same
rows. Run: .venv/bin/python benchmarks/baselines.py [n_meters] [method]
"""

from __future__ import annotations

import resource
import sys
import time

import numpy as np
import pandas as pd

from der_assets.settlement.baselines import compute_baseline, prepare_meter
from der_assets.settlement.events import Event


def month_of_ami(n_meters: int, seed: int = 0) -> pd.DataFrame:
    starts = pd.date_range("2026-07-01T04:00Z", "2026-08-01T04:00Z", freq="15min", inclusive="left")
    rng = np.random.default_rng(seed)
    hour = starts.tz_convert("America/New_York").hour.to_numpy()
    shape = 0.3 + 0.4 * np.exp(-((hour - 17) / 3.0) ** 2)
    kwh = (shape[None, :] * rng.uniform(0.5, 1.5, (n_meters, 1)) + rng.normal(0, 0.05, (n_meters, len(starts))))
    ids = np.array([f"M{i:05d}" for i in range(n_meters)], dtype=object)
    return pd.DataFrame({"meter_id": np.repeat(ids, len(starts)),
                         "interval_start": np.tile(starts, n_meters),
                         "interval_s": np.int64(900), "grid_kwh": kwh.reshape(-1)})


def events() -> list[Event]:
    days = [d for d in pd.date_range("2026-07-20", "2026-07-31") if d.weekday() < 5][:10]
    return [Event(f"E{i}", "PJM", pd.Timestamp(f"{d.date()}T18:00Z"), pd.Timestamp(f"{d.date()}T22:00Z"),
                  "America/New_York", plc_kw=3.0, loss_factor=1.05,
                  other_event_days=tuple(x.date() for x in days if x != d)) for i, d in enumerate(days)]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    methods = sys.argv[2:] or ["pjm_high_4_of_5"]
    meter = month_of_ami(n)
    print(f"{len(meter):,} rows, {n:,} meters")
    for method in methods:
        t = time.perf_counter()
        meter.groupby("meter_id")["grid_kwh"].sum()  # timed next to each run: a shared machine's load drifts
        groupby_s = time.perf_counter() - t
        t = time.perf_counter()
        mx = prepare_meter(meter)
        prep_s = time.perf_counter() - t
        rows = 0
        for e in events():
            rows += len(compute_baseline(method, mx, e).frame)
        total_s = time.perf_counter() - t
        print(f"{method}: prepare {prep_s:.2f} s, ten events {total_s - prep_s:.2f} s, total {total_s:.2f} s "
              f"= {total_s / groupby_s:.1f}x one groupby pass of {groupby_s:.2f} s ({rows:,} output rows)")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB")


if __name__ == "__main__":
    main()
