"""Devices rolled up to their site: the nameplates every consumer of the registry needs."""

from __future__ import annotations

import pandas as pd


def site_nameplates(registry: pd.DataFrame) -> pd.DataFrame:
    """Per site (index site_id): pv_ac_kw, pv_dc_kw, tilt_deg, azimuth_deg, battery_kw, battery_kwh.

    Retired devices do not count; a site without PV or battery has NaN there.
    """
    devices = registry[registry["device_status"] != "retired"]
    pv = devices[devices["device_type"] == "pv_inverter"].groupby("site_id")
    bat = devices[devices["device_type"] == "battery"].groupby("site_id")
    out = pd.DataFrame(index=pd.Index(registry["site_id"].drop_duplicates(), name="site_id"))
    out["pv_ac_kw"] = pv["rated_kw"].sum(min_count=1)
    out["pv_dc_kw"] = pv["pv_dc_kw"].sum(min_count=1)
    out["tilt_deg"] = pv["tilt_deg"].first()
    out["azimuth_deg"] = pv["azimuth_deg"].first()
    out["battery_kw"] = bat["rated_kw"].sum(min_count=1)
    out["battery_kwh"] = bat["capacity_kwh"].sum(min_count=1)
    return out
