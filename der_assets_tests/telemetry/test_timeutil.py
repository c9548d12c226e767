"""Local labels -> UTC: the fall-back hour, the spring-forward hour, and payload order."""

from __future__ import annotations

import pandas as pd

from der_assets.telemetry import timeutil

NY = "America/New_York"


def labels(*hhmm, day="2024-11-03"):
    return timeutil.parse_naive([f"{day} {x}" for x in hhmm])


def test_fall_back_hour_listed_twice_is_placed_by_order():
    out = timeutil.localize_labels(labels("00:45", "01:00", "01:30", "01:00", "01:30", "02:00"), NY)
    assert out["status"].tolist() == ["ok", "fold_first", "fold_first", "fold_second", "fold_second", "ok"]
    # 01:00 EDT = 05:00Z, 01:00 EST = 06:00Z, 02:00 EST = 07:00Z
    assert out["utc"].dt.strftime("%H:%M").tolist() == ["04:45", "05:00", "05:30", "06:00", "06:30", "07:00"]


def test_fall_back_sorted_by_label_still_resolves():
    out = timeutil.localize_labels(labels("01:00", "01:00", "01:15", "01:15"), NY)
    assert out["status"].tolist() == ["fold_first", "fold_second", "fold_first", "fold_second"]


def test_irregular_stamps_going_back_in_time_are_second_pass():
    out = timeutil.localize_labels(labels("01:50:10", "01:55:12", "01:00:09", "01:05:11"), NY)
    assert out["status"].tolist() == ["fold_first", "fold_first", "fold_second", "fold_second"]


def test_repeated_hour_seen_once_is_reported_unknown():
    out = timeutil.localize_labels(labels("00:45", "01:00", "01:15", "02:00"), NY)
    assert out["status"].tolist() == ["ok", "fold_unknown", "fold_unknown", "ok"]
    partner = timeutil.fold_partner_utc(out["utc"][1:3], NY)
    assert partner.dt.strftime("%H:%M").tolist() == ["06:00", "06:15"]


def test_descending_payload_is_read_in_time_order():
    out = timeutil.localize_labels(labels("02:00", "01:30", "01:00", "01:30", "01:00"), NY)
    assert out["status"].tolist() == ["ok", "fold_second", "fold_second", "fold_first", "fold_first"]


def test_spring_forward_labels_do_not_exist():
    out = timeutil.localize_labels(labels("01:45", "02:00", "02:45", "03:00", day="2024-03-10"), NY)
    assert out["status"].tolist() == ["ok", "nonexistent", "nonexistent", "ok"]
    assert out["utc"].isna().tolist() == [False, True, True, False]
    assert out["utc"].iloc[3] == pd.Timestamp("2024-03-10T07:00Z")


def test_interval_end_labels_shift_to_beginning():
    end = timeutil.from_epoch_s([1700000100])
    assert timeutil.interval_start_from_end(end, 300)[0] == pd.Timestamp("2023-11-14T22:10:00Z")
