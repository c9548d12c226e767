"""The optimizer's inputs from what the platform knows: the registry, the latest SoC, history.

- `fleet_from_registry`: one row per battery in the fleet.csv contract, with the program
  agreement from the registry. A battery whose SoC is unknown (no telemetry in the last
  `soc_max_age`) is planned at its reserve floor, so it is never asked for energy nobody has
  seen; the caller gets its id in the warnings.
- `forecast_from_history`: per site and interval, load and PV as the mean of the same UTC time
  of day over the history given (typically the last 7 days of interval_telemetry). A site with
  no history is named in the warnings and forecast on the safe side of each use: load 0 during
  the event (a non-export site is then never planned to discharge past a load nobody has
  seen) and load equal to its PLC after it (the subscriber's own need is protected).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.registry.resources import site_resource

DEFAULT_EFFICIENCY = 0.9  # round trip, when the registry does not say


def fleet_from_registry(
    registry: pd.DataFrame,
    latest_soc_pct: pd.Series,
    *,
    events_this_month: pd.Series | None = None,
    resource_id: str | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """fleet.csv rows for every active battery; `latest_soc_pct` is indexed by battery device_id.

    With `resource_id`, only the batteries of sites enrolled in that resource (registry/resources.py).
    """
    warnings: list[str] = []
    b = registry[(registry["device_type"] == "battery") & (registry["device_status"] == "active")].copy()
    if resource_id is not None:
        b = b[site_resource(b) == resource_id]
        if b.empty:
            return pd.DataFrame(), [f"no active battery is enrolled in resource {resource_id!r}"]
    if b.empty:
        return pd.DataFrame(), ["the registry has no active battery"]
    capacity = b["capacity_kwh"].astype(float)
    reserve = capacity * b["reserve_floor_pct"].fillna(0.0).astype(float) / 100.0
    soc_pct = b["device_id"].map(latest_soc_pct)
    unknown = b.loc[soc_pct.isna(), "device_id"].tolist()
    if unknown:
        warnings.append(f"{len(unknown)} batteries have no recent SoC and are planned at their reserve: "
                        + ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""))
    soc_kwh = (capacity * soc_pct / 100.0).where(soc_pct.notna(), reserve).clip(lower=0.0, upper=capacity)
    fleet = pd.DataFrame({
        "battery_id": b["device_id"].to_numpy(),
        "site_id": b["site_id"].to_numpy(),
        "capacity_kwh": capacity.to_numpy(),
        "soc_kwh": soc_kwh.to_numpy(),
        "reserve_kwh": reserve.to_numpy(),
        "max_discharge_kw": b["rated_kw"].astype(float).to_numpy(),
        "max_charge_kw": b["rated_kw"].astype(float).to_numpy(),
        "efficiency": DEFAULT_EFFICIENCY,
        "export_allowed": b["export_allowed"].astype(bool).to_numpy(),
        "available": ((b["site_status"] == "active") & ~b["opt_out"].astype(bool)).to_numpy(),
        "events_this_month": (b["site_id"].map(events_this_month).fillna(0).astype(int).to_numpy()
                              if events_this_month is not None else 0),
        "max_events_per_month": b["max_events_per_month"].to_numpy(),
        "max_event_hours": b["max_event_hours"].to_numpy(),
    })
    if resource_id is not None:
        fleet["resource_id"] = resource_id
    return fleet, warnings


def _site_energy(history: pd.DataFrame) -> pd.DataFrame:
    """Per site and interval: pv_kwh and load_kwh (from load, or from the site balance)."""
    h = history[history["value"].notna()]
    wide = h.pivot_table(index=["site_id", "interval_start", "interval_s"], columns="channel", values="value",
                         aggfunc="sum").reset_index()
    for channel in ("pv_kwh", "load_kwh", "grid_kwh", "battery_kwh"):
        if channel not in wide:
            wide[channel] = np.nan
    balance = wide["grid_kwh"] + wide["pv_kwh"].fillna(0) + wide["battery_kwh"].fillna(0)
    wide["load_kwh"] = wide["load_kwh"].fillna(balance)
    return wide


def forecast_from_history(
    history: pd.DataFrame,
    registry: pd.DataFrame,
    interval_start: pd.DatetimeIndex,
    event_end: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, list[str]]:
    """forecast.csv rows (site_id, interval_start, load_kw, pv_kw) for every battery site."""
    sites = registry[registry["device_type"] == "battery"].drop_duplicates("site_id")
    minute_of_day = interval_start.hour * 60 + interval_start.minute
    warnings: list[str] = []
    frames = []
    energy = _site_energy(history) if not history.empty else pd.DataFrame()
    if not energy.empty:
        hours = energy["interval_s"] / 3600.0
        energy = energy.assign(
            minute=energy["interval_start"].dt.hour * 60 + energy["interval_start"].dt.minute,
            pv_kw=energy["pv_kwh"] / hours, load_kw=energy["load_kwh"] / hours)
        profile = energy.groupby(["site_id", "minute"])[["pv_kw", "load_kw"]].mean()
    no_history = []
    for site in sites.itertuples():
        if not energy.empty and site.site_id in profile.index.get_level_values(0):
            p = profile.loc[site.site_id]
            # nearest earlier profile minute (the history may be coarser than the instruction)
            minutes = p.index.to_numpy()
            pos = np.searchsorted(minutes, minute_of_day, side="right") - 1
            pos = np.where(pos < 0, len(minutes) - 1, pos)
            pv = p["pv_kw"].to_numpy()[pos]
            load = p["load_kw"].to_numpy()[pos]
            pv = np.nan_to_num(pv, nan=0.0)
            load = np.where(np.isnan(load), float(site.plc_kw or 0.0), load)
        else:
            no_history.append(site.site_id)
            pv = np.zeros(len(interval_start))
            plc = float(site.plc_kw) if pd.notna(site.plc_kw) else 0.0
            after = interval_start >= event_end if event_end is not None else np.ones(len(interval_start), bool)
            load = np.where(after, plc, 0.0)
        frames.append(pd.DataFrame({"site_id": site.site_id, "interval_start": interval_start,
                                    "load_kw": np.maximum(load, 0.0), "pv_kw": np.maximum(pv, 0.0)}))
    if no_history:
        warnings.append(f"{len(no_history)} sites have no telemetry history; forecast PV 0, load 0 during the "
                        "event and PLC after it")
    return pd.concat(frames, ignore_index=True), warnings
