"""The meter matrix's short paths (ids read off sorted runs, a complete month as its own matrix, rows with
gaps scattered without a copy) build exactly the matrix the general path builds, for any input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.settlement.baselines import compute_baseline
from der_assets.settlement.baselines.matrix import (NS, _complete_matrix, _regular_matrix, binned_matrix,
                                                    meter_codes, prepare_meter, span_mask)
from der_assets.settlement.events import Event
from der_assets.settlement.performance import event_baselines, site_table

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
T0 = pd.Timestamp("2026-07-01T00:00Z")


def reference_codes(ids: list) -> tuple[np.ndarray, np.ndarray]:
    """Readable: the distinct ids in order of first appearance, stably sorted by their text; each row's index."""
    seen: list = []
    for i in ids:
        if i not in seen:
            seen.append(i)
    uniques = sorted(seen, key=str)
    return np.array([uniques.index(i) for i in ids], dtype=np.int64), np.array(uniques, dtype=object)


def assert_same_matrix(a, b) -> None:
    assert list(a.meter_ids) == list(b.meter_ids)
    assert (a.t0_ns, a.step_s, a.kw.shape) == (b.t0_ns, b.step_s, b.kw.shape)
    assert np.array_equal(a.kw, b.kw, equal_nan=True)


def general(frame: pd.DataFrame, start=None, end=None):
    """The general path over the readable codes."""
    codes, uniques = reference_codes(list(frame["meter_id"]))
    t_ns = frame["interval_start"].array.asi8
    return binned_matrix(uniques, codes, t_ns, frame["interval_s"].to_numpy(np.int64),
                         frame["grid_kwh"].to_numpy(np.float64), span_mask(t_ns, start, end), start)


IDS = st.one_of(st.lists(st.sampled_from(["M1", "M10", "M2", "A", "b", "É"]), max_size=30),
                st.lists(st.integers(0, 12), max_size=30))


@SETTINGS
@given(IDS, st.booleans())
def test_meter_codes_are_the_readable_codes(ids, sort):
    ids = sorted(ids, key=str) if sort else ids  # sorted rows take the run path, the rest factorize
    codes, uniques = meter_codes(pd.Series(ids, dtype=object))
    want_codes, want_uniques = reference_codes(ids)
    assert list(uniques) == list(want_uniques)
    assert codes.dtype == np.int64 and np.array_equal(codes, want_codes)


@st.composite
def meter_frames(draw):
    """A few meters' rows: complete or with gaps, one interval length or mixed, maybe off the grid, duplicated,
    blank, shuffled; and a span that keeps all, most, some or none of them."""
    n_meters = draw(st.integers(1, 4))
    n_slots = draw(st.integers(1, 12))
    lengths = draw(st.sampled_from([[900], [300], [3600], [900, 3600]]))
    rows, complete = [], draw(st.booleans())
    for m in range(n_meters):
        step = lengths[0] if complete else draw(st.sampled_from(lengths))
        slots = range(n_slots) if complete or draw(st.booleans()) else draw(st.sets(st.integers(0, n_slots - 1)))
        for s in sorted(slots):
            rows.append((f"M{m}", T0.value + s * step * NS, step, float(draw(st.integers(0, 8))) / 4))
    frame = pd.DataFrame(rows, columns=["meter_id", "t", "interval_s", "grid_kwh"])
    if len(frame) and draw(st.booleans()):
        frame.loc[sorted(draw(st.sets(st.integers(0, len(frame) - 1), max_size=3))), "grid_kwh"] = np.nan
    if len(frame) and draw(st.booleans()):  # off the grid, one minute or ten in
        for i in sorted(draw(st.sets(st.integers(0, len(frame) - 1), min_size=1, max_size=2))):
            frame.loc[i, "t"] += draw(st.sampled_from([60, 600])) * NS
    if len(frame) and draw(st.booleans()):
        frame = pd.concat([frame, frame.iloc[[draw(st.integers(0, len(frame) - 1))]]])  # a duplicate
    if draw(st.booleans()):
        frame = frame.sample(frac=1.0, random_state=draw(st.integers(0, 1000)))
    frame = frame.sort_values(["meter_id", "t"], kind="stable") if draw(st.booleans()) else frame
    frame = pd.DataFrame({"meter_id": frame["meter_id"].to_numpy(dtype=object),
                          "interval_start": pd.to_datetime(frame["t"].to_numpy(np.int64), utc=True),
                          "interval_s": frame["interval_s"].to_numpy(np.int64),
                          "grid_kwh": frame["grid_kwh"].to_numpy(np.float64)})
    if draw(st.booleans()):
        return frame, None, None
    first = draw(st.integers(-2, n_slots + 1))
    last = draw(st.integers(first - 1, n_slots + 2))  # first > last: an empty span
    q, s = pd.Timedelta(minutes=15), pd.Timedelta(seconds=1)
    start_off, end_off = draw(st.sampled_from([0, 0, 420])), draw(st.sampled_from([0, 0, 30, 420]))  # edges off the grid
    return frame, T0 + first * q + start_off * s, T0 + last * q + end_off * s


@settings(SETTINGS, max_examples=400)
@given(meter_frames())
def test_prepare_meter_is_the_general_path(case):
    frame, start, end = case
    want = general(frame, start, end)
    assert_same_matrix(prepare_meter(frame, start, end), want)
    assert_same_matrix(prepare_meter(frame, start, end, codes=meter_codes(frame["meter_id"])), want)


