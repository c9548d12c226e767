"""NYISO Average Day and ACL, ISO-NE mean 10 of 10: worked by hand, ordinary and DST days."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from der_assets.settlement.baselines import compute_baseline
from der_assets.settlement.baselines.nyiso import prior_capability_period
from der_assets.settlement.baselines import method_params

from .helpers import by_meter, days_between, local_event, meter_rows

D = dt.date


def _weekdays_back(day, n):
    out, d = [], day - dt.timedelta(days=1)
    while len(out) < n:
        if d.weekday() < 5:
            out.append(d)
        d -= dt.timedelta(days=1)
    return out


@pytest.mark.parametrize("window_kw, factor", [(4.80, 4.80 / 4.20), (5.20, 1.20)], ids=["in-cap", "capped"])
def test_nyiso_average_day_5_of_10_with_in_day_factor(window_kw, factor):
    # Event Wed 2026-07-15 14:00-18:00. The day before (Jul 14) is excluded, so the ten weekdays are
    # Jul 13 back; their levels are the reference's example / 100: 4.10, 3.95, 4.30, 3.80, 4.25,
    # 0.60 (low usage), 4.05, 4.15, 3.90, 4.20; the next older day (4.00) refills the ten.
    event_day = D(2026, 7, 15)
    back = _weekdays_back(event_day, 12)
    levels = dict(zip(back, [99.0, 4.10, 3.95, 4.30, 3.80, 4.25, 0.60, 4.05, 4.15, 3.90, 4.20, 4.00], strict=True))

    def kw(day, h):
        if day == event_day:
            return 2.0 if 14 <= h < 18 else (window_kw if 10 <= h < 12 else 1.0)
        return levels.get(day, 1.0) if day.weekday() < 5 else 50.0

    meter = meter_rows("A", days_between(D(2026, 6, 1), event_day), kw)
    r = compute_baseline("nyiso_average_day", meter, local_event(event_day, 14, 18, iso="NYISO"))
    ten = [levels[d] for d in back[1:11]]
    seed = np.mean(ten)
    pool = [x for x in ten if x >= 0.25 * seed] + [levels[back[11]]]
    cbl = np.mean(sorted(pool, reverse=True)[:5])  # 4.30, 4.25, 4.20, 4.15, 4.10 -> 4.20
    assert cbl == pytest.approx(4.20)
    assert by_meter(r.frame, "A", "baseline_kw") == pytest.approx([cbl * factor] * 4)
    assert any("adjustment_cap_fraction=0.2" in w for w in r.warnings)


def test_nyiso_average_day_dst_sunday_two_of_three():
    # Sun 2026-03-08 (spring forward, 92 quarter-hours): Sundays Mar 1, Feb 22, Feb 15 -> highest 2.
    event_day = D(2026, 3, 8)
    sundays = {D(2026, 3, 1): 3.0, D(2026, 2, 22): 5.0, D(2026, 2, 15): 4.0, D(2026, 2, 8): 9.0}

    def kw(day, h):
        if day == event_day:
            return 1.0
        return sundays.get(day, 0.5 if day.weekday() == 6 else 7.0)

    meter = meter_rows("A", days_between(D(2026, 1, 20), event_day), kw)
    assert (meter["interval_start"] >= pd.Timestamp("2026-03-08T05:00Z")).sum() == 92
    f = compute_baseline("nyiso_average_day", meter, local_event(event_day, 14, 18, iso="NYISO"),
                         {"adjustment": "none"}).frame
    assert by_meter(f, "A", "baseline_kw") == pytest.approx([np.mean([5.0, 4.0])] * 4)


def test_nyiso_multiplicative_factor_on_an_exporting_window_is_nan_not_a_number_made_up():
    event_day = D(2026, 7, 15)

    def kw(day, h):
        return -1.0 if 10 <= h < 12 else 3.0  # solar export in the adjustment window every day

    meter = meter_rows("A", days_between(D(2026, 6, 1), event_day), kw)
    r = compute_baseline("nyiso_average_day", meter, local_event(event_day, 14, 18, iso="NYISO"))
    assert r.frame["baseline_kw"].isna().all()
    assert any("non-positive CBL" in w for w in r.warnings)


def _hourly_rows(meter_id, first, last, kw_at):
    starts = pd.date_range(pd.Timestamp(first, tz="UTC"), pd.Timestamp(last, tz="UTC"), freq="h", inclusive="left")
    return pd.DataFrame({"meter_id": meter_id, "interval_start": starts, "interval_s": 3600,
                         "grid_kwh": [kw_at(t) for t in starts]})


@pytest.mark.parametrize("event_day, first, last, hours_from", [
    (D(2026, 7, 15), "2025-05-01", "2026-07-17", "2025-07-01T15:00Z"),
    (D(2026, 11, 1), "2025-10-01", "2026-11-03", "2025-11-02T05:00Z"),  # winter; peak hours over the 2025 fall-back
], ids=["summer", "winter-dst"])
def test_nyiso_acl_is_the_mean_of_the_top_20_of_the_40_peak_hours(event_day, first, last, hours_from):
    peak = pd.date_range(hours_from, periods=40, freq="5h")
    value = {t: float(i + 1) for i, t in enumerate(peak)}  # 1..40 kW at the 40 peak hours
    meter = _hourly_rows("A", first, last, lambda t: value.get(t, 100.0 if t < pd.Timestamp(hours_from) else 0.5))
    params = {"peak_hours_utc": [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in peak]}
    r = compute_baseline("nyiso_acl", meter, local_event(event_day, 14, 16, iso="NYISO"), params)
    expected = np.mean(sorted(value.values(), reverse=True)[:20])  # 21..40 -> 30.5
    assert by_meter(r.frame, "A", "baseline_kw") == pytest.approx([expected] * 2)
    assert not any("proxy" in w for w in r.warnings)


def test_nyiso_acl_prior_equivalent_capability_period():
    p = method_params("nyiso_acl")
    assert prior_capability_period(D(2026, 7, 15), p) == (D(2025, 5, 1), D(2025, 11, 1))
    assert prior_capability_period(D(2026, 11, 1), p) == (D(2025, 11, 1), D(2026, 5, 1))
    assert prior_capability_period(D(2027, 2, 1), p) == (D(2025, 11, 1), D(2026, 5, 1))
    assert prior_capability_period(D(2026, 4, 30), p) == (D(2024, 11, 1), D(2025, 5, 1))


def test_nyiso_acl_without_peak_hours_uses_a_named_proxy():
    meter = _hourly_rows("A", "2025-05-01", "2026-07-17", lambda t: 1.0 + (t.hour == 20) * 5.0)
    r = compute_baseline("nyiso_acl", meter, local_event(D(2026, 7, 15), 14, 16, iso="NYISO"))
    assert by_meter(r.frame, "A", "baseline_kw") == pytest.approx([6.0, 6.0])  # 16:00 EDT = HB16 is in 11-19
    assert any("proxy" in w for w in r.warnings)


@pytest.mark.parametrize("event_day, day_type", [(D(2026, 7, 15), "weekday"), (D(2026, 11, 1), "sunday")],
                         ids=["ordinary-weekday", "dst-fall-sunday"])
def test_isone_mean_10_of_10_with_additive_adjustment(event_day, day_type):
    # 5-minute meter. The ten most recent like days (Sundays and NERC holidays for a Sunday) are flat at 1, 2, ..., 10 kW, newest first; older like days 50 kW.
    # Notified at 13:00 local for a 14:00 start: the hour before notification (12:00-13:00) is
    # 6.5 kW on the event day, the mean there is 5.5 -> +1 kW.
    from der_assets.settlement import calendar

    def like(d):
        t = calendar.day_types([d])[0]
        return t == calendar.day_types([event_day])[0]

    history = days_between(event_day - dt.timedelta(days=95), event_day - dt.timedelta(days=1))
    ten = [d for d in sorted(history, reverse=True) if like(d)][:10]
    level = {d: float(i + 1) for i, d in enumerate(ten)}
    assert (D(2026, 9, 7) in ten) == (day_type == "sunday")  # Labor Day is one of a Sunday's ten

    def kw(day, h):
        if day == event_day:
            return 6.5 if 12 <= h < 13 else (3.0 if 14 <= h < 15 else 0.1)
        return level.get(day, 50.0 if like(day) else 0.2)

    meter = meter_rows("A", history + [event_day], kw, interval_s=300)
    notified = pd.Timestamp(dt.datetime.combine(event_day, dt.time(13))).tz_localize("America/New_York")
    event = local_event(event_day, 14, 15, iso="ISO-NE", notified_at=notified.tz_convert("UTC"))
    r = compute_baseline("isone_mean_10_of_10", meter, event)
    mean10 = np.mean(list(level.values()))
    assert mean10 == pytest.approx(5.5)
    f = r.frame
    assert len(f) == 12 and (f["interval_s"] == 300).all()
    assert by_meter(f, "A", "baseline_kw") == pytest.approx([mean10 + (6.5 - mean10)] * 12)
    assert by_meter(f, "A", "reduction_kw") == pytest.approx([6.5 - 3.0] * 12)


def test_isone_counts_a_nerc_holiday_with_sundays():
    from der_assets.settlement import calendar

    assert calendar.day_types([D(2026, 9, 7)])[0] == calendar.SUNDAY_HOLIDAY  # Labor Day
    assert calendar.day_types([D(2026, 7, 3)])[0] == calendar.WEEKDAY  # July 4 is a Saturday: not moved
    assert calendar.day_types([D(2022, 12, 26)])[0] == calendar.SUNDAY_HOLIDAY  # Christmas on Sunday -> Monday
    assert calendar.day_types([D(2026, 1, 19)])[0] == calendar.WEEKDAY  # MLK Day is not a NERC holiday
