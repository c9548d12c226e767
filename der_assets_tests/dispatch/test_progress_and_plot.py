"""The live event view (execute_plan's per-interval progress lines), delivery with missing batteries,
coverage, and the dispatch picture on small hand-made frames."""

from __future__ import annotations

import asyncio
import datetime as dt
import io

import numpy as np
import pandas as pd
import pytest

from der_assets.dispatch.adapters import Ack
from der_assets.dispatch.execution import IntervalProgress, execute_plan
from der_assets.dispatch.performance import coverage, delivery, verdict
from der_assets.dispatch.plot import plot_dispatch, soc_bands

T0 = pd.Timestamp("2026-07-15T14:10Z")
STEP = pd.Timedelta(minutes=5)


class Clock:
    def __init__(self, at: pd.Timestamp):
        self.at = at

    def now(self) -> pd.Timestamp:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.at += pd.Timedelta(seconds=seconds)


def _plan(intervals: int = 2) -> pd.DataFrame:
    return pd.DataFrame([{"battery_id": b, "interval_start": T0 + k * STEP, "setpoint_kw": 2.0}
                         for b in ("bat-1", "bat-2", "bat-3") for k in range(intervals)])


BATTERIES = pd.DataFrame({"battery_id": ["bat-1", "bat-2", "bat-3"], "site_id": ["s1", "s2", "s3"],
                          "source": ["sonnen"] * 3})


def _device(clock: Clock, refuse_from: pd.Timestamp | None = None):
    """The device side: every battery acknowledges, except bat-2 from `refuse_from` on."""
    sent: list[tuple[pd.Timestamp, str, float | None]] = []

    async def send(battery_id, site_id, source, setpoint_kw, duration_s):
        sent.append((clock.now(), battery_id, setpoint_kw))
        ok = not (battery_id == "bat-2" and setpoint_kw is not None and refuse_from is not None
                  and clock.now() >= refuse_from)
        return Ack(battery_id, site_id, source, setpoint_kw, ok, "ok" if ok else "refused: 400",
                   clock.now().to_pydatetime())

    return send, sent


def test_each_interval_is_one_readable_progress_line():
    clock = Clock(T0 - pd.Timedelta(minutes=1))
    send, _ = _device(clock, refuse_from=T0 + STEP - pd.Timedelta(seconds=60))
    progress: list[IntervalProgress] = []

    def replan(failed, at):
        return pd.DataFrame([{"battery_id": b, "interval_start": at, "setpoint_kw": 3.0} for b in ("bat-1", "bat-3")])

    report = asyncio.run(execute_plan(_plan(), BATTERIES, end=T0 + 2 * STEP, interval_s=300, send=send,
                                      now=clock.now, sleep=clock.sleep, replan=replan, lead_s=60,
                                      on_interval=progress.append))
    assert report.failed == {"bat-2"} and report.replans == 1
    assert [p.line() for p in progress] == [
        "interval 14:10Z: 3 setpoints sent, 3 acknowledged, 0 failed, re-planned 0, 6.0 kW commanded; "
        "delivered so far not yet measured",
        # bat-2 refuses; its share goes to bat-1 and bat-3 (3 kW each), so 3 + 2 setpoints went out
        "interval 14:15Z: 5 setpoints sent, 4 acknowledged, 1 failed (bat-2), re-planned 1, 6.0 kW commanded; "
        "delivered so far not yet measured",
    ]
    assert progress[1].discharging == ("bat-1", "bat-3")
    assert progress[1].line(41.25, 50.0).endswith("; delivered so far 41.2 kWh of 50.0 kWh")


def test_an_interval_already_over_is_not_sent():
    clock = Clock(T0 + STEP + pd.Timedelta(seconds=30))  # a run resumed inside the second interval
    send, sent = _device(clock)
    progress: list[IntervalProgress] = []
    asyncio.run(execute_plan(_plan(), BATTERIES, end=T0 + 2 * STEP, interval_s=300, send=send, now=clock.now,
                             sleep=clock.sleep, on_interval=progress.append))
    assert [p.interval_start for p in progress] == [T0 + STEP]
    setpoints = [(b, sp) for _, b, sp in sent]
    assert setpoints == [("bat-1", 2.0), ("bat-2", 2.0), ("bat-3", 2.0), ("bat-1", None), ("bat-2", None),
                         ("bat-3", None)]


