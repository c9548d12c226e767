"""Incremental pulls: where each site's next window starts, and when a pull is not worth a request."""

from __future__ import annotations

import pandas as pd

from der_assets.connectors.pull import LastPull, site_window

DAY = pd.Timestamp("2026-07-15T00:00Z")
END = DAY + pd.Timedelta(days=1)


def test_first_pull_of_the_day_asks_for_everything_up_to_now():
    now = DAY + pd.Timedelta(hours=10)
    assert site_window("solaredge", DAY, END, now, None) == (DAY, now)


def test_next_pull_starts_an_hour_before_the_last_window_ended():
    last = LastPull(received_at=DAY + pd.Timedelta(hours=10), window_end=DAY + pd.Timedelta(hours=10))
    now = DAY + pd.Timedelta(hours=11)
    assert site_window("solaredge", DAY, END, now, last) == (DAY + pd.Timedelta(hours=9), now)


def test_solaredge_is_not_asked_twice_within_half_an_hour():
    """300 requests a day per site, five per pull: at most 48 pulls a day."""
    last = LastPull(received_at=DAY + pd.Timedelta(hours=10), window_end=DAY + pd.Timedelta(hours=10))
    assert site_window("solaredge", DAY, END, DAY + pd.Timedelta(hours=10, minutes=15), last) is None
    assert site_window("solaredge", DAY, END, DAY + pd.Timedelta(hours=10, minutes=30), last) is not None
    pulls_per_day = 24 * 60 // 30
    assert pulls_per_day * 5 <= 300


def test_enphase_reaches_back_eight_hours_for_late_cellular_uploads():
    last = LastPull(received_at=DAY + pd.Timedelta(hours=20), window_end=DAY + pd.Timedelta(hours=20))
    now = DAY + pd.Timedelta(hours=21)
    assert site_window("enphase", DAY, END, now, last) == (DAY + pd.Timedelta(hours=12), now)


def test_a_past_day_is_pulled_whole_once():
    now = END + pd.Timedelta(days=3)
    assert site_window("sma", DAY, END, now, None) == (DAY, END)
    done = LastPull(received_at=now, window_end=END)
    assert site_window("sma", DAY, END, now + pd.Timedelta(hours=1), done) == (END - pd.Timedelta(hours=1), END)
