"""Baseline accuracy (RRMSE, bias) and why battery sites are where day-matching baselines go wrong."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from der_assets.settlement.accuracy import (CaltrackUnavailable, baseline_accuracy, caltrack_accuracy,
                                            caltrack_available, recommend, score)

from .helpers import days_between, meter_rows

DAYS = days_between(dt.date(2026, 4, 1), dt.date(2026, 7, 31))


def _household(seed: int) -> dict:
    """Day-to-day weather: a daily level that wanders slowly; an evening peak."""
    rng = np.random.default_rng(seed)
    level = np.cumsum(rng.normal(0, 0.08, len(DAYS))) + 1.6
    return dict(zip(DAYS, np.clip(level, 0.8, 3.0), strict=True))


def _load(level, day, h):
    return level[day] * (0.6 + 0.8 * np.exp(-((h - 17.0) / 3.0) ** 2))


def _site(meter_id: str, seed: int, battery: bool) -> pd.DataFrame:
    level = _household(seed)
    rng = np.random.default_rng(seed + 1)
    arbitrage = {d: bool(rng.random() < 0.5) for d in DAYS}  # the battery discharges on some days only

    def kw(day, h):
        base = _load(level, day, h)
        if battery and arbitrage[day]:
            if 15 <= h < 19:
                return base - 2.5  # 2.5 kW discharge for a TOU peak, net load can go negative
            if 1 <= h < 5:
                return base + 2.5  # recharging overnight
        return base

    return meter_rows(meter_id, DAYS, kw)


def test_score_is_rrmse_and_bias_over_known_pairs():
    s = score(np.array([[11.0, 9.0, np.nan]]), np.array([[10.0, 10.0, 10.0]]))
    assert s["rrmse_pct"][0] == pytest.approx(10.0) and s["bias_pct"][0] == pytest.approx(0.0)
    assert s["n_intervals"][0] == 2


def test_battery_shifting_load_on_ordinary_days_raises_the_rrmse_of_day_matching_baselines():
    meter = pd.concat([_site("plain", 3, battery=False), _site("battery", 3, battery=True)], ignore_index=True)
    acc = baseline_accuracy(meter, timezone="America/New_York", window_h=(14, 18),
                            methods=("pjm_high_4_of_5", "pjm_match_day", "isone_mean_10_of_10"),
                            resources={"plain": "R1", "battery": "R1"},
                            first_day=dt.date(2026, 5, 20))
    by = acc.set_index(["level", "id", "method"])
    for method in ("pjm_high_4_of_5", "pjm_match_day", "isone_mean_10_of_10"):
        plain, batt = by.loc[("meter", "plain", method)], by.loc[("meter", "battery", method)]
        assert plain["n_days"] >= 40 and batt["n_days"] >= 40
        assert plain["rrmse_pct"] < 20.0, method  # the same household without the battery passes
        assert batt["rrmse_pct"] > 2 * plain["rrmse_pct"], method
    rec = recommend(acc).set_index(["level", "id"])
    assert rec.loc[("meter", "plain"), "method"] in ("pjm_high_4_of_5", "pjm_match_day")
    assert ("resource", "R1") in rec.index


def test_a_short_history_gets_no_recommendation():
    meter = _site("plain", 3, battery=False)
    meter = meter[meter["interval_start"] >= pd.Timestamp("2026-07-01T04:00Z")]
    acc = baseline_accuracy(meter, timezone="America/New_York", methods=("pjm_same_day_3_2",))
    rec = recommend(acc)
    assert rec["method"].isna().all() and "history" in rec["reason"].iloc[0]


@pytest.mark.skipif(caltrack_available(), reason="opendsm installed: the skip path does not apply")
def test_caltrack_comparison_is_skipped_with_a_clear_message_without_opendsm():
    meter = _site("plain", 3, battery=False)
    temp = pd.Series(70.0, index=pd.date_range("2026-04-01", "2026-08-01", freq="h", tz="UTC"))
    with pytest.raises(CaltrackUnavailable, match=r"der_assets\[caltrack\]"):
        caltrack_accuracy(meter, temp, timezone="America/New_York", fit_until=dt.date(2026, 7, 1))
