"""A synthetic mixed fleet (registry + canonical telemetry) for tests and benchmarks/capacity.py.

Vectorized and compact: site_id/device_id/channel/quality are categoricals (int16/int8 codes),
values float32, interval_start int64 ns viewed as UTC without a copy, about 20 bytes a row; each
column is allocated once at full length, so a summer of 15-minute history for 10,000 sites is the
frame's own 2.6 GiB at peak.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from der_assets.telemetry.schema import CHANNELS, QUALITIES

_TZS = ("America/New_York", "America/Chicago")


def synthetic_registry(n_sites: int, *, seed: int = 0, non_export_share: float = 0.2, opt_out_share: float = 0.05,
                       iso: str = "PJM") -> pd.DataFrame:
    """One battery and one PV inverter per site; a share of non-export and opted-out sites."""
    rng = np.random.default_rng(seed)
    site = np.array([f"S{i:05d}" for i in range(n_sites)], dtype=object)
    big = rng.random(n_sites) < 0.5
    base = pd.DataFrame({
        "subscriber_id": "U" + pd.Series(site).str[1:], "site_id": site,
        "timezone": np.array(_TZS, dtype=object)[rng.integers(0, len(_TZS), n_sites)],
        "iso": iso, "zone": np.where(rng.random(n_sites) < 0.5, "PECO", "COMED"), "resource_id": "",
        "interconnection_type": "nem",
        "export_allowed": rng.random(n_sites) >= non_export_share,
        "reserve_floor_pct": np.where(rng.random(n_sites) < 0.5, 20.0, 30.0),
        "max_events_per_month": 10, "max_event_hours": 4.0,
        "opt_out": rng.random(n_sites) < opt_out_share, "site_status": "active",
    })
    bat = base.assign(device_id=site + "-B", device_type="battery", rated_kw=np.where(big, 10.0, 5.0),
                      capacity_kwh=np.where(big, 20.0, 13.5), device_status="active")
    pv = base.assign(device_id=site + "-P", device_type="pv_inverter", rated_kw=7.6, capacity_kwh=np.nan,
                     device_status="active")
    from der_assets.registry.columns import COLUMN_NAMES

    out = pd.concat([bat, pv], ignore_index=True).sort_values(["site_id", "device_id"]).reset_index(drop=True)
    return out.reindex(columns=list(COLUMN_NAMES))


def utc_from_ns(ns: np.ndarray) -> pd.arrays.DatetimeArray:
    """int64 epoch ns as a datetime64[ns, UTC] array over the same memory (no tz_localize copy).

    Falls back to tz_localize (one copy) if this pandas has no zero-copy constructor.
    """
    ns = np.ascontiguousarray(ns, dtype=np.int64)
    dtype = pd.DatetimeTZDtype("ns", "UTC")
    try:
        out = pd.arrays.DatetimeArray._simple_new(ns.view("datetime64[ns]"), dtype=dtype)
        if np.shares_memory(out.asi8, ns):
            return out
    except (AttributeError, TypeError):  # pragma: no cover - a pandas without _simple_new
        pass
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC").array  # pragma: no cover


def synthetic_telemetry(registry: pd.DataFrame, start: dt.date, n_days: int, *, seed: int = 0,
                        silent_share: float = 0.03) -> pd.DataFrame:
    """15-minute soc_pct for every battery; load_kwh and pv_kwh for non-export sites; some batteries silent.

    Rows: every battery's soc_pct series, then the non-export sites' load_kwh series, then their
    pv_kwh series, each series covering the same n_days * 96 intervals. Every column is allocated
    once at full length and filled in place, so the peak is the frame itself.
    """
    rng = np.random.default_rng(seed)
    bat = registry[registry["device_type"] == "battery"].reset_index(drop=True)
    n = len(bat)
    per_day = 96
    n_t = n_days * per_day
    t0 = np.datetime64(start.isoformat(), "ns").astype(np.int64)
    times = t0 + np.arange(n_t, dtype=np.int64) * 900 * 10**9
    hour_utc = (np.arange(n_t) % per_day) / 4.0
    site_cats = pd.Index(registry["site_id"].unique())
    dev_cats = pd.Index(registry["device_id"].unique())
    # SoC: a daily cycle (charged by midday PV, drawn down in the evening) plus a site-day level
    level = rng.uniform(-35, 25, size=(n, n_days)).astype(np.float32)
    shape = (55 + 35 * np.sin((hour_utc - 13) / 24 * 2 * np.pi)).astype(np.float32)
    silent = rng.random(n) < silent_share
    s_codes = site_cats.get_indexer(bat["site_id"]).astype(np.int16)
    d_codes = dev_cats.get_indexer(bat["device_id"]).astype(np.int16)
    ne = np.flatnonzero(~bat["export_allowed"].to_numpy(dtype=bool))
    m = ne.size
    series = np.concatenate([np.arange(n), ne, ne])  # battery row of each series
    n_series = series.size
    total = n_series * n_t

    def per_series(values: np.ndarray, dtype) -> np.ndarray:
        out = np.empty(total, dtype=dtype)
        out.reshape(n_series, n_t)[:] = values.astype(dtype)[:, None]
        return out

    ch = np.empty(n_series, dtype=np.int8)
    ch[:n], ch[n:n + m], ch[n + m:] = (CHANNELS.index(c) for c in ("soc_pct", "load_kwh", "pv_kwh"))
    ts = np.empty(total, dtype=np.int64)
    ts.reshape(n_series, n_t)[:] = times
    value = np.empty(total, dtype=np.float32)
    soc = value[: n * n_t].reshape(n, n_days, per_day)
    soc[:] = shape.reshape(n_days, per_day)[None]
    soc += level[:, :, None]
    np.clip(soc, 0, 100, out=soc)
    soc.reshape(n, n_t)[silent] = np.nan
    q = np.full(total, QUALITIES.index("measured"), dtype=np.int8)
    q[: n * n_t].reshape(n, n_t)[silent] = QUALITIES.index("missing")
    if m:
        value[n * n_t: (n + m) * n_t] = rng.gamma(2.0, 0.25, size=m * n_t).astype(np.float32)
        pvshape = np.clip(np.sin((hour_utc - 11) / 14 * np.pi), 0, None).astype(np.float32)
        pv = value[(n + m) * n_t:].reshape(m, n_t)
        pv[:] = rng.uniform(0.8, 1.9, size=m * n_t).astype(np.float32).reshape(m, n_t)
        pv *= pvshape
    return pd.DataFrame({
        "site_id": pd.Categorical.from_codes(per_series(s_codes[series], np.int16),
                                             dtype=pd.CategoricalDtype(site_cats)),
        "device_id": pd.Categorical.from_codes(per_series(d_codes[series], np.int16),
                                               dtype=pd.CategoricalDtype(dev_cats)),
        "channel": pd.Categorical.from_codes(per_series(ch, np.int8), dtype=pd.CategoricalDtype(CHANNELS)),
        "interval_start": utc_from_ns(ts),
        "interval_s": np.full(total, 900, dtype=np.int16),
        "value": value,
        "quality": pd.Categorical.from_codes(q, dtype=pd.CategoricalDtype(QUALITIES)),
    }, copy=False)
