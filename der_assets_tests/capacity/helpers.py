"""Small hand-made fleets for the capacity tests: a registry frame and canonical rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.registry.columns import COLUMN_NAMES


def site(site_id: str, *, tz: str = "America/New_York", rated_kw: float = 10.0, capacity_kwh: float = 20.0,
         reserve_pct: float = 20.0, export: bool = True, opt_out: bool = False, status: str = "active",
         zone: str = "PECO", pv: bool = True, max_events: float | None = 10, max_hours: float | None = 4.0,
         resource_id: str = "", iso: str = "PJM") -> list[dict]:
    base = dict(subscriber_id="U" + site_id, site_id=site_id, timezone=tz, iso=iso, zone=zone, resource_id=resource_id,
                interconnection_type="nem", export_allowed=export, reserve_floor_pct=reserve_pct,
                max_events_per_month=max_events, max_event_hours=max_hours, opt_out=opt_out, site_status=status)
    rows = [dict(base, device_id=site_id + "-B", device_type="battery", rated_kw=rated_kw, capacity_kwh=capacity_kwh,
                 device_status="active")]
    if pv:
        rows.append(dict(base, device_id=site_id + "-P", device_type="pv_inverter", rated_kw=7.6, device_status="active"))
    return rows


def registry(*sites: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([r for s in sites for r in s]).reindex(columns=list(COLUMN_NAMES))


def rows(site_id: str, channel: str, starts, values, *, device: str | None = None, interval_s: int = 900,
         quality: str = "measured", revision: int = 0) -> pd.DataFrame:
    starts = pd.DatetimeIndex(pd.to_datetime(list(starts), utc=True))
    values = np.broadcast_to(np.asarray(values, dtype=float), (len(starts),))
    q = np.where(np.isnan(values), "missing", quality)
    return pd.DataFrame({"site_id": site_id, "device_id": device or f"{site_id}-B", "source": "simulator",
                         "channel": channel, "interval_start": starts, "interval_s": interval_s, "value": values,
                         "quality": q, "received_at": pd.Timestamp("2026-09-01", tz="UTC"), "revision": revision})


def soc_at(site_id: str, window_start_utc: str, soc_pct: float, **kw) -> pd.DataFrame:
    """The soc_pct row of the interval that ends at window start (interval-beginning 15 min earlier)."""
    start = pd.Timestamp(window_start_utc) - pd.Timedelta(seconds=kw.get("interval_s", 900))
    return rows(site_id, "soc_pct", [start], [soc_pct], **kw)


def window(site_id: str, window_start_utc: str, channel: str, values, device: str | None = None) -> pd.DataFrame:
    starts = pd.Timestamp(window_start_utc) + pd.to_timedelta(np.arange(len(values)) * 900, unit="s")
    return rows(site_id, channel, starts, values, device=device)
