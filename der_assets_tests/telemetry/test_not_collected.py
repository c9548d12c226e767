"""Intervals before the platform first polled a device that keeps no history are not collected, not gaps.

Counted by hand on the UTC day 2026-07-20, judged at 15:02. The platform's first sonnen poll
landed at 13:37 (site S-SON); S-SON2 never answered. sonnen and SunSpec are device-local APIs with
no past; SolarEdge has a history API; Fronius' archive has PV but no battery.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.telemetry.daily import DayResult, collection_starts, not_collected
from der_assets.telemetry.quality import collected_gap_runs, review_items
from der_assets.telemetry.schema import CANONICAL_COLUMNS

DAY = pd.Timestamp("2026-07-20T00:00Z")
AS_OF = pd.Timestamp("2026-07-20T15:02Z")
FIRST_POLL = pd.Timestamp("2026-07-20T13:37:12Z")


def _series(site, device, source, channel, reported_from=None, reported_until=None, interval_s=300):
    starts = pd.date_range(DAY, DAY + pd.Timedelta(days=1), freq=f"{interval_s}s", inclusive="left")
    reported = np.zeros(len(starts), dtype=bool)
    if reported_from is not None:
        reported = (starts >= pd.Timestamp(reported_from)) & (starts < pd.Timestamp(reported_until))
    value = np.where(reported, 0.1 + 0.001 * np.arange(len(starts)), np.nan)  # no run reads as stuck
    return pd.DataFrame({"site_id": site, "device_id": device, "source": source, "channel": channel,
                         "interval_start": starts, "interval_s": interval_s, "value": value,
                         "quality": np.where(reported, "measured", "missing"), "received_at": AS_OF,
                         "revision": 0})[CANONICAL_COLUMNS]


def _landed():
    return pd.DataFrame([
        {"source": "sonnen", "site_id": "S-SON", "endpoint": "status", "first_received_at": FIRST_POLL},
        {"source": "sonnen", "site_id": "S-SON", "endpoint": "powermeter", "first_received_at": FIRST_POLL
         + pd.Timedelta(seconds=3)},
        # Fronius: the archive was pulled for the past week, the PowerFlow first polled at 13:37 too
        {"source": "fronius", "site_id": "S-FRO", "endpoint": "GetArchiveData",
         "first_received_at": pd.Timestamp("2026-07-20T13:36Z")},
        {"source": "fronius", "site_id": "S-FRO", "endpoint": "GetPowerFlowRealtimeData",
         "first_received_at": FIRST_POLL},
        {"source": "solaredge", "site_id": "S-SE", "endpoint": "energyDetails",
         "first_received_at": pd.Timestamp("2026-07-20T13:36Z")},
    ])


def _day() -> DayResult:
    rows = pd.concat([
        # reported from 13:40 (the first poll's interval 13:35 could not be integrated), a hole 14:00-14:10
        _series("S-SON", "SON-B", "sonnen", "battery_kwh", "2026-07-20T13:40Z", "2026-07-20T14:00Z"),
        _series("S-SON2", "SON2-B", "sonnen", "battery_kwh"),  # never answered
        _series("S-SE", "SE-PV", "solaredge", "pv_kwh", "2026-07-20T10:00Z", "2026-07-20T16:00Z", 900),
        _series("S-FRO", "FRO-PV", "fronius", "pv_kwh", "2026-07-20T00:00Z", "2026-07-20T15:00Z"),
        _series("S-FRO", "FRO-B", "fronius", "battery_kwh", "2026-07-20T13:45Z", "2026-07-20T15:00Z", 900),
        _series("S-MOD", "MOD-B", "sunspec", "battery_kwh"),  # a source never polled at all
    ], ignore_index=True)
    return DayResult(rows=rows, review=review_items(rows.assign(flag=None)), collection=collection_starts(_landed()))


def test_collection_starts_per_site_and_per_source():
    starts = collection_starts(_landed())
    assert starts.values.tolist() == [
        ["fronius", "S-FRO", FIRST_POLL], ["sonnen", "S-SON", FIRST_POLL],  # the archive is no snapshot
        ["fronius", None, FIRST_POLL], ["sonnen", None, FIRST_POLL]]


def test_before_the_first_poll_is_not_collected_and_everything_else_is_judged():
    day = _day()
    stats = day.stats(AS_OF)
    # sonnen S-SON, 5-min: intervals starting before 13:37:12 are 00:00..13:35 -> 164 not collected; judged are
    #   13:40..14:55 (16, ended by 15:02), of which 14:00..14:55 (12) missing
    # sonnen S-SON2 (the source's first poll stands in): 164 not collected, 16 judged and missing
    # fronius battery, 15-min: 00:00..13:30 -> 55 not collected; judged 13:45..14:45 (5, ended by 15:00), none missing
    # fronius PV (archive) and SolarEdge are judged whole: PV 180 ended, none missing; SolarEdge 60 ended, 40 missing
    # sunspec was never polled: 180 ended intervals judged, all missing
    assert stats["not_collected_intervals"] == 164 + 164 + 55
    assert stats["judged_intervals"] == 16 + 16 + 5 + 180 + 60 + 180
    assert stats["missing"] == 12 + 16 + 0 + 0 + 40 + 180
    assert stats["future_intervals"] == (288 - 180) * 4 + (96 - 60) + (96 - 55 - 5)
    assert stats["rows"] == stats["judged_intervals"] + stats["future_intervals"] + stats["not_collected_intervals"]
    assert stats["gap_pct"] == round(100 * 248 / 457, 3)
    # the not-collected rows are still missing rows, never zero
    nc = day.rows[not_collected(day.rows, day.collection)]
    assert (nc["quality"] == "missing").all() and nc["value"].isna().all()


def test_by_source_names_the_collection_start():
    table = _day().by_source(AS_OF).set_index("source")
    assert table.loc["sonnen", ["judged_intervals", "missing_intervals", "not_collected_intervals"]].tolist() == [
        32, 28, 328]
    assert table.loc["sonnen", "collection_start"] == FIRST_POLL.isoformat()
    assert table.loc["fronius", "not_collected_intervals"] == 55
    assert table.loc["solaredge", "not_collected_intervals"] == 0 and table.loc["solaredge", "collection_start"] is None
    assert table.loc["sunspec", "gap_pct"] == 100.0 and table.loc["sunspec", "collection_start"] is None


def test_a_past_day_of_a_device_without_history_is_not_judged_at_all():
    day = _day()
    past = DayResult(rows=day.rows.assign(interval_start=day.rows["interval_start"] - pd.Timedelta(days=1),
                                          value=np.nan, quality="missing"),
                     review=pd.DataFrame(), collection=day.collection)
    table = past.by_source(None).set_index("source")
    assert table.loc["sonnen", "judged_intervals"] == 0 and table.loc["sonnen", "gap_pct"] is None
    assert table.loc["sonnen", "not_collected_intervals"] == 2 * 288
    assert table.loc["fronius", "not_collected_intervals"] == 96  # the battery; archive PV stays judged
    assert table.loc["fronius", "judged_intervals"] == 288 and table.loc["fronius", "gap_pct"] == 100.0


def test_gap_runs_for_review_start_where_collection_began():
    day = _day()
    cut = collected_gap_runs(day.review, day.rows, day.not_collected())
    sonnen = cut[cut["source"] == "sonnen"].sort_values(["site_id", "first_interval"])
    assert sonnen[["site_id", "first_interval", "n_intervals"]].values.tolist() == [
        ["S-SON", pd.Timestamp("2026-07-20T14:00Z"), 120],  # the head 00:00..13:35 is cut away entirely
        ["S-SON2", pd.Timestamp("2026-07-20T13:40Z"), 124]]  # 13:40..23:55 (later cut at now by ended_gap_runs)
    fro = cut[(cut["source"] == "fronius")]
    assert fro[["channel", "first_interval", "n_intervals"]].values.tolist() == [
        ["battery_kwh", pd.Timestamp("2026-07-20T15:00Z"), 36], ["pv_kwh", pd.Timestamp("2026-07-20T15:00Z"), 108]]
    # history vendors' runs are as found
    se = day.review[day.review["source"] == "solaredge"]
    assert cut[cut["source"] == "solaredge"]["n_intervals"].tolist() == se["n_intervals"].tolist() == [40, 32]
