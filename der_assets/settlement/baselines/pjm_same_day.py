"""PJM Same Day (3+2): one flat level from the event day itself.

"The Same Day (3 + 2) method bases the CBL on the average of three hours before event (after
skipping one hour) and two hours after event (after skipping one hour). For an event occurring
in hours ending 13-17, for example, PJM would average hours ending 9-11 and 19-20." (RTO Insider,
2025-02-25, VERIFIED-SECONDARY.) Hours are counted from the event's start and end, so an event
off the hour keeps its windows the same length. The level is NaN unless every slot of both
windows is metered.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from der_assets.settlement.baselines.common import Computed, EventGrid, event_load, gather, v, window_ns
from der_assets.settlement.baselines.matrix import MeterMatrix
from der_assets.settlement.baselines.parameters import Param
from der_assets.settlement.events import Event

NAME = "pjm_same_day_3_2"


def windows(start: pd.Timestamp, end: pd.Timestamp, p: Mapping[str, Param]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """The two [start, end) UTC windows the level averages."""
    h = pd.Timedelta(hours=1)
    pre_end = start - v(p, "pre_gap_h") * h
    post_start = end + v(p, "post_gap_h") * h
    return [(pre_end - v(p, "pre_window_h") * h, pre_end), (post_start, post_start + v(p, "post_window_h") * h)]


def history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    (a, _), (_, d) = windows(event.start, event.end, p)
    return a, d


def level_kw(mx: MeterMatrix, start: pd.Timestamp, end: pd.Timestamp, p: Mapping[str, Param]) -> np.ndarray:
    """Per meter: mean kW over both windows; NaN unless every slot in them is metered."""
    slots = np.concatenate([window_ns(mx, a.value, b.value) for a, b in windows(start, end, p)])
    if slots.size == 0:
        return np.full(len(mx.meter_ids), np.nan)
    return gather(mx, slots).mean(axis=1)


def compute(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, **_) -> Computed:
    level = level_kw(mx, event.start, event.end, p)
    load = event_load(mx, grid)
    notes = []
    step = mx.step_s * 1_000_000_000
    if any((t.value - mx.t0_ns) % step for w in windows(event.start, event.end, p) for t in w):
        notes.append(f"pjm_same_day_3_2: a baseline window edge is not on the {mx.step_s} s meter grid; "
                     "the window is taken as the meter intervals starting inside it")
    return Computed(np.repeat(level[:, None], load.shape[1], axis=1), load, notes=notes)