def _month(n_meters: int = 3, n_slots: int = 96 * 3) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    t = T0.value + np.arange(n_slots) * 900 * NS
    kwh = rng.uniform(0.1, 1.0, n_meters * n_slots)
    kwh[[5, 200]] = np.nan
    return pd.DataFrame({"meter_id": np.repeat(np.array([f"M{i}" for i in range(n_meters)], dtype=object), n_slots),
                         "interval_start": pd.to_datetime(np.tile(t, n_meters), utc=True),
                         "interval_s": np.int64(900), "grid_kwh": kwh})


def _parts(frame: pd.DataFrame):
    codes, uniques = meter_codes(frame["meter_id"])
    return uniques, codes, frame["interval_start"].array.asi8, frame["interval_s"].to_numpy(), frame["grid_kwh"].to_numpy()


@pytest.mark.parametrize(("start_h", "end_h", "n_slots"), [(20, 50.1, 30 * 4 + 1), (20, 50, 30 * 4), (19.9, 50, 30 * 4),
                                                           (-5, 1, 4), (71, 99, 4), (None, None, 72 * 4)])
def test_a_complete_month_is_its_own_matrix_and_a_span_its_columns(start_h, end_h, n_slots):
    month = _month()
    start = None if start_h is None else T0 + pd.Timedelta(hours=start_h)
    end = None if end_h is None else T0 + pd.Timedelta(hours=end_h)
    fast = _complete_matrix(*_parts(month), start, end)
    assert fast is not None
    assert_same_matrix(fast, general(month, start, end))
    assert fast.kw.shape == (3, n_slots)
    first = 0 if start_h is None else max(0, int(np.ceil(start_h * 4)))
    assert fast.t0_ns == T0.value + first * 900 * NS
    assert fast.kw[1, 0] == month["grid_kwh"].iat[72 * 4 + first] * 4  # kWh per quarter-hour -> kW


def test_a_month_with_gaps_is_scattered_and_cut_the_same_way():
    month = _month().drop(index=[7, 300, 301]).reset_index(drop=True)
    start, end = T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=70)
    uniques, codes, t_ns, interval_s, kwh = _parts(month)
    assert _complete_matrix(uniques, codes, t_ns, interval_s, kwh, start, end) is None
    fast = _regular_matrix(uniques, codes, t_ns, interval_s, kwh, span_mask(t_ns, start, end))
    assert fast is not None
    assert_same_matrix(fast, general(month, start, end))
    assert np.isnan(fast.kw[0, 7 - 4])  # the dropped row, 01:45, is missing, not zero


def test_event_baselines_over_part_of_the_meters_equal_compute_baseline_on_their_rows():
    # Two ISOs: each event reads only its own ISO's meters, from codes renumbered out of one pass over the ids.
    month = _month(n_meters=5, n_slots=96 * 3)
    registry = pd.DataFrame({"site_id": [f"S{i}" for i in range(5)], "meter_id": [f"M{i}" for i in range(5)],
                             "iso": ["PJM", "NYISO", "PJM", "PJM", "NYISO"], "zone": "Z", "site_status": "active"})
    event = Event("E1", "PJM", T0 + pd.Timedelta(hours=52), T0 + pd.Timedelta(hours=54), "America/New_York",
                  method="pjm_same_day_3_2")
    frame, _ = event_baselines(month, [event], site_table(registry))
    own = compute_baseline("pjm_same_day_3_2", month[month["meter_id"].isin(["M0", "M2", "M3"])], event).frame
    pd.testing.assert_frame_equal(frame.drop(columns="event_id"), own)
    assert frame["meter_id"].unique().tolist() == ["M0", "M2", "M3"]


@pytest.mark.parametrize(("off_s", "start_s", "end_s"), [(600, 420, 3600), (60, 0, 1830)])
def test_a_row_off_the_grid_outside_the_span_is_not_cut_into_it(off_s, start_s, end_s):
    # M1's row 10 minutes into 00:00-00:15 starts inside a span from 00:07, M0's 00:00 row does not; they share
    # the matrix column 00:00, so that column cannot simply be cut from the matrix of every row (and the same
    # at the span's end: M0's 00:30 row is in a span to 00:30:30, M1's 00:31 row is not).
    t = [0, 900, 1800, 2700, 0 + off_s, 900 + off_s, 1800 + off_s, 2700 + off_s] if off_s == 600 else \
        [0, 900, 1800, 2700, 0, 900, 1800 + off_s, 2700]
    month = pd.DataFrame({"meter_id": np.array(["M0"] * 4 + ["M1"] * 4, dtype=object),
                          "interval_start": pd.to_datetime([T0.value + s * NS for s in t], utc=True),
                          "interval_s": np.int64(900), "grid_kwh": np.arange(1.0, 9.0)})
    start, end = T0 + pd.Timedelta(seconds=start_s), T0 + pd.Timedelta(seconds=end_s)
    uniques, codes, t_ns, interval_s, kwh = _parts(month)
    assert _regular_matrix(uniques, codes, t_ns, interval_s, kwh, span_mask(t_ns, start, end)) is None
    assert_same_matrix(prepare_meter(month, start, end), general(month, start, end))
