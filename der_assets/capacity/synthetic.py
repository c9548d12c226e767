"""A synthetic mixed fleet (registry + canonical telemetry) for tests and benchmarks/capacity.py.

Vectorized and compact: site_id/device_id/channel/quality are categoricals, values float32,
so a summer of 15-minute history for 10,000 sites fits in memory.
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


def synthetic_telemetry(registry: pd.DataFrame, start: dt.date, n_days: int, *, seed: int = 0,
                        silent_share: float = 0.03) -> pd.DataFrame:
    """15-minute soc_pct for every battery; load_kwh and pv_kwh for non-export sites; some batteries silent."""
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
    chan = pd.CategoricalDtype(CHANNELS)
    qual = pd.CategoricalDtype(QUALITIES)
    # SoC: a daily cycle (charged by midday PV, drawn down in the evening) plus a site-day level
    level = rng.uniform(-35, 25, size=(n, n_days)).astype(np.float32)
    shape = (55 + 35 * np.sin((hour_utc - 13) / 24 * 2 * np.pi)).astype(np.float32)
    silent = rng.random(n) < silent_share

    def frame(site_codes, dev_codes, channel, values, missing):
        m = len(values)
        q = np.where(missing, np.int8(QUALITIES.index("missing")), np.int8(QUALITIES.index("measured")))
        return pd.DataFrame({
            "site_id": pd.Categorical.from_codes(site_codes, dtype=pd.CategoricalDtype(site_cats)),
            "device_id": pd.Categorical.from_codes(dev_codes, dtype=pd.CategoricalDtype(dev_cats)),
            "channel": pd.Categorical.from_codes(np.full(m, CHANNELS.index(channel), np.int8), dtype=chan),
            "interval_start": pd.DatetimeIndex(np.tile(times, m // n_t).view("datetime64[ns]")).tz_localize("UTC"),
            "interval_s": np.full(m, 900, dtype=np.int16),
            "value": np.where(missing, np.float32(np.nan), values).astype(np.float32),
            "quality": pd.Categorical.from_codes(q, dtype=qual),
        }, copy=False)

    s_codes = site_cats.get_indexer(bat["site_id"]).astype(np.int16)
    d_codes = dev_cats.get_indexer(bat["device_id"]).astype(np.int16)
    soc = np.clip(shape[None, :] + np.repeat(level, per_day, axis=1), 0, 100).astype(np.float32).ravel()
    frames = [frame(np.repeat(s_codes, n_t), np.repeat(d_codes, n_t), "soc_pct", soc, np.repeat(silent, n_t))]
    del soc
    ne = np.flatnonzero(~bat["export_allowed"].to_numpy(dtype=bool))
    if ne.size:
        m = ne.size
        load = rng.gamma(2.0, 0.25, size=m * n_t).astype(np.float32)
        pvshape = np.clip(np.sin((hour_utc - 11) / 14 * np.pi), 0, None).astype(np.float32)
        pv = (np.tile(pvshape, m) * rng.uniform(0.8, 1.9, size=m * n_t).astype(np.float32))
        no = np.zeros(m * n_t, dtype=bool)
        frames.append(frame(np.repeat(s_codes[ne], n_t), np.repeat(d_codes[ne], n_t), "load_kwh", load, no))
        frames.append(frame(np.repeat(s_codes[ne], n_t), np.repeat(d_codes[ne], n_t), "pv_kwh", pv, no))
    return pd.concat(frames, ignore_index=True, copy=False) if len(frames) > 1 else frames[0]
