"""Lifetime counters -> interval energy: rollovers, resets, gaps, and conservation properties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.telemetry.counters import NegativeCounterError, combine_net, counter_to_intervals

T0 = pd.Timestamp("2024-06-01T00:00:00Z")
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def grid(n, step_s=300):
    return pd.date_range(T0, periods=n, freq=f"{step_s}s")


def test_aligned_readings_give_plain_differences():
    out = counter_to_intervals(grid(4), [100.0, 110.0, 125.0, 125.0], interval_s=300)
    assert out["energy"].tolist() == [10.0, 15.0, 0.0]
    assert (out["quality"] == "measured").all()
    assert out["interval_start"].iloc[0] == T0


def test_acc32_rollover_is_unwrapped_and_flagged():
    wrap = 2.0**32
    out = counter_to_intervals(grid(3), [wrap - 5, 4.0, 10.0], interval_s=300, rollover_at=wrap)
    assert out["energy"].tolist() == [9.0, 6.0]
    assert out["flag"].tolist() == ["rollover", ""]
    assert (out["quality"] == "measured").all()


def test_reset_is_missing_not_negative_and_not_zero():
    out = counter_to_intervals(grid(5), [500.0, 520.0, 3.0, 10.0, 30.0], interval_s=300)
    assert out["energy"].iloc[0] == 20.0
    assert np.isnan(out["energy"].iloc[1]) and out["quality"].iloc[1] == "missing" and out["flag"].iloc[1] == "reset"
    assert out["energy"].iloc[2:].tolist() == [7.0, 20.0]


def test_gap_is_spread_linearly_and_marked_estimated():
    t = pd.DatetimeIndex([T0, T0 + pd.Timedelta(minutes=5), T0 + pd.Timedelta(minutes=25)])
    out = counter_to_intervals(t, [0.0, 10.0, 50.0], interval_s=300, max_gap_s=450)
    assert out["energy"].tolist() == pytest.approx([10.0, 10.0, 10.0, 10.0, 10.0])
    assert out["quality"].tolist() == ["measured"] + ["estimated"] * 4
    assert out["energy"].sum() == pytest.approx(50.0)


def test_irregular_stamps_are_interpolated_at_boundaries():
    # readings 30 s after each boundary, 15 Wh per 5 min: inner intervals are exact
    t = grid(4) + pd.Timedelta(seconds=30)
    out = counter_to_intervals(t, [0.0, 15.0, 30.0, 45.0], interval_s=300)
    assert out["interval_start"].tolist() == list(grid(3)[1:])
    assert out["energy"].tolist() == pytest.approx([15.0, 15.0])


def test_window_claims_intervals_without_readings_as_missing():
    out = counter_to_intervals(grid(2, 900) + pd.Timedelta(minutes=15), [0.0, 5.0], interval_s=900,
                               window=(T0, T0 + pd.Timedelta(hours=1)))
    assert len(out) == 4
    assert out["quality"].tolist() == ["missing", "measured", "missing", "missing"]
    assert out["energy"].isna().sum() == 3


def test_negative_lifetime_counter_is_refused():
    with pytest.raises(NegativeCounterError):
        counter_to_intervals(grid(2), [-1.0, 5.0], interval_s=300)


def test_net_register_may_fall():
    out = counter_to_intervals(grid(3), [-100.0, -150.0, -120.0], interval_s=300, bidirectional=True)
    assert out["energy"].tolist() == [-50.0, 30.0]


def test_combine_net_takes_worst_quality():
    a = counter_to_intervals(grid(3), [0.0, 10.0, 20.0], interval_s=300)
    b = counter_to_intervals(grid(3), [5.0, 1.0, 4.0], interval_s=300)  # reset in step 1
    net = combine_net(a, b)
    assert np.isnan(net["energy"].iloc[0]) and net["quality"].iloc[0] == "missing"
    assert net["energy"].iloc[1] == 7.0


# ---- properties -------------------------------------------------------------------------

increments = st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=60)


@FAST
@given(incs=increments, start=st.integers(min_value=0, max_value=2**32 - 1))
def test_property_rollovers_conserve_energy(incs, start):
    """Register = true total mod 2^32: interval energies sum to the true counter difference."""
    wrap = 2**32
    true = start + np.concatenate([[0], np.cumsum(incs)])
    out = counter_to_intervals(grid(len(true)), (true % wrap).astype("float64"), interval_s=300, rollover_at=wrap)
    assert (out["quality"] == "measured").all()
    assert out["energy"].sum() == pytest.approx(float(true[-1] - true[0]), abs=1e-6)
    assert (out["energy"] >= 0).all()


@FAST
@given(
    incs=increments,
    resets=st.lists(st.booleans(), min_size=60, max_size=60),
    extra=st.lists(st.floats(min_value=0.01, max_value=0.99), max_size=40),
)
def test_property_resets_never_negative_never_unflagged_loss(incs, resets, extra):
    """Readings at every boundary plus irregular ones in between, with random resets.

    Each interval is either missing (a reset inside it) or carries exactly the energy the
    counter recorded inside it; nothing is negative and the total matches outside resets.
    """
    n = len(incs)
    # boundary readings at k*300 s plus extra readings at fractional positions
    pos = np.sort(np.concatenate([np.arange(n + 1, dtype=float), np.array(extra) * n]))
    pos = np.unique(np.round(pos, 6))  # distinct at nanosecond resolution (duplicate stamps are the parsers' job)
    m = len(pos) - 1
    step_inc = np.array([incs[int(p) % n] for p in pos[1:]], dtype=float)
    is_reset = np.array([resets[i % 60] for i in range(m)]) & (np.arange(m) > 0)
    restart = 0.5  # a reset restarts the register here, below any earlier value
    values = np.empty(m + 1)
    values[0] = 1_000.0
    for i in range(m):
        is_reset[i] &= values[i] > restart  # only a fall is a detectable reset
        values[i + 1] = restart if is_reset[i] else values[i] + step_inc[i]
    t = T0 + pd.to_timedelta(pos * 300, unit="s")
    out = counter_to_intervals(t, values, interval_s=300)

    k = np.floor(pos[:-1]).astype(int)  # interval holding each step
    expect = pd.Series(np.where(is_reset, np.nan, step_inc)).groupby(k).sum(min_count=1)
    has_reset = pd.Series(is_reset).groupby(k).any()
    assert len(out) == n
    for i, row in out.iterrows():
        if has_reset.get(i, False):
            assert row["quality"] == "missing" and np.isnan(row["energy"]) and row["flag"] == "reset"
        else:
            assert row["quality"] == "measured"
            assert row["energy"] == pytest.approx(expect.get(i, 0.0), abs=1e-6)
    assert (out["energy"].dropna() >= 0).all()
    if not is_reset.any():
        assert out["energy"].sum() == pytest.approx(values[-1] - values[0], abs=1e-6)
