"""The stepped clock the end-to-end test shares between the twin and dispatch, and how
ClockResource hands it to the assets in-process."""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from der_assets.defs.resources import ClockResource
from der_assets.dispatch.clock import DispatchClock, SteppedClock, registered_clock
from der_assets.simulator.hub import ManualClock

T0 = pd.Timestamp("2026-07-15T20:00Z")


def test_time_passes_only_when_dispatch_sleeps_or_the_test_moves_it():
    twin = ManualClock(T0)
    clock = SteppedClock(twin)
    assert clock.now() == clock() == T0
    asyncio.run(clock.sleep(90.5))
    assert twin() == clock.now() == T0 + pd.Timedelta(seconds=90.5)  # the twin sees what dispatch slept
    asyncio.run(clock.sleep(-3))  # an interval already due: no wait, no time
    assert clock.now() == T0 + pd.Timedelta(seconds=90.5)
    assert clock.advance_to(T0 + pd.Timedelta(minutes=5)) == T0 + pd.Timedelta(minutes=5)
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance_to(T0)


def test_clock_resource_in_process_and_its_default():
    clock = SteppedClock(ManualClock(T0))
    with registered_clock("unit", clock):
        assert ClockResource(in_process="unit").clock() is clock
    with pytest.raises(LookupError, match="no in-process clock named 'unit'"):
        ClockResource(in_process="unit").clock()
    assert ClockResource(follow_twin=False).clock() == DispatchClock.wall()  # production: unchanged
