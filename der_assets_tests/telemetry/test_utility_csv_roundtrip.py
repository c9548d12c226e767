"""Utility CSV round trip (hypothesis): canonical grid_kwh rows written in a shipped layout read back the same,
on any day including both DST days, for every layout."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.simulator.greenbutton import day_window
from der_assets.simulator.utility_csv import write_layout
from der_assets.telemetry import parse_payload
from der_assets.telemetry.parsers.utility_csv import shipped_mappings

RECEIVED = pd.Timestamp("2027-01-01T00:00Z")
DAYS = [dt.date(2026, 3, 8), dt.date(2026, 11, 1), dt.date(2026, 7, 15), dt.date(2026, 1, 2)]


@st.composite
def meter_days(draw):
    layout = draw(st.sampled_from(sorted(shipped_mappings())))
    m = shipped_mappings()[layout]
    first = draw(st.sampled_from(DAYS))
    n_days = draw(st.integers(1, 2))
    interval_s = draw(st.sampled_from([900, 3600]))
    start, _ = day_window(m.timezone, first)
    _, end = day_window(m.timezone, first + dt.timedelta(days=n_days - 1))
    grid = pd.date_range(start, end, freq=f"{interval_s}s", inclusive="left")
    wh = draw(st.lists(st.integers(-5000, 5000), min_size=len(grid), max_size=len(grid)))
    quality = draw(st.lists(st.sampled_from(["measured", "measured", "estimated", "missing"]),
                            min_size=len(grid), max_size=len(grid)))
    value = np.where(np.array(quality) == "missing", np.nan, np.array(wh) / 1000.0)
    return m, interval_s, pd.DataFrame({"interval_start": grid, "grid_kwh": value, "quality": quality})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meter_days())
def test_written_layout_reads_back_the_same_rows(case):
    m, interval_s, frame = case
    body = write_layout(m, frame, tz=m.timezone, interval_s=interval_s)
    back = parse_payload("utility_csv", m.name, body, site_id="S-1", tz=m.timezone, received_at=RECEIVED)
    assert list(back["interval_start"]) == list(frame["interval_start"])
    assert set(back["interval_s"]) == {interval_s}
    np.testing.assert_allclose(back["value"].to_numpy(), frame["grid_kwh"].to_numpy(), atol=1e-9, equal_nan=True)
    assert back["quality"].tolist() == frame["quality"].tolist()
