"""The gap check judges only intervals that have ended: counts worked out by hand, a DST day included.

Two series on the UTC day 2026-07-20: a SolarEdge PV inverter every 15 minutes that reported up
to 10:00 except 08:00 and 08:15, and an Enphase PV inverter every 5 minutes that reported up to
12:00 except 09:00-09:10. The rest of each series is missing rows (nothing has arrived).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry.daily import DayResult
from der_assets.telemetry.quality import ended_by, ended_gap_runs, gap_summary
from der_assets.telemetry.schema import CANONICAL_COLUMNS

DAY = pd.Timestamp("2026-07-20T00:00Z")


def _series(day, source, device, interval_s, reported_until, holes=()):
    starts = pd.date_range(day, day + pd.Timedelta(days=1), freq=f"{interval_s}s", inclusive="left")
    reported = (starts < pd.Timestamp(reported_until)) & ~starts.isin(pd.DatetimeIndex(holes))
    return pd.DataFrame({
        "site_id": f"S-{device}", "device_id": device, "source": source, "channel": "pv_kwh",
        "interval_start": starts, "interval_s": interval_s,
        "value": np.where(reported, 0.5, np.nan), "quality": np.where(reported, "measured", "missing"),
        "received_at": starts + pd.Timedelta(seconds=interval_s + 60), "revision": 0,
    })[CANONICAL_COLUMNS]


def _day(day=DAY) -> DayResult:
    d = day.strftime("%Y-%m-%d")
    rows = pd.concat([
        _series(day, "solaredge", "A", 900, f"{d}T10:00Z", [f"{d}T08:00Z", f"{d}T08:15Z"]),
        _series(day, "enphase", "B", 300, f"{d}T12:00Z", [f"{d}T09:00Z", f"{d}T09:05Z", f"{d}T09:10Z"]),
    ], ignore_index=True)
    return DayResult(rows=rows, review=pd.DataFrame())


def test_mid_day_judges_only_ended_intervals():
    stats = _day().stats(pd.Timestamp("2026-07-20T12:07Z"))
    # A: intervals ending by 12:07 start at or before 11:45 -> 48; missing 2 holes + 10:00..11:45 (8) = 10
    # B: intervals ending by 12:07 start at or before 12:00 -> 145; missing 3 holes + 12:00 = 4
    assert stats["judged_intervals"] == 48 + 145
    assert stats["future_intervals"] == (96 - 48) + (288 - 145)
    assert stats["missing"] == 10 + 4
    assert stats["gap_pct"] == round(100 * 14 / 193, 3) == 7.254
    assert stats["reported"] == (40 - 2) + (144 - 3)  # values present, whatever the clock
    by_source = gap_summary(_day().rows, pd.Timestamp("2026-07-20T12:07Z")).set_index("source")
    assert by_source.loc["solaredge"].tolist() == [48, 10, 48, round(100 * 10 / 48, 3)]
    assert by_source.loc["enphase"].tolist() == [145, 4, 143, round(100 * 4 / 145, 3)]


def test_a_day_wholly_past_is_judged_as_before():
    whole = _day().stats()  # no as-of: every interval
    after = _day().stats(pd.Timestamp("2026-07-21T03:00Z"))
    # A: 2 holes + 10:00..24:00 (56) = 58; B: 3 holes + 12:00..24:00 (144) = 147
    assert whole["missing"] == after["missing"] == 58 + 147
    assert whole["judged_intervals"] == after["judged_intervals"] == 96 + 288
    assert whole["future_intervals"] == after["future_intervals"] == 0
    assert whole["gap_pct"] == after["gap_pct"] == round(100 * 205 / 384, 3)


def test_an_interval_ends_at_its_end_not_its_start():
    rows = _day().rows
    at = pd.Timestamp("2026-07-20T12:05Z")  # B's 12:00 interval ends exactly now: judged
    assert ended_by(rows, at).sum() == 48 + 145
    assert ended_by(rows, at - pd.Timedelta(microseconds=1)).sum() == 48 + 144


def test_before_anything_ended_nothing_is_judged_and_nothing_reads_zero():
    stats = _day().stats(pd.Timestamp("2026-07-20T00:04Z"))
    assert stats["judged_intervals"] == 0 and stats["future_intervals"] == 384
    assert stats["missing"] == 0 and stats["gap_pct"] is None
    assert gap_summary(_day().rows, pd.Timestamp("2026-07-19T23:00Z"))["gap_pct"].tolist() == [None, None]


@pytest.mark.parametrize(("local", "ambiguous", "utc", "judged_5min", "judged_15min"), [
    # fall back, 1 November 2026: 01:30 in New York happens twice, 05:30Z (EDT) and 06:30Z (EST)
    ("2026-11-01 01:30", True, "2026-11-01T05:30Z", 66, 22),
    ("2026-11-01 01:30", False, "2026-11-01T06:30Z", 78, 26),
    # spring forward, 8 March 2026: 03:30 EDT comes an hour after 01:30 EST, at 07:30Z
    ("2026-03-08 03:30", "raise", "2026-03-08T07:30Z", 90, 30),
])
def test_dst_days_count_in_utc(local, ambiguous, utc, judged_5min, judged_15min):
    """The partition is a UTC day of 288 / 96 intervals even when New York's day has 23 or 25 hours;
    what has ended is read off the UTC clock, whatever the local wall time says."""
    day = pd.Timestamp(utc).floor("D")
    as_of = pd.Timestamp(local).tz_localize("America/New_York", ambiguous=ambiguous)
    assert as_of == pd.Timestamp(utc)
    result = _day(day)
    assert len(result.rows) == 288 + 96
    by_source = gap_summary(result.rows, as_of).set_index("source")
    assert by_source.loc["enphase", "judged_intervals"] == judged_5min
    assert by_source.loc["solaredge", "judged_intervals"] == judged_15min
    stats = result.stats(as_of)
    assert stats["judged_intervals"] == judged_5min + judged_15min
    assert stats["future_intervals"] == 288 + 96 - judged_5min - judged_15min
    # reported from midnight (both series hold values until 10:00 / 12:00 UTC, less their holes, all later)
    assert stats["missing"] == 0 and stats["gap_pct"] == 0.0


def test_gap_runs_for_review_are_cut_at_now():
    rows = _day().rows
    review = pd.DataFrame([
        # B from 12:00 to the end of the day; A from 10:00; a suspect run and a run wholly to come
        {"site_id": "S-B", "device_id": "B", "source": "enphase", "channel": "pv_kwh", "issue": "gap",
         "first_interval": pd.Timestamp("2026-07-20T12:00Z"), "last_interval": pd.Timestamp("2026-07-20T23:55Z"),
         "n_intervals": 144},
        {"site_id": "S-A", "device_id": "A", "source": "solaredge", "channel": "pv_kwh", "issue": "gap",
         "first_interval": pd.Timestamp("2026-07-20T10:00Z"), "last_interval": pd.Timestamp("2026-07-20T23:45Z"),
         "n_intervals": 56},
        {"site_id": "S-A", "device_id": "A", "source": "solaredge", "channel": "pv_kwh", "issue": "suspect_spike",
         "first_interval": pd.Timestamp("2026-07-20T07:00Z"), "last_interval": pd.Timestamp("2026-07-20T07:00Z"),
         "n_intervals": 1},
        {"site_id": "S-B", "device_id": "B", "source": "enphase", "channel": "pv_kwh", "issue": "gap",
         "first_interval": pd.Timestamp("2026-07-20T13:00Z"), "last_interval": pd.Timestamp("2026-07-20T13:55Z"),
         "n_intervals": 12},
    ])
    cut = ended_gap_runs(review, rows, pd.Timestamp("2026-07-20T12:07Z"))
    assert cut[["device_id", "issue", "n_intervals"]].values.tolist() == [
        ["B", "gap", 1], ["A", "gap", 8], ["A", "suspect_spike", 1]]
    assert cut["last_interval"].tolist() == [pd.Timestamp("2026-07-20T12:00Z"), pd.Timestamp("2026-07-20T11:45Z"),
                                             pd.Timestamp("2026-07-20T07:00Z")]
    assert ended_gap_runs(review, rows, None) is review  # a day wholly past: every run as found
