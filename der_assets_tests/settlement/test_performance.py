"""Metered performance: missing meter rows are listed as missing (never zeros); the inverter estimate,
calibrated against AMI, stands in where AMI is missing and says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.settlement.events import event_from_dict
from der_assets.settlement.performance import calibrated_estimate, metered_performance, site_table
from der_assets_tests.settlement import synthetic as syn

H = pd.Timedelta(hours=1)
REGISTRY = syn.registry_frame().assign(meter_interval_min=15)
EVENTS = [event_from_dict(e, f"event {i}", require_method=True) for i, e in enumerate(syn.events_json())]
E1 = EVENTS[0]
FULL = syn.meter_frame()
DAY = FULL[(FULL["interval_start"] >= E1.start - 6 * H) & (FULL["interval_start"] < E1.end + 4 * H)
           & FULL["meter_id"].isin(["M1", "M2", "M4"])].reset_index(drop=True)


def _needed(meter_id: str, hour: pd.Timestamp, dropped: pd.DataFrame) -> bool:
    """Same Day (3+2) reads the meter's 3 h before (after a 1 h gap), 2 h after (after 1 h), and the hour itself."""
    rows = dropped[dropped["meter_id"] == meter_id]["interval_start"]
    windows = [(E1.start - 4 * H, E1.start - H), (E1.end + H, E1.end + 3 * H), (hour, hour + H)]
    return any(((rows >= a) & (rows < b)).any() for a, b in windows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, len(DAY) - 1), max_size=12, unique=True), st.booleans())
def test_missing_meter_rows_never_become_zeros(drop, as_nan):
    dropped = DAY.loc[drop]
    if as_nan:
        meter = DAY.copy()
        meter.loc[drop, "grid_kwh"] = np.nan
    else:
        meter = DAY.drop(index=drop)
    perf = metered_performance(meter, [E1], REGISTRY)
    sites = perf.sites[perf.sites["meter_id"].isin(["M1", "M2", "M4"])]
    for row in sites.itertuples():
        if _needed(row.meter_id, row.interval_start, dropped):
            assert row.basis == "missing" and np.isnan(row.reduction_kwh), row
        else:
            assert row.basis == "ami" and np.isfinite(row.reduction_kwh), row
    # M3 and M5 have no rows at all: missing, every interval
    assert (perf.sites[perf.sites["meter_id"].isin(["M3", "M5"])]["basis"] == "missing").all()
    res = perf.resources
    assert res["reduction_kwh"].isna().all()  # every resource has a site without rows
    assert (res["n_missing"] > 0).all() and (res["missing_sites"] != "").all()


def _reconciled(ami: pd.DataFrame, vendor_scale: float) -> pd.DataFrame:
    """reconciled_intervals rows: vendor estimate (revision 0) = AMI / scale; AMI (revision 1) as given."""
    site_of = {m: s for s, m, *_ in syn.SITES}
    base = {"channel": "grid_kwh", "quality": "ok", "received_at": pd.Timestamp("2026-08-02", tz="UTC")}
    vendor = FULL.assign(site_id=FULL["meter_id"].map(site_of), source="enphase", revision=0,
                         value=FULL["grid_kwh"] / vendor_scale, **base)
    meter = ami.assign(site_id=ami["meter_id"].map(site_of), source="ami", revision=1, value=ami["grid_kwh"], **base)
    rows = pd.concat([vendor, meter], ignore_index=True)
    return rows.assign(device_id=rows["site_id"]).drop(columns=["meter_id", "grid_kwh"])


def test_estimate_stands_in_for_missing_ami_and_is_flagged():
    e3 = EVENTS[2]
    gone = (FULL["meter_id"] == "M2") & (FULL["interval_start"] >= e3.start) & (FULL["interval_start"] < e3.start + H)
    ami = FULL[~gone]
    estimate = calibrated_estimate(_reconciled(ami, vendor_scale=1.1), REGISTRY)
    assert estimate.groupby("meter_id")["calibration"].first().round(6).eq(1.1).all()
    with_est = metered_performance(ami, [e3], REGISTRY, estimate=estimate)
    truth = metered_performance(FULL, [e3], REGISTRY)
    s = with_est.sites.set_index(["site_id", "interval_start"])
    t = truth.sites.set_index(["site_id", "interval_start"])
    key = ("S2", e3.start)
    assert s.loc[key, "basis"] == "estimated"
    assert s.loc[key, "reduction_kwh"] == pytest.approx(t.loc[key, "reduction_kwh"], abs=1e-6)
    assert (s.drop(index=[key])["basis"] == "ami").all()
    res = with_est.resources.set_index(["resource_id", "interval_start"])
    assert res.loc[("AGG-A", e3.start), "n_estimated"] == 1 and res.loc[("AGG-A", e3.start), "n_missing"] == 0
    without = metered_performance(ami, [e3], REGISTRY).sites.set_index(["site_id", "interval_start"])
    assert without.loc[key, "basis"] == "missing" and np.isnan(without.loc[key, "reduction_kwh"])


def test_sites_without_resource_column_fall_back_to_iso_zone():
    frame = site_table(REGISTRY.drop(columns=["resource_id"]))
    assert set(frame["resource_id"]) == {"PJM-PSEG", "PJM-BGE"}
    frame = site_table(REGISTRY)
    assert dict(zip(frame["site_id"], frame["resource_id"], strict=True))["S4"] == "PJM-BGE"
    assert not frame.set_index("site_id").loc["S6", "enrolled"]
