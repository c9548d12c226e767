"""One series reported at two interval lengths: which length the day takes, on both paths.

Fronius today: the 5-minute archive (registers, measured) and the 15-minute PowerFlow poll-log
estimate cover the same device and channel, and the estimate lands a moment later. Values are
round numbers so every cell can be checked by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry.dense import RowBlock, SeriesKeys, complete_day, other_length_reports
from der_assets.telemetry.quality import complete_grid, flag_suspect, other_length_items
from der_assets.telemetry.quality import other_length_reports as other_length_rows
from der_assets.telemetry.schema import CANONICAL_COLUMNS

DAY = pd.Timestamp("2026-07-20T00:00Z")
END = DAY + pd.Timedelta(days=1)
ARCHIVE_AT = pd.Timestamp("2026-07-20T01:00Z")
FLOW_AT = ARCHIVE_AT + pd.Timedelta(seconds=1)  # the estimate is the later belief


def _rows(device, channel, interval_s, n, value, quality, received):
    """n rows from midnight; value grows by 0.001 a step (equal values in a row would read as stuck)."""
    starts = DAY + pd.to_timedelta(np.arange(n) * interval_s, unit="s")
    return pd.DataFrame({"site_id": "S-1", "device_id": device, "source": "fronius", "channel": channel,
                         "interval_start": starts, "interval_s": interval_s, "value": value + 0.001 * np.arange(n),
                         "quality": quality,
                         "received_at": received, "revision": 0})[CANONICAL_COLUMNS]


PAYLOADS = [  # (order, rows): the archive first, then the PowerFlow log
    (0, pd.concat([
        _rows("S-1", "grid_kwh", 300, 12, 0.1, "measured", ARCHIVE_AT),  # 00:00-00:55 measured
        _rows("INV", "pv_kwh", 300, 12, 0.2, "measured", ARCHIVE_AT),
        _rows("BAT", "battery_kwh", 300, 12, np.nan, "missing", ARCHIVE_AT),  # claimed, nothing measured
    ], ignore_index=True)),
    (1, pd.concat([
        _rows("S-1", "grid_kwh", 900, 4, 0.5, "estimated", FLOW_AT),  # power integrated, 00:00-00:45
        _rows("INV", "pv_kwh", 900, 4, 0.6, "measured", FLOW_AT),  # E_Total differenced: measured too
        _rows("BAT", "battery_kwh", 900, 4, -0.3, "estimated", FLOW_AT),
    ], ignore_index=True)),
]
EXPECTED = pd.DataFrame([{"site_id": "S-1", "device_id": "INV", "source": "fronius", "channel": "pv_kwh",
                          "interval_s": 300}])


def _both():
    rows = pd.concat([r for _, r in PAYLOADS], ignore_index=True)
    nameplate = pd.Series({"INV": 7.6, "BAT": 5.0})
    ref = flag_suspect(complete_grid(rows, EXPECTED, day_start=DAY, day_end=END, believed_at=FLOW_AT), nameplate)
    keys = SeriesKeys()
    blocks = [RowBlock.from_frame(r, keys, order) for order, r in PAYLOADS]
    day = complete_day(blocks, keys, EXPECTED, day_start=DAY, day_end=END, believed_at=FLOW_AT, nameplate_kw=nameplate)
    other_ref = other_length_items(other_length_rows(rows, ref, day_start=DAY, day_end=END))
    other_fast = other_length_items(other_length_reports(blocks, keys, day, day_start=DAY, day_end=END))
    return ref[CANONICAL_COLUMNS], day.frame(), other_ref, other_fast


def _key(frame):
    out = frame.astype({c: str for c in ["site_id", "device_id", "source", "channel", "quality"]})
    return out.sort_values(["device_id", "channel", "interval_start"]).reset_index(drop=True)


def test_measured_five_minute_rows_are_kept_over_a_later_quarter_hour_estimate():
    ref, fast, _, _ = _both()
    for frame in (ref, fast):
        grid = frame[frame["channel"].astype(str) == "grid_kwh"]
        assert set(grid["interval_s"]) == {300} and len(grid) == 288
        assert grid["value"].iloc[:12].tolist() == pytest.approx([0.1 + 0.001 * i for i in range(12)])
        assert (grid["quality"].astype(str).iloc[:12] == "measured").all()
        assert grid["value"].iloc[12:].isna().all()  # after 01:00 nothing: missing, the estimate never split up


def test_between_two_measured_lengths_the_finer_wins_and_an_estimate_fills_where_nothing_was_measured():
    ref, fast, _, _ = _both()
    for frame in (ref, fast):
        pv = frame[frame["channel"].astype(str) == "pv_kwh"]
        assert set(pv["interval_s"]) == {300} and pv["value"].iloc[:12].sum() == pytest.approx(2.4 + 0.066)
        bat = frame[frame["channel"].astype(str) == "battery_kwh"]
        # the archive claimed the battery's steps but measured none: the quarter-hour estimate is the series
        assert set(bat["interval_s"]) == {900} and len(bat) == 96
        assert bat["value"].iloc[:4].tolist() == pytest.approx([-0.3, -0.299, -0.298, -0.297])
        assert (bat["quality"].astype(str).iloc[:4] == "estimated").all()


def test_both_paths_agree_and_name_the_reports_left_out():
    ref, fast, other_ref, other_fast = _both()
    pd.testing.assert_frame_equal(_key(fast), _key(ref), check_dtype=False, check_categorical=False)
    for other in (other_ref, other_fast):
        got = other.sort_values("channel")[["channel", "n_intervals"]].values.tolist()
        # grid and pv: the four quarter-hours not placed; battery: the twelve claimed 5-minute gaps
        assert got == [["battery_kwh", 12], ["grid_kwh", 4], ["pv_kwh", 4]]
