"""Capacity estimate for a mixed fleet vs one pandas groupby-quantile pass over the same rows.

10,000 sites, one summer (June-September, 122 days) of 15-minute history: soc_pct for every
battery (3 % silent, as missing rows), load_kwh and pv_kwh for the 10 % of sites that are
non-export, 5 % opted out. Rows are built as numpy arrays with categorical keys. Both timings
are best of 3 in this process; peak RSS is read after the estimator runs (before the
baseline, whose own groupby temporaries are reported separately). One JSON object on stdout.

    python benchmarks/capacity.py            # full size
    python benchmarks/capacity.py --quick    # 500 sites, 30 days
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import time

import numpy as np
import pandas as pd

from der_assets.capacity import EstimateParams, estimate_capacity
from der_assets.capacity.synthetic import synthetic_registry
from der_assets.telemetry.schema import CHANNELS, QUALITIES


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def telemetry(reg: pd.DataFrame, start: dt.date, n_days: int, seed: int = 1) -> pd.DataFrame:
    """Built column by column, so the peak is the frame plus one column, not two frames."""
    rng = np.random.default_rng(seed)
    bat = reg[reg["device_type"] == "battery"].reset_index(drop=True)
    n, n_t = len(bat), n_days * 96
    t0 = np.datetime64(start.isoformat(), "ns").astype(np.int64)
    times = t0 + np.arange(n_t, dtype=np.int64) * 900 * 10**9
    hour = (np.arange(n_t) % 96) / 4.0
    site_cats = pd.Index(reg["site_id"].unique())
    dev_cats = pd.Index(reg["device_id"].unique())
    s_codes = site_cats.get_indexer(bat["site_id"]).astype(np.int16)
    d_codes = dev_cats.get_indexer(bat["device_id"]).astype(np.int16)
    ne = np.flatnonzero(~bat["export_allowed"].to_numpy(dtype=bool))
    silent = rng.random(n) < 0.03
    m = ne.size
    total = n * n_t + 2 * m * n_t

    def keyed(codes):
        return np.concatenate([np.repeat(codes, n_t), np.repeat(codes[ne], n_t), np.repeat(codes[ne], n_t)])

    cols = {}
    cols["site_id"] = pd.Categorical.from_codes(keyed(s_codes), dtype=pd.CategoricalDtype(site_cats))
    cols["device_id"] = pd.Categorical.from_codes(keyed(d_codes), dtype=pd.CategoricalDtype(dev_cats))
    ch = np.empty(total, dtype=np.int8)
    ch[: n * n_t] = CHANNELS.index("soc_pct")
    ch[n * n_t: n * n_t + m * n_t] = CHANNELS.index("load_kwh")
    ch[n * n_t + m * n_t:] = CHANNELS.index("pv_kwh")
    cols["channel"] = pd.Categorical.from_codes(ch, dtype=pd.CategoricalDtype(CHANNELS))
    ts = np.empty(total, dtype=np.int64)
    ts.reshape(-1, n_t)[:] = times  # every series covers the same intervals
    cols["interval_start"] = pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC")
    del ts
    cols["interval_s"] = np.full(total, 900, dtype=np.int16)
    value = np.empty(total, dtype=np.float32)
    soc = value[: n * n_t].reshape(n, n_t)
    soc[:] = 55 + 35 * np.sin((hour - 13) / 24 * 2 * np.pi)
    soc += np.repeat(rng.uniform(-35, 25, size=(n, n_days)).astype(np.float32), 96, axis=1)
    np.clip(soc, 0, 100, out=soc)
    soc[silent] = np.nan
    value[n * n_t: n * n_t + m * n_t] = rng.gamma(2.0, 0.25, size=m * n_t)
    pv = value[n * n_t + m * n_t:].reshape(m, n_t)
    pv[:] = np.clip(np.sin((hour - 11) / 14 * np.pi), 0, None) * 1.4
    cols["value"] = value
    q = np.full(total, QUALITIES.index("measured"), dtype=np.int8)
    q[: n * n_t].reshape(n, n_t)[silent] = QUALITIES.index("missing")
    cols["quality"] = pd.Categorical.from_codes(q, dtype=pd.CategoricalDtype(QUALITIES))
    return pd.DataFrame(cols, copy=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sites", type=int, default=None)
    ap.add_argument("--days", type=int, default=None)
    args = ap.parse_args()
    n_sites = args.sites or (500 if args.quick else 10_000)
    n_days = args.days or (30 if args.quick else 122)
    reg = synthetic_registry(n_sites, seed=0, non_export_share=0.10, opt_out_share=0.05)
    t = time.perf_counter()
    tel = telemetry(reg, dt.date(2026, 6, 1), n_days)
    gen_s = time.perf_counter() - t
    rss_data = rss_gb()
    params = EstimateParams("pjm", "2027/2028", "demand_resource", bootstrap_samples=1000)
    est_times = []
    for _ in range(3):
        t = time.perf_counter()
        est = estimate_capacity(reg, tel, params)
        est_times.append(time.perf_counter() - t)
    rss_est = rss_gb()
    base_times = []
    for _ in range(3):
        t = time.perf_counter()
        tel.groupby("site_id", observed=True)["value"].quantile(0.1)
        base_times.append(time.perf_counter() - t)
    s = est.summary
    out = {
        "benchmark": "capacity",
        "sites": n_sites, "days": n_days, "rows": int(len(tel)),
        "rows_soc": int(n_sites * n_days * 96), "sample_days": s["n_days"],
        "generate_s": round(gen_s, 2),
        "estimate_s": round(min(est_times), 2), "baseline_groupby_quantile_s": round(min(base_times), 2),
        "ratio": round(min(est_times) / min(base_times), 2), "ratio_target": 5,
        "peak_rss_after_data_gb": round(rss_data, 2),
        "peak_rss_estimator_gb": round(rss_est, 2), "peak_rss_total_gb": round(rss_gb(), 2), "rss_target_gb": 4,
        "deliverable_p50_kw": s["deliverable_p50_kw"], "deliverable_p90_kw": s["deliverable_p90_kw"],
        "nameplate_kw": s["nameplate_kw"], "unavailable_site_days": s["unavailable_site_days"],
        "reasons": est.sites["reason"].value_counts().to_dict(),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