def _battery(device: str, starts, interval_s: int, kwh: float) -> pd.DataFrame:
    return pd.DataFrame({"device_id": device, "channel": "battery_kwh", "interval_start": pd.DatetimeIndex(starts),
                         "interval_s": interval_s, "value": kwh})


START = pd.Timestamp("2026-07-15T18:00Z")
EVENT = pd.date_range(START, periods=6, freq="5min")


def test_a_battery_that_has_not_reported_is_unknown_not_zero():
    # A reports 5-minute rows at 4 kW for the first 15 minutes only; B has reported nothing
    rows = _battery("A", EVENT[:3], 300, 4.0 * 5 / 60)
    perf = delivery(rows, EVENT, np.full(6, 6.0), 5, ["A", "B"])
    assert perf["delivered_kwh"].iloc[:3].tolist() == pytest.approx([1 / 3] * 3)
    assert perf["delivered_kwh"].iloc[3:].isna().all() and perf["delivered_pct"].iloc[3:].isna().all()
    assert perf["batteries_reported"].tolist() == [1, 1, 1, 0, 0, 0]
    assert perf["batteries_missing"].tolist() == [1, 1, 1, 2, 2, 2]
    per_battery = coverage(rows, START, START + 6 * STEP, ["A", "B"])
    assert per_battery["coverage_pct"].tolist() == [50.0, 0.0]
    judged = verdict(per_battery, threshold_pct=95.0, now=START + pd.Timedelta(hours=1), event_end=START + 6 * STEP,
                     give_up=pd.Timedelta(hours=48))
    assert (judged.status, judged.coverage_pct, judged.missing, judged.incomplete) == ("provisional", 25.0,
                                                                                      ("A", "B"), False)
    late = verdict(per_battery, threshold_pct=95.0, now=START + pd.Timedelta(hours=49), event_end=START + 6 * STEP,
                   give_up=pd.Timedelta(hours=48))
    assert (late.status, late.incomplete) == ("final", True)


def test_coverage_counts_seconds_once_and_a_quarter_hour_bucket_covers_three_intervals():
    rows = pd.concat([_battery("A", [START, START + 3 * STEP], 900, 0.5),
                      _battery("A", [START], 300, 0.1),  # overlaps the bucket: not counted twice
                      _battery("B", [START], 900, np.nan)], ignore_index=True)  # a missing value covers nothing
    per_battery = coverage(rows, START, START + 6 * STEP, ["A", "B"])
    assert per_battery.set_index("battery_id")["coverage_pct"].to_dict() == {"A": 100.0, "B": 0.0}


def test_soc_bands_and_the_dispatch_picture():
    t = pd.DatetimeIndex([START, START + STEP])
    soc = pd.DataFrame({"device_id": ["A", "B", "C", "A", "B", "C"], "channel": "soc_pct",
                        "interval_start": t.repeat(3), "interval_s": 300,
                        "value": [40.0, 50.0, 70.0, 38.0, np.nan, 66.0]})
    bands = soc_bands(soc, ["A", "B", "C"])
    assert bands["interval_end"].tolist() == [START + STEP, START + 2 * STEP]
    assert bands[["soc_min_pct", "soc_median_pct", "soc_max_pct", "batteries_reporting"]].values.tolist() == [
        [40.0, 50.0, 70.0, 3], [38.0, 52.0, 66.0, 2]]
    kw = pd.DataFrame({"interval_start": t, "instructed_kw": [6.0, 6.0], "planned_kw": [6.0, 5.0],
                       "delivered_kw": [5.4, np.nan]})
    import matplotlib.image

    png = plot_dispatch(kw, bands, title="EVT-1")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    both = matplotlib.image.imread(io.BytesIO(png))
    alone = matplotlib.image.imread(io.BytesIO(plot_dispatch(kw, None)))
    assert both.shape[1] == alone.shape[1] == 900 and both.shape[0] > alone.shape[0]  # the SoC panel is below


def test_progress_line_names_times_in_utc():
    p = IntervalProgress(pd.Timestamp(dt.datetime(2026, 7, 15, 14, 15, tzinfo=dt.UTC)), 95, 93, ("bat-12", "bat-40"),
                         1, 47.5)
    assert p.line(41.2, 50.0) == ("interval 14:15Z: 95 setpoints sent, 93 acknowledged, 2 failed (bat-12, bat-40), "
                                  "re-planned 1, 47.5 kW commanded; delivered so far 41.2 kWh of 50.0 kWh")
