"""Shared helpers for dispatch tests: the worked example's paths and an independent plan checker."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "dispatch_example"


@pytest.fixture
def example_dir(tmp_path: Path) -> Path:
    """A writable copy of the worked example (12 batteries x 24 five-minute intervals)."""
    dst = tmp_path / "example"
    shutil.copytree(EXAMPLE_DIR, dst)
    for f in dst.iterdir():
        f.chmod(0o644)
    return dst


def independent_violations(fleet_csv: Path, forecast_csv: Path, plan_csv: Path, interval_minutes: int, tol: float = 1e-6) -> list[str]:
    """Check a written plan against the raw files, sharing no code with the optimizer.

    Power limits, availability, reserve under the efficiency rule (SoC drops p*dt/sqrt(eta) when
    discharging, rises |p|*dt*sqrt(eta) when charging), the site-level non-export cap, and that
    soc_end_kwh matches the setpoints.
    """
    fleet = pd.read_csv(fleet_csv, dtype={"battery_id": str, "site_id": str})
    for col in ("export_allowed", "available"):
        fleet[col] = fleet[col].astype(str).str.lower().isin(["true", "1", "yes"])
    fc = pd.read_csv(forecast_csv, dtype={"site_id": str})
    fc["interval_start"] = pd.to_datetime(fc["interval_start"], utc=True)
    plan = pd.read_csv(plan_csv, dtype={"battery_id": str})
    plan["interval_start"] = pd.to_datetime(plan["interval_start"], utc=True)
    dt = interval_minutes / 60
    out = []
    merged = plan.merge(fleet, on="battery_id", how="left", validate="many_to_one")
    if merged["site_id"].isna().any():
        out.append("plan has unknown batteries")
    p = merged["setpoint_kw"]
    if (p > merged["max_discharge_kw"] + tol).any():
        out.append("discharge above max_discharge_kw")
    if (-p > merged["max_charge_kw"] + tol).any():
        out.append("charge above max_charge_kw")
    if ((~merged["available"]) & (p.abs() > tol)).any():
        out.append("unavailable battery dispatched")
    merged = merged.sort_values(["battery_id", "interval_start"])
    se = np.sqrt(merged["efficiency"])
    delta = np.where(merged["setpoint_kw"] >= 0, merged["setpoint_kw"] / se, merged["setpoint_kw"] * se) * dt
    soc = merged["soc_kwh"] - pd.Series(delta, index=merged.index).groupby(merged["battery_id"]).cumsum()
    floor = np.minimum(merged["reserve_kwh"], merged["soc_kwh"])
    if (soc < floor - tol).any():
        out.append("SoC below reserve")
    if (soc > merged["capacity_kwh"] + tol).any():
        out.append("SoC above capacity")
    if (np.abs(soc - merged["soc_end_kwh"]) > 1e-5).any():
        out.append("soc_end_kwh inconsistent with setpoints")
    ne = merged[~merged["export_allowed"]]
    if len(ne):
        site_kw = ne.groupby(["site_id", "interval_start"])["setpoint_kw"].sum().rename("site_kw").reset_index()
        chk = site_kw.merge(fc, on=["site_id", "interval_start"], how="left")
        net = np.maximum(chk["load_kw"] - chk["pv_kw"], 0).fillna(0.0)
        if (chk["site_kw"] > net + tol).any():
            out.append("non-export site exports")
    return out
