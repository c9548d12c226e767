"""An outside review of `der baseline` and `der settle`: cases computed by hand from each rule's text.

Every expected number below is written out, not recomputed by the code under test. Meter data is
built from local wall-clock rules (America/New_York), so a baseline that matched days by UTC time
instead of local time would read the decoy values and fail.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.cli import main

NY = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
HEADER = "meter_id,interval_start,interval_s,grid_kwh"
OUT_COLUMNS = ["meter_id", "interval_start", "interval_s", "baseline_kw", "load_kw", "reduction_kw"]


def z(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_meter(path, rows) -> str:
    path.write_text(HEADER + "\n" + "".join(f"{m},{t},{s},{v}\n" for m, t, s, v in rows))
    return str(path)


def local_days(first: dt.date, last: dt.date, kw, step_min: int = 15, meter: str = "M1"):
    """Rows for every local day first..last; kw(local_date, local_hour) -> kW, or None for no row."""
    rows = []
    t = dt.datetime.combine(first, dt.time(0), NY).astimezone(UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(0), NY).astimezone(UTC)
    while t < end:
        loc = t.astimezone(NY)
        value = kw(loc.date(), loc.hour)
        if value is not None:
            rows.append((meter, z(t), step_min * 60, value * step_min / 60))
        t += dt.timedelta(minutes=step_min)
    return rows


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def baseline(tmp_path, capsys, method, rows, event, params=None):
    meter = write_meter(tmp_path / "METER.csv", rows)
    (tmp_path / "EVENT.json").write_text(json.dumps(event))
    argv = ["baseline", "--method", method, "--meter", meter, "--event", str(tmp_path / "EVENT.json")]
    if params is not None:
        (tmp_path / "PARAMS.json").write_text(json.dumps(params))
        argv += ["--params", str(tmp_path / "PARAMS.json")]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert out.splitlines()[0] == ",".join(OUT_COLUMNS)
    frame = pd.read_csv(io.StringIO(out), keep_default_na=True)
    return frame, err


def column(frame, meter, name):
    return [None if pd.isna(v) else round(float(v), 6) for v in frame.loc[frame["meter_id"] == meter, name]]


# --- pjm_same_day_3_2 (RTO Insider: event HE13-17 -> average HE9-11 and HE19-20) ----------------------------

def test_same_day_ordinary_day_and_a_missing_row_is_never_zero(tmp_path, capsys):
    """Wed 2026-07-15 (EDT), event HE13-17 = 16:00-21:00Z. M1 hourly: HE9-11 = 2, 3, 4 kWh, HE19-20 = 5, 6, the
    skipped HE12 and HE18 = 100: CBL = (2+3+4+5+6)/5 = 4.0 kW. M2 15-minute: 2 kW in the windows, HE13 quarters
    0.1..0.4 kWh = 1.0 kW mean: CBL 2.0, reduction 1.0. M3 as M1 without its HE10 row (no CBL) and an empty
    HE14 reading (no load): empty cells, never a zero."""
    day0 = dt.datetime(2026, 7, 15, 4, tzinfo=UTC)  # local midnight
    he = {8: 50, 9: 2, 10: 3, 11: 4, 12: 100, 13: 1, 14: 1.5, 15: 1, 16: 1, 17: 1, 18: 100, 19: 5, 20: 6, 21: 50}
    rows = [("M1", z(day0 + dt.timedelta(hours=h - 1)), 3600, v) for h, v in he.items()]
    rows += [("M3", z(day0 + dt.timedelta(hours=h - 1)), 3600, "" if h == 14 else v) for h, v in he.items() if h != 10]
    for h in range(8, 22):
        for q in range(4):
            v = (0.5 if h in (9, 10, 11, 19, 20) else [0.1, 0.2, 0.3, 0.4][q] if h == 13
                 else 9.0 if h in (12, 18) else 0.25)
            rows.append(("M2", z(day0 + dt.timedelta(hours=h - 1, minutes=15 * q)), 900, v))
    event = {"event_id": "A", "iso": "PJM", "start": "2026-07-15T16:00:00Z", "end": "2026-07-15T21:00:00Z",
             "timezone": "America/New_York"}
    frame, err = baseline(tmp_path, capsys, "pjm_same_day_3_2", rows[::-1], event)
    assert column(frame, "M1", "baseline_kw") == [4.0] * 5
    assert column(frame, "M1", "reduction_kw") == [3.0, 2.5, 3.0, 3.0, 3.0]
    assert column(frame, "M2", "baseline_kw") == [2.0] * 5 and column(frame, "M2", "load_kw")[0] == 1.0
    assert column(frame, "M3", "baseline_kw") == [None] * 5
    assert column(frame, "M3", "load_kw") == [1.0, None, 1.0, 1.0, 1.0]
    assert column(frame, "M3", "reduction_kw") == [None] * 5
    assert set(frame["interval_s"]) == {3600}
    assert "unverified: pjm_same_day_3_2.interval_s=3600" in err and "pre_window_h" not in err


@pytest.mark.parametrize("day", ["2026-03-08", "2026-11-01"])
def test_same_day_on_dst_days_counts_elapsed_hours(day, tmp_path, capsys):
    """Event 08:00-10:00Z (spring: 04:00-06:00 EDT; fall: 03:00-05:00 EST). Skip 07-08Z, average 04-07Z (1, 2, 3)
    and, after skipping 10-11Z, 11-13Z (4, 5): CBL 3.0 kW; load 0.5 -> reduction 2.5. The windows are counted in
    elapsed hours across the clock change (the reading the code takes)."""
    values = {3: 40, 4: 1, 5: 2, 6: 3, 7: 40, 8: 0.5, 9: 0.5, 10: 40, 11: 4, 12: 5, 13: 40}
    rows = [("M1", f"{day}T{h:02d}:00:00Z", 3600, v) for h, v in values.items()]
    event = {"event_id": "B", "iso": "PJM", "start": f"{day}T08:00:00Z", "end": f"{day}T10:00:00Z",
             "timezone": "America/New_York"}
    frame, _ = baseline(tmp_path, capsys, "pjm_same_day_3_2", rows, event)
    assert column(frame, "M1", "baseline_kw") == [3.0, 3.0]
    assert column(frame, "M1", "reduction_kw") == [2.5, 2.5]


# --- pjm_fsl: PLC - Load x LF ---------------------------------------------------------------------------------

def test_fsl_both_readings_and_the_export_floor(tmp_path, capsys):
    """PLC 6.1, LF 1.05. Load 4 kW: 6.1 - 4.2 = 1.9 (default); (6.1 - 4) x 1.05 = 2.205 (other reading).
    Export -2 kW: floored at 0 -> 6.1; without the floor, other reading (6.1 + 2) x 1.05 = 8.505. M2 15-minute
    0.25..1.0 kWh = 2.5 kW: 6.1 - 2.625 = 3.475, or 3.6 x 1.05 = 3.78; its 19:30 row is missing: empty."""
    rows = [("M1", "2026-07-15T18:00:00Z", 3600, 4.0), ("M1", "2026-07-15T19:00:00Z", 3600, -2.0),
            ("M2", "2026-07-15T18:00:00Z", 900, 0.25), ("M2", "2026-07-15T18:15:00Z", 900, 0.5),
            ("M2", "2026-07-15T18:30:00Z", 900, 0.75), ("M2", "2026-07-15T18:45:00Z", 900, 1.0),
            ("M2", "2026-07-15T19:00:00Z", 900, 0.5), ("M2", "2026-07-15T19:15:00Z", 900, 0.5),
            ("M2", "2026-07-15T19:45:00Z", 900, 0.5)]
    event = {"event_id": "D", "iso": "PJM", "start": "2026-07-15T18:00:00Z", "end": "2026-07-15T20:00:00Z",
             "timezone": "America/New_York", "plc_kw": 6.1, "loss_factor": 1.05}
    frame, err = baseline(tmp_path, capsys, "pjm_fsl", rows, event)
    assert column(frame, "M1", "reduction_kw") == [1.9, 6.1]
    assert column(frame, "M2", "reduction_kw") == [3.475, None] and column(frame, "M2", "load_kw") == [2.5, None]
    assert column(frame, "M1", "baseline_kw") == [6.1, 6.1]
    assert 'unverified: pjm_fsl.reading="plc_minus_load_times_lf"' in err
    frame, err = baseline(tmp_path, capsys, "pjm_fsl", rows, event,
                          {"reading": "plc_minus_load_all_times_lf", "load_floor_kw": None})
    assert column(frame, "M1", "reduction_kw") == [2.205, 8.505]
    assert column(frame, "M2", "reduction_kw") == [3.78, None]
    assert "pjm_fsl.reading" not in err and "pjm_fsl.load_floor_kw" not in err


def test_fsl_without_plc_is_exit_1_naming_the_file_and_key(tmp_path, capsys):
    meter = write_meter(tmp_path / "METER.csv", [("M1", "2026-07-15T18:00:00Z", 3600, 4.0)])
    (tmp_path / "EVENT.json").write_text(json.dumps({"event_id": "D", "iso": "PJM", "start": "2026-07-15T18:00:00Z",
                                                     "end": "2026-07-15T19:00:00Z", "timezone": "America/New_York"}))
    code, out, err = run(["baseline", "--method", "pjm_fsl", "--meter", meter, "--event",
                          str(tmp_path / "EVENT.json")], capsys)
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [f"der: {tmp_path / 'EVENT.json'}: key 'plc_kw': missing; pjm_fsl needs it"]


# --- nyiso_acl: mean of the top 20 of the 40 SCR Load Zone Peak Hours, prior equivalent Capability Period ------

def test_acl_top_20_of_the_40_peak_hours_of_last_summer(tmp_path, capsys):
    """Event Mon 2026-07-20 -> Summer 2025. The 40 peak hours: 2025-07-01..20 at 17Z and 18Z. M1 draws k kW in
    peak hour k (1..40): top 20 = 21..40, ACL 30.5. M2 the same at 15 minutes but one quarter of hour 40
    missing: that hour does not count, top 20 = 20..39, ACL 29.5. Decoys outside the peak hours (a 100 kW HB8
    hour, 300 kW in winter, 500 kW this June) must not count, with the given hours or the proxy."""
    peaks = [dt.datetime(2025, 7, 1 + d, hz, tzinfo=UTC) for d in range(20) for hz in (17, 18)]
    rows = []
    for k, t in enumerate(peaks, start=1):
        rows.append(("M1", z(t), 3600, float(k)))
        rows += [("M2", z(t + dt.timedelta(minutes=15 * q)), 900, k / 4) for q in range(4) if (k, q) != (40, 2)]
    rows += [("M1", "2025-07-01T12:00:00Z", 3600, 100.0), ("M1", "2025-11-15T17:00:00Z", 3600, 300.0),
             ("M1", "2026-06-15T17:00:00Z", 3600, 500.0),
             ("M1", "2026-07-20T18:00:00Z", 3600, 10.0), ("M1", "2026-07-20T19:00:00Z", 3600, 12.0)]
    rows += [("M2", z(dt.datetime(2026, 7, 20, 18, tzinfo=UTC) + dt.timedelta(minutes=15 * q)), 900, 2.0)
             for q in range(8)]
    event = {"event_id": "E", "iso": "NYISO", "start": "2026-07-20T18:00:00Z", "end": "2026-07-20T20:00:00Z",
             "timezone": "America/New_York"}
    for params in ({"peak_hours_utc": [z(t) for t in peaks]}, None):
        frame, err = baseline(tmp_path, capsys, "nyiso_acl", rows, event, params)
        assert column(frame, "M1", "baseline_kw") == [30.5, 30.5]
        assert column(frame, "M1", "reduction_kw") == [20.5, 18.5]
        assert column(frame, "M2", "baseline_kw") == [29.5, 29.5] and column(frame, "M2", "load_kw") == [8.0, 8.0]
        assert ("proxy" in err) == (params is None)


# --- isone_mean_10_of_10 on the Mondays after both clock changes --------------------------------------------

@pytest.mark.parametrize("case", ["spring", "fall"])
def test_isone_mean_10_of_10_after_a_clock_change(case, tmp_path, capsys):
    """Event 14:00-15:00 local on the Monday after the change, notified at 12:00 local; one dispatched day.
    The 10 most recent non-dispatched weekdays draw 1..10 kW (most recent first) in 14:00-15:00 local: mean 5.5.
    The local hour that the same UTC time falls in on those days (13:00 in spring, 15:00 in fall) draws 50 kW,
    weekends 200 kW, the dispatched day 1000 kW. Adjustment: the hour before notice, 11:00-12:00 local, is 2 kW
    on those days and 3 kW on the event day: +1. Baseline 6.5 kW, load 1 kW, reduction 5.5 kW (900 s rows)."""
    if case == "spring":
        ev, dispatched, start, decoy = dt.date(2026, 3, 9), dt.date(2026, 3, 4), "2026-03-09T18:00:00Z", 13
        order = [dt.date(2026, 3, d) for d in (6, 5, 3, 2)] + [dt.date(2026, 2, d) for d in (27, 26, 25, 24, 23, 20)]
    else:
        ev, dispatched, start, decoy = dt.date(2026, 11, 2), dt.date(2026, 10, 28), "2026-11-02T19:00:00Z", 15
        order = [dt.date(2026, 10, d) for d in (30, 29, 27, 26, 23, 22, 21, 20, 19, 16)]
    rank = {d: i + 1 for i, d in enumerate(order)}

    def kw(day, hour):
        if day == ev:
            return {11: 3.0, 14: 1.0}.get(hour, 7.0)
        if day.weekday() >= 5:
            return 200.0
        if day == dispatched:
            return 1000.0
        return {14: float(rank.get(day, 900)), decoy: 50.0, 11: 2.0}.get(hour, 7.0)

    rows = local_days(ev - dt.timedelta(days=95), ev, kw)
    t0 = pd.Timestamp(start)
    event = {"event_id": "F", "iso": "ISO-NE", "start": start, "end": z(t0 + pd.Timedelta(hours=1)),
             "timezone": "America/New_York", "notified_at": z(t0 - pd.Timedelta(hours=2)),
             "other_event_days": [dispatched.isoformat()]}
    frame, err = baseline(tmp_path, capsys, "isone_mean_10_of_10", rows, event)
    assert column(frame, "M1", "baseline_kw") == [6.5] * 4
    assert column(frame, "M1", "reduction_kw") == [5.5] * 4
    assert set(frame["interval_s"]) == {900} and "reported at 900 s" in err


# --- pjm_high_4_of_5 (all parameters unverified) -------------------------------------------------------------

def test_high_4_of_5_ordinary_weekday_low_usage_event_day_and_saa(tmp_path, capsys):
    """Wed 2026-07-15, event 14:00-18:00 EDT; 2026-07-10 is another event day. Weekday levels v: 7/14 10,
    7/13 12, 7/9 1, 7/8 11, 7/7 9, 7/6 14; HE15-18 draw v + 0, 0.5, 1, 1.5 (event means v + 0.75). First five
    (14, 13, 9, 8, 7): mean 9.35, 25 % = 2.34: 7/9 (1.75) is low usage, 7/6 comes in. Highest 4 of
    (10, 12, 11, 9, 14) = 14, 12, 11, 10: CBL 11.75 + 0, 0.5, 1, 1.5. SAA over 10:00-13:00 EDT: days draw v (mean
    11.75), the event day 13.75: +2. Baseline 13.75, 14.25, 14.75, 15.25; load 5."""
    ev = dt.date(2026, 7, 15)
    levels = {dt.date(2026, 7, 14): 10, dt.date(2026, 7, 13): 12, dt.date(2026, 7, 10): 30, dt.date(2026, 7, 9): 1,
              dt.date(2026, 7, 8): 11, dt.date(2026, 7, 7): 9, dt.date(2026, 7, 6): 14, dt.date(2026, 7, 3): 20}

    def kw(day, hour):
        if day == ev:
            return 13.75 if 10 <= hour < 13 else 5.0 if 14 <= hour < 18 else 3.0
        if day.weekday() >= 5:
            return 100.0
        v = levels.get(day, 50.0)
        return v + 0.5 * (hour - 14) if 14 <= hour < 18 else float(v) if 10 <= hour < 13 else 3.0

    rows = local_days(dt.date(2026, 5, 25), ev, kw, step_min=60)
    event = {"event_id": "H", "iso": "PJM", "start": "2026-07-15T18:00:00Z", "end": "2026-07-15T22:00:00Z",
             "timezone": "America/New_York", "other_event_days": ["2026-07-10"]}
    frame, err = baseline(tmp_path, capsys, "pjm_high_4_of_5", rows, event)
    assert column(frame, "M1", "baseline_kw") == [13.75, 14.25, 14.75, 15.25]
    assert column(frame, "M1", "reduction_kw") == [8.75, 9.25, 9.75, 10.25]
    assert "unverified: pjm_high_4_of_5.lookback_days=45" in err
    # PARAMS.json: keep all five, no adjustment: mean(10, 12, 11, 9, 14) = 11.2 + 0, 0.5, 1, 1.5
    frame, err = baseline(tmp_path, capsys, "pjm_high_4_of_5", rows, event, {"weekday_days_kept": 5, "adjustment": "none"})
    assert column(frame, "M1", "baseline_kw") == [11.2, 11.7, 12.2, 12.7]
    assert "weekday_days_kept" not in err and "pjm_high_4_of_5.adjustment=" not in err
    # a cap of 10 % of the window CBL: SAA min(2, 1.175)
    frame, _ = baseline(tmp_path, capsys, "pjm_high_4_of_5", rows, event, {"adjustment_cap_fraction": 0.1})
    assert column(frame, "M1", "baseline_kw") == [12.925, 13.425, 13.925, 14.425]


@pytest.mark.parametrize("case", ["spring", "fall"])
def test_high_4_of_5_sunday_on_the_clock_change_day(case, tmp_path, capsys):
    """Sunday event 14:00-16:00 local on the change day itself: highest 2 of the 3 prior Sundays.
    Spring 2026-03-08: Sundays 3/1, 2/22, 2/15 draw 6, 9, 8 -> 8.5; SAA (10:00-13:00 local): 5 on those days,
    6 on the event day: +1 -> 9.5; load 2 -> 7.5. Fall 2026-11-01: 10/25, 10/18, 10/11 draw 7, 3, 5 -> 6;
    SAA 3 - 4 = -1 -> 5; load 1 -> 4. The neighbouring local hours draw 40 kW (what a UTC match would read)."""
    if case == "spring":
        ev, start = dt.date(2026, 3, 8), "2026-03-08T18:00:00Z"
        sundays, window, today, load, expect = {dt.date(2026, 3, 1): 6, dt.date(2026, 2, 22): 9,
                                                dt.date(2026, 2, 15): 8}, 5.0, 6.0, 2.0, (9.5, 7.5)
    else:
        ev, start = dt.date(2026, 11, 1), "2026-11-01T19:00:00Z"
        sundays, window, today, load, expect = {dt.date(2026, 10, 25): 7, dt.date(2026, 10, 18): 3,
                                                dt.date(2026, 10, 11): 5}, 4.0, 3.0, 1.0, (5.0, 4.0)

    def kw(day, hour):
        if day == ev:
            return today if 10 <= hour < 13 else load if 14 <= hour < 16 else 2.0
        if day.weekday() != 6:
            return 100.0
        if 14 <= hour < 16:
            return float(sundays.get(day, 0.5))
        return 40.0 if hour in (13, 16) else window if 10 <= hour < 13 else 3.0

    rows = local_days(ev - dt.timedelta(days=50), ev, kw)
    event = {"event_id": "I", "iso": "PJM", "start": start, "end": z(pd.Timestamp(start) + pd.Timedelta(hours=2)),
             "timezone": "America/New_York"}
    frame, _ = baseline(tmp_path, capsys, "pjm_high_4_of_5", rows, event)
    assert column(frame, "M1", "baseline_kw") == [expect[0]] * 2
    assert column(frame, "M1", "reduction_kw") == [expect[1]] * 2


# --- bad input to der baseline: one line, exit 1, no traceback -------------------------------------------------

@pytest.mark.parametrize("params, expected", [
    ({"weekday_days_kept": 4.5}, "key 'pjm_high_4_of_5.weekday_days_kept': expected a whole number, got 4.5"),
    ({"adjustment": "foo"}, "key 'pjm_high_4_of_5.adjustment': 'foo' is not one of additive, multiplicative, none"),
    ({"adjustment_anchor": "x"}, "key 'pjm_high_4_of_5.adjustment_anchor': 'x' is not one of"),
    ({"interval_s": 0}, "key 'pjm_high_4_of_5.interval_s': must be >= 1, got 0"),
    ({"interval_s": 1000}, "key 'pjm_high_4_of_5.interval_s': 1000 s neither divides nor is a multiple of an hour"),
    ({"lookback_days": -3}, "key 'pjm_high_4_of_5.lookback_days': must be >= 1, got -3"),
    ({"lookback_days": None}, "key 'pjm_high_4_of_5.lookback_days': may not be null"),
    ({"adjustment_cap_fraction": -0.1}, "key 'pjm_high_4_of_5.adjustment_cap_fraction': must be >= 0"),
    ({"nyiso_acl.peak_hours_utc": ["2025-07-01T17:30:00Z"]}, "key 'nyiso_acl.peak_hours_utc': every hour needs"),
])
def test_bad_parameter_values_are_one_line_exit_1(params, expected, tmp_path, capsys):
    meter = write_meter(tmp_path / "METER.csv", [("M1", "2026-07-15T18:00:00Z", 3600, 4.0)])
    (tmp_path / "EVENT.json").write_text(json.dumps({"event_id": "H", "iso": "PJM", "start": "2026-07-15T18:00:00Z",
                                                     "end": "2026-07-15T19:00:00Z", "timezone": "America/New_York"}))
    (tmp_path / "PARAMS.json").write_text(json.dumps(params))
    code, out, err = run(["baseline", "--method", "pjm_high_4_of_5", "--meter", meter, "--event",
                          str(tmp_path / "EVENT.json"), "--params", str(tmp_path / "PARAMS.json")], capsys)
    assert code == 1 and out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and expected in err


def test_meter_row_longer_than_the_header_is_named(tmp_path, capsys):
    (tmp_path / "METER.csv").write_text(HEADER + "\nM1,2026-07-15T16:00:00Z,3600,1,5\n")
    (tmp_path / "EVENT.json").write_text(json.dumps({"event_id": "A", "iso": "PJM", "start": "2026-07-15T16:00:00Z",
                                                     "end": "2026-07-15T17:00:00Z", "timezone": "America/New_York"}))
    code, out, err = run(["baseline", "--method", "pjm_same_day_3_2", "--meter", str(tmp_path / "METER.csv"),
                          "--event", str(tmp_path / "EVENT.json")], capsys)
    assert code == 1 and out == "" and "Traceback" not in err and "FutureWarning" not in err
    assert err.strip().splitlines() == [f"der: {tmp_path / 'METER.csv'}: row 2: has 5 cells but the header has 4 "
                                        "(meter_id,interval_start,interval_s,grid_kwh)"]


# --- der settle: one error of each class, dollars by hand ------------------------------------------------------

STATEMENT_HEADER = ("statement_id,iso,resource_id,event_id,interval_start,interval_s,iso_baseline_kw,iso_load_kw,"
                    "iso_reduction_kwh,rate_usd_per_mwh,amount_usd")
# site -> (meter, resource_id, status, PLC kW, window kW, event kW)
SITES = {"S1": ("MA1", "R-A", "active", 3.91, 2.0, 0.5), "S2": ("MA2", "R-A", "active", 7.87, 3.0, 1.0),
         "S3": ("MC3", "", "active", 5.47, 30.0, 10.0), "S4": ("MB4", "R-B", "active", 5.0, None, None),
         "S5": ("MC5", "R-C", "retired", 5.0, 5.0, 1.0), "S6": ("MD6", "R-D", "active", 5.47, 10.0, 4.0)}
EVENTS = [{"event_id": "E1", "iso": "PJM", "start": "2026-07-15T16:00:00Z", "end": "2026-07-15T18:00:00Z",
           "timezone": "America/New_York", "method": "pjm_same_day_3_2", "rate_usd_per_mwh": 2000},
          {"event_id": "E2", "iso": "PJM", "start": "2026-07-16T16:00:00Z", "end": "2026-07-16T17:00:00Z",
           "timezone": "America/New_York", "method": "pjm_same_day_3_2", "rate_usd_per_mwh": 2000},
          {"event_id": "E3", "iso": "PJM", "start": "2026-07-17T16:00:00Z", "end": "2026-07-17T17:00:00Z",
           "timezone": "America/New_York", "method": "pjm_fsl", "rate_usd_per_mwh": 2000, "plc_kw": 6.1,
           "loss_factor": 1.05}]
T1, T2, U = "2026-07-15T16:00:00Z", "2026-07-15T17:00:00Z", "2026-07-16T16:00:00Z"
LINES = [  # (line, hand-expected class, hand-expected usd_at_stake)
    (f"ST1,PJM,R-A,E1,{T1},3600,5.0,1.5,3.5,2000,7.00", "matched", 0.0),
    (f"ST1,PJM,R-A,E1,{T2},3600,4.5,1.5,3.0,2000,6.00", "baseline_mismatch", 1.00),  # ours 3.5 kWh = $7.00
    (f"ST1,PJM,PJM-COMED,E1,{T1},3600,30,10,20,2000,40.01", "matched", 0.0),  # 1 cent off, 0.025 % of $40
    (f"ST1,PJM,PJM-COMED,E1,{T2},3600,30,12,18,2000,36.00", "load_mismatch", 4.00),  # ours 20 kWh = $40
    (f"ST1,PJM,R-B,E1,{T1},3600,4,1,3,2000,6.00", "missing_ami", None),  # S4 has no meter rows in the event
    (f"ST1,PJM,R-B,E1,{T2},3600,4,1,3,2000,6.00", "missing_ami", None),
    (f"ST1,PJM,R-C,E1,{T1},3600,3,1,2,2000,4.00", "registration_mismatch", -4.00),  # R-C's only site is retired
    (f"ST1,PJM,R-D,E1,{T1},3600,10,4,6,1800,10.80", "rate_mismatch", 1.20),  # ours 6 kWh x 2000 = $12.00
    (f"ST1,PJM,R-D,E1,{T2},3600,10,4,6,2000,12.50", "arithmetic", -0.50),  # 6 x 2000 / 1000 = 12.00, not 12.50
    (f"ST1,PJM,R-A,E2,{U},3600,5.0,1.5,3.5,2000,7.00", "matched", 0.0),
    (f"ST1,PJM,R-D,E2,{U},3600,,,6,2000,12.00", "matched", 0.0),  # baseline and load not reported
]
# and two intervals the statement lacks (E2, 16:00Z): PJM-COMED (ours 20 kWh = +$40.00) and R-B (no AMI: unpriced)


def settle_inputs(d):
    rows = []
    for site, (meter, resource, status, plc, _, _) in SITES.items():
        rows.append({"subscriber_id": f"C-{site}", "site_id": site, "timezone": "America/New_York", "iso": "PJM",
                     "zone": "COMED", "resource_id": resource, "plc_kw": plc, "interconnection_type": "nem",
                     "export_allowed": "false", "opt_out": "false", "site_status": status, "meter_id": meter,
                     "meter_interval_min": "15", "device_id": f"B-{site}", "device_type": "battery", "rated_kw": "5",
                     "capacity_kwh": "13.5", "device_status": "retired" if status == "retired" else "active"})
    pd.DataFrame(rows).to_csv(d / "REGISTRY.csv", index=False, lineterminator="\n")
    (d / "EVENTS.json").write_text(json.dumps(EVENTS))
    meter = []
    for e in EVENTS:
        s, end = pd.Timestamp(e["start"]), pd.Timestamp(e["end"])
        for t in pd.date_range(s - pd.Timedelta(hours=6), end + pd.Timedelta(hours=5), freq="15min", inclusive="left"):
            for meter_id, _, _, _, window, during in SITES.values():
                if window is None:  # S4: rows outside the event only
                    if not s <= t < end:
                        meter.append((meter_id, t.strftime("%Y-%m-%dT%H:%M:%SZ"), 900, 1.0))
                    continue
                kw = during if s <= t < end else window if (t < s - pd.Timedelta(hours=1)
                                                            or t >= end + pd.Timedelta(hours=1)) else 99.0
                meter.append((meter_id, t.strftime("%Y-%m-%dT%H:%M:%SZ"), 900, kw / 4))
    write_meter(d / "METER.csv", meter)


def settle(d, statement_text, capsys, out=None):
    (d / "STATEMENT.csv").write_text(statement_text)
    argv = ["settle", "--iso", "pjm", "--statement", str(d / "STATEMENT.csv"), "--meter", str(d / "METER.csv"),
            "--events", str(d / "EVENTS.json"), "--registry", str(d / "REGISTRY.csv")]
    return run(argv + (["--out", str(out)] if out else []), capsys)


def test_settle_one_error_of_each_class_with_dollars_by_hand(tmp_path, capsys, isolated_home):
    settle_inputs(tmp_path)
    text = STATEMENT_HEADER + "\n" + "\n".join(line for line, _, _ in LINES) + "\n"
    code, out, err = settle(tmp_path, text, capsys, out=tmp_path / "out")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == {"n_lines", "matched", "discrepancies", "usd_at_stake", "by_class"}
    assert (summary["n_lines"], summary["matched"], summary["discrepancies"]) == (11, 4, 9)
    # 1.00 + 4.00 - 4.00 + 1.20 - 0.50 + 40.00 (PJM-COMED missing from E2) = 41.70
    assert summary["usd_at_stake"] == 41.70
    by = summary["by_class"]
    assert {k: (v["n"], v["usd_at_stake"], v["unpriced"]) for k, v in by.items()} == {
        "registration_mismatch": (3, 36.00, 1), "rate_mismatch": (1, 1.20, 0), "arithmetic": (1, -0.50, 0),
        "missing_ami": (2, 0.0, 2), "load_mismatch": (1, 4.00, 0), "baseline_mismatch": (1, 1.00, 0)}
    table = pd.read_csv(tmp_path / "out" / "discrepancies.csv", keep_default_na=True)
    assert list(table.columns) == ["statement_id", "resource_id", "event_id", "interval_start", "ours_kwh", "iso_kwh",
                                   "delta_kwh", "usd_at_stake", "class", "evidence"]
    got = {(r.resource_id, r.event_id, r.interval_start): (r["class"], None if pd.isna(r.usd_at_stake)
                                                           else round(r.usd_at_stake, 2)) for _, r in table.iterrows()}
    want = {}
    for line, klass, usd in LINES:
        cells = line.split(",")
        if klass != "matched":
            want[(cells[2], cells[3], cells[4])] = (klass, usd)
    want[("PJM-COMED", "E2", U)] = ("registration_mismatch", 40.00)
    want[("R-B", "E2", U)] = ("registration_mismatch", None)
    assert got == want
    row = table[(table["resource_id"] == "R-A") & (table["class"] == "baseline_mismatch")].iloc[0]
    assert (row.ours_kwh, row.iso_kwh, row.delta_kwh) == (3.5, 3.0, 0.5)
    for evidence in table["evidence"]:
        folder = (tmp_path / "out" / evidence).parent
        page = (folder / "report.html").read_text()
        png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        records = pd.read_csv(folder / "evidence.csv")
        assert records["record"].iloc[0] == "statement_line" and (records["record"] == "meter_interval").any()


def test_settle_fsl_uses_each_sites_registry_plc_and_its_own_arithmetic(tmp_path, capsys, isolated_home):
    """E3 (FSL, LF 1.05) for R-A: S1 PLC 3.91, load 0.5 -> 3.91 - 0.525 = 3.385; S2 PLC 7.87, load 1.0 ->
    7.87 - 1.05 = 6.82; R-A = 10.205 kWh = $20.41 (the event's plc_kw 6.1 would have given 10.625).
    The ISO reports PLC 11.78, load 2.0 and 11.78 - 2.1 = 9.68 kWh, $19.36: consistent for FSL, so the
    class is load_mismatch (2.0 vs our 1.5 kW), not arithmetic; at stake 20.41 - 19.36 = +1.05."""
    settle_inputs(tmp_path)
    t = "2026-07-17T16:00:00Z"
    for line, klass, usd in [(f"ST2,PJM,R-A,E3,{t},3600,11.78,1.5,10.205,2000,20.41", "matched", 0.0),
                             (f"ST2,PJM,R-A,E3,{t},3600,11.78,2.0,9.68,2000,19.36", "load_mismatch", 1.05)]:
        out_dir = tmp_path / f"out-{klass}"
        code, out, err = settle(tmp_path, STATEMENT_HEADER + "\n" + line + "\n", capsys, out=out_dir)
        assert code == 0, err
        assert "PLC per site from the registry's plc_kw" in err
        table = pd.read_csv(out_dir / "discrepancies.csv")
        ra = table[table["resource_id"] == "R-A"]
        if klass == "matched":
            assert ra.empty and json.loads(out)["matched"] == 1
        else:
            assert ra["class"].tolist() == [klass] and ra["usd_at_stake"].round(2).tolist() == [usd]


def test_settle_mixed_interval_lengths_are_rejected_and_quarantined(tmp_path, capsys, isolated_home):
    settle_inputs(tmp_path)
    text = (STATEMENT_HEADER + "\n" + LINES[0][0] + "\n"
            + "ST1,PJM,R-A,E1,2026-07-15T17:15:00Z,900,5,1.5,0.875,2000,1.75\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "previous.txt").write_text("kept")
    code, out, err = settle(tmp_path, text, capsys, out=tmp_path / "out")
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"der: {tmp_path / 'STATEMENT.csv'}: row 3, column interval_s: 900 s, but event 'E1' has 3600 s lines (row 2); "
        "one interval length per event"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["previous.txt"]
    sha = hashlib.sha256(text.encode()).hexdigest()
    engine = sa.create_engine(f"sqlite:///{isolated_home / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT sha256, status FROM raw_payloads")).all()
    assert [tuple(r) for r in rows] == [(sha, "quarantined")]
    assert (isolated_home / "raw" / sha[:2] / sha).read_bytes() == text.encode()
