"""Normalization and quality flags on small hand-made series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from der_assets.telemetry.quality import complete_grid, divergence, flag_suspect, lateness_s, review_items
from der_assets.telemetry.schema import validate

DAY = pd.Timestamp("2026-11-01T00:00Z")  # a UTC day: 288 five-minute intervals
END = DAY + pd.Timedelta(days=1)
BELIEF = pd.Timestamp("2026-11-02T01:00Z")


def _rows(starts, values, *, device="S1-PV", channel="pv_kwh", received="2026-11-01T23:00Z", interval_s=300):
    return pd.DataFrame({
        "site_id": "S1", "device_id": device, "source": "solaredge", "channel": channel,
        "interval_start": pd.to_datetime(starts, utc=True), "interval_s": interval_s,
        "value": values, "quality": "measured", "received_at": pd.Timestamp(received), "revision": 0,
    })


def _expected(*devices):
    return pd.DataFrame([{"site_id": "S1", "device_id": d, "source": "solaredge", "channel": c, "interval_s": 300}
                         for d, c in devices])


def test_missing_intervals_become_null_missing_rows():
    starts = pd.date_range(DAY, periods=288, freq="5min")
    kept = np.r_[0:100, 110:288]  # ten intervals never arrived
    rows = _rows(starts[kept], 0.1)
    full = complete_grid(rows, _expected(("S1-PV", "pv_kwh")), day_start=DAY, day_end=END, believed_at=BELIEF)
    assert len(full) == 288
    gap = full[full["quality"] == "missing"]
    assert len(gap) == 10 and gap["value"].isna().all()
    assert gap["interval_start"].min() == DAY + pd.Timedelta(minutes=500)
    assert full["value"].sum() == pytest.approx(278 * 0.1)
    validate(full)


def test_a_silent_device_is_a_full_day_of_missing():
    rows = _rows(pd.date_range(DAY, periods=288, freq="5min"), 0.2)
    full = complete_grid(rows, _expected(("S1-PV", "pv_kwh"), ("S1-BAT", "battery_kwh")),
                         day_start=DAY, day_end=END, believed_at=BELIEF)
    battery = full[full["device_id"] == "S1-BAT"]
    assert len(battery) == 288 and (battery["quality"] == "missing").all()
    assert (battery["received_at"] == BELIEF).all()


def test_overlapping_pulls_keep_the_latest_belief():
    starts = pd.date_range(DAY, periods=3, freq="5min")
    early = _rows(starts, [0.1, 0.1, 0.1], received="2026-11-01T00:20Z")
    late = _rows(starts[1:2], [0.3], received="2026-11-01T06:00Z")
    full = complete_grid(pd.concat([early, late]), _expected(("S1-PV", "pv_kwh")),
                         day_start=DAY, day_end=DAY + pd.Timedelta(minutes=15), believed_at=BELIEF)
    assert full["value"].tolist() == [0.1, 0.3, 0.1]


def test_a_measured_value_beats_a_later_estimate_of_the_same_interval():
    """A gateway's counters differenced across two polls spread one average over every interval between
    them: an estimate, which must not replace the cloud's measured bucket even though it arrived later."""
    starts = pd.date_range(DAY, periods=3, freq="5min")
    measured = _rows(starts, [0.25, 0.25, 0.25], received="2026-11-01T00:20Z")
    estimate = _rows(starts[:2], [-0.22, -0.22], received="2026-11-01T00:30Z").assign(quality="estimated")
    later_only = _rows(starts[2:], [0.4], received="2026-11-01T00:40Z").assign(quality="estimated")
    full = complete_grid(pd.concat([measured, estimate]), _expected(("S1-PV", "pv_kwh")),
                         day_start=DAY, day_end=DAY + pd.Timedelta(minutes=15), believed_at=BELIEF)
    assert full["value"].tolist() == [0.25, 0.25, 0.25] and set(full["quality"]) == {"measured"}
    # an estimate still fills what nothing measured, and a later measurement still wins among measurements
    gap = _rows(starts[:2], [0.25, 0.25], received="2026-11-01T00:20Z")
    full = complete_grid(pd.concat([gap, later_only]), _expected(("S1-PV", "pv_kwh")),
                         day_start=DAY, day_end=DAY + pd.Timedelta(minutes=15), believed_at=BELIEF)
    assert full["value"].tolist() == [0.25, 0.25, 0.4] and full["quality"].tolist()[2] == "estimated"


def test_spike_above_nameplate_and_stuck_register_are_suspect():
    starts = pd.date_range(DAY, periods=12, freq="5min")
    values = [0.2] * 3 + [5.0] + [0.31, 0.32, 0.33] + [0.4] * 5  # 5 kWh in 5 min is 60 kW from a 7.6 kW inverter
    flagged = flag_suspect(_rows(starts, values), pd.Series({"S1-PV": 7.6}), stuck_intervals=5)
    assert flagged.loc[3, "flag"] == "spike" and flagged.loc[3, "quality"] == "suspect"
    assert flagged.loc[3, "value"] == 5.0  # kept, not repaired
    assert flagged["flag"].iloc[7:].eq("stuck").all()
    assert flagged["flag"].iloc[:3].isna().all()  # three repeats are not yet stuck
    assert flagged["quality"].iloc[4:7].eq("measured").all()


def test_review_items_group_runs():
    starts = pd.date_range(DAY, periods=288, freq="5min")
    kept = np.r_[0:50, 60:200, 203:288]
    rows = _rows(starts[kept], 0.1 + kept / 1000)  # a varying signal: nothing looks stuck
    full = complete_grid(rows, _expected(("S1-PV", "pv_kwh")), day_start=DAY, day_end=END, believed_at=BELIEF)
    items = review_items(flag_suspect(full, pd.Series({"S1-PV": 7.6})))
    assert items[["issue", "n_intervals"]].values.tolist() == [["gap", 10], ["gap", 3]]
    assert items["first_interval"].iloc[1] == DAY + pd.Timedelta(minutes=1000)


def test_lateness():
    rows = _rows([DAY], [0.1], received="2026-11-01T06:05Z")
    assert lateness_s(rows).iloc[0] == 6 * 3600.0


def test_divergence_sums_vendor_intervals_to_the_ami_interval():
    ami = _rows(pd.date_range(DAY, periods=2, freq="15min"), [1.0, 2.0], channel="grid_kwh", interval_s=900)
    inv = _rows(pd.date_range(DAY, periods=6, freq="5min"), [0.3, 0.3, 0.3, 0.7, 0.7, 0.7], channel="grid_kwh")
    result = divergence(ami, inv).iloc[0]
    assert result["ami_kwh"] == pytest.approx(3.0) and result["inverter_kwh"] == pytest.approx(3.0)
    assert result["abs_diff_kwh"] == pytest.approx(0.0, abs=1e-9) and result["n_intervals"] == 2


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=288, max_size=288))
def test_grid_is_always_complete_and_never_zero_fills(present):
    starts = pd.date_range(DAY, periods=288, freq="5min")
    mask = np.array(present)
    rows = _rows(starts[mask], 0.25)
    full = complete_grid(rows, _expected(("S1-PV", "pv_kwh")), day_start=DAY, day_end=END, believed_at=BELIEF)
    assert len(full) == 288
    assert (full["quality"] == "missing").sum() == (~mask).sum()
    assert full["value"].sum() == pytest.approx(0.25 * mask.sum())
    assert not ((full["quality"] == "missing") & full["value"].notna()).any()
