"""The fleet-day panel: fleet kW and SoC by hand, gap shading where rows are removed, DST days, no silent zero."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry.plot import fleet_day_series, fleet_timezone, plot_fleet_day
from der_assets_tests.plots.conftest import fleet_rows
from der_assets_tests.plots.png import png_size

DAY = pd.Timestamp("2026-06-01", tz="UTC")


def _between(rows, start, end):
    t = rows["interval_start"]
    return (t >= pd.Timestamp(start, tz="UTC")) & (t < pd.Timestamp(end, tz="UTC"))


def test_png_and_fleet_totals_by_hand(day_rows):
    plot = plot_fleet_day(day_rows, DAY, timezone="America/New_York")
    assert png_size(plot.png) == (1100, 600)
    s = plot.series
    assert len(s) == 96 and s["interval_start"].iloc[0] == DAY
    # three sites: PV 1 + 2 + 3 kW, load 3 x 2 kW, batteries 3 x 0.5 kW, grid = 6 - 6 - 1.5
    assert s["pv_kw"].eq(6.0).all() and s["load_kw"].eq(6.0).all()
    assert s["battery_kw"].eq(1.5).all() and s["grid_kw"].eq(-1.5).all()
    # SoC 50, 60, 70 %
    assert s["soc_mean_pct"].eq(60.0).all() and s["soc_min_pct"].eq(50.0).all() and s["soc_max_pct"].eq(70.0).all()
    assert s["devices"].iloc[0] == 9 and not s["shaded"].any() and plot.gaps.empty


def test_five_minute_rows_give_the_same_kw():
    s = fleet_day_series(fleet_rows("2026-06-01", sites=2, interval_s=300), DAY)
    assert len(s) == 96 and s["pv_kw"].eq(3.0).all() and s["grid_kw"].eq(-0.5 * 2 + 2.0 * 2 - 3.0).all()


def test_gaps_shaded_where_rows_are_removed(day_rows):
    # sites S2 and S3 send nothing 10:00-11:00 UTC; one PV value of S1 is flagged missing at 15:00
    rows = day_rows[~(_between(day_rows, "2026-06-01 10:00", "2026-06-01 11:00") & day_rows.site_id.isin(["S2", "S3"]))]
    rows = rows.copy()
    hole = (rows.device_id == "S1-PV") & (rows.interval_start == pd.Timestamp("2026-06-01 15:00", tz="UTC"))
    rows.loc[hole, ["value", "quality"]] = [np.nan, "missing"]
    plot = plot_fleet_day(rows, DAY)
    gaps = plot.gaps
    assert list(gaps["start"]) == [pd.Timestamp("2026-06-01 10:00", tz="UTC"), pd.Timestamp("2026-06-01 15:00", tz="UTC")]
    assert list(gaps["end"]) == [pd.Timestamp("2026-06-01 11:00", tz="UTC"), pd.Timestamp("2026-06-01 15:15", tz="UTC")]
    # 6 of 9 devices missing, then 1 of 9
    assert gaps["max_missing_pct"].round(2).tolist() == [66.67, 11.11]
    s = plot.series.set_index("interval_start")
    assert s.loc["2026-06-01 10:30", "pv_kw"].item() == 1.0  # the site that reported
    assert s.loc["2026-06-01 15:00", "pv_kw"].item() == 5.0 and s.loc["2026-06-01 15:00", "load_kw"].item() == 6.0


def test_one_missing_device_in_a_large_fleet_is_not_shaded():
    rows = fleet_rows("2026-06-01", sites=10)  # 30 devices: one missing is 3.3 %, under the 5 % threshold
    rows = rows[~((rows.device_id == "S4-PV") & _between(rows, "2026-06-01 08:00", "2026-06-01 09:00"))]
    s = fleet_day_series(rows, DAY)
    at8 = s[s.interval_start == pd.Timestamp("2026-06-01 08:00", tz="UTC")].iloc[0]
    assert at8["devices_missing"] == 1 and not at8["shaded"] and at8["pv_kw"] == 55.0 - 4.0
    assert fleet_day_series(rows, DAY, gap_share=0.0)["shaded"].sum() == 4


def test_a_missing_interval_is_never_zero(day_rows):
    rows = day_rows[~_between(day_rows, "2026-06-01 12:00", "2026-06-01 12:30")]
    plot = plot_fleet_day(rows, DAY)
    s = plot.series.set_index("interval_start")
    hole = s.loc["2026-06-01 12:00":"2026-06-01 12:15"]
    assert len(hole) == 2
    for column in ["pv_kw", "load_kw", "battery_kw", "grid_kw", "soc_mean_pct", "soc_min_pct", "soc_max_pct"]:
        assert hole[column].isna().all(), column
    assert s["pv_kw"].notna().sum() == 94 and (s["pv_kw"].dropna() == 6.0).all()
    assert hole["missing_pct"].eq(100.0).all()
    assert list(plot.gaps["start"]) == [pd.Timestamp("2026-06-01 12:00", tz="UTC")]


def test_suspect_values_are_not_drawn(day_rows):
    rows = day_rows.copy()
    spike = (rows.device_id == "S3-PV") & (rows.interval_start == pd.Timestamp("2026-06-01 09:00", tz="UTC"))
    rows.loc[spike, ["value", "quality"]] = [500.0, "suspect"]
    s = fleet_day_series(rows, DAY).set_index("interval_start")
    assert s.loc["2026-06-01 09:00", "pv_kw"].item() == 3.0 and s.loc["2026-06-01 09:00", "devices_missing"].item() == 1


def test_latest_revision_wins(day_rows):
    fix = day_rows[(day_rows.device_id == "S1-PV") & (day_rows.interval_start == DAY)].assign(value=0.5, revision=1)
    s = fleet_day_series(pd.concat([day_rows, fix], ignore_index=True), DAY)
    assert s["pv_kw"].iloc[0] == 7.0 and s["pv_kw"].iloc[1] == 6.0


def test_intervals_not_yet_ended_are_not_shaded(day_rows):
    rows = day_rows[day_rows.interval_start < pd.Timestamp("2026-06-01 18:00", tz="UTC")]
    # at 18:07 the 18:00 interval is still running: nothing is missing yet
    assert plot_fleet_day(rows, DAY, until=pd.Timestamp("2026-06-01 18:07", tz="UTC")).gaps.empty
    # at 18:20 the 18:00 interval has ended without data; 18:15 has not ended
    plot = plot_fleet_day(rows, DAY, until=pd.Timestamp("2026-06-01 18:20", tz="UTC"))
    assert list(plot.gaps["start"]) == [pd.Timestamp("2026-06-01 18:00", tz="UTC")]
    assert list(plot.gaps["end"]) == [pd.Timestamp("2026-06-01 18:15", tz="UTC")]
    assert plot.series["judged"].sum() == 73


def test_an_hourly_row_spreads_over_its_four_intervals(day_rows):
    hourly = pd.DataFrame([{**day_rows.iloc[0].to_dict(), "site_id": "S9", "device_id": "S9", "channel": "load_kwh",
                            "interval_start": pd.Timestamp("2026-06-01 06:00", tz="UTC"), "interval_s": 3600,
                            "value": 8.0}])
    s = fleet_day_series(pd.concat([day_rows, hourly], ignore_index=True), DAY).set_index("interval_start")
    # 8 kWh over one hour is 8 kW in each of its quarter-hours, on top of the three sites' 6 kW
    assert s.loc["2026-06-01 06:00":"2026-06-01 06:45", "load_kw"].tolist() == [14.0] * 4
    assert s.loc["2026-06-01 07:00", "load_kw"].item() == 6.0
    assert s.loc["2026-06-01 07:00", "devices_missing"].item() == 1  # S9 reported only 06:00-07:00


@pytest.mark.parametrize(("local_day", "hours"), [("2026-03-08", 23), ("2026-11-01", 25)])
def test_dst_local_day(local_day, hours):
    tz = "America/New_York"
    start = pd.Timestamp(local_day, tz=tz).tz_convert("UTC")
    end = (pd.Timestamp(local_day, tz=tz) + pd.DateOffset(days=1)).tz_convert("UTC")
    rows = fleet_rows(str(start.tz_localize(None) - pd.Timedelta(hours=6)), hours=40)
    plot = plot_fleet_day(rows, start, end, timezone=tz)
    s = plot.series
    assert len(s) == 4 * hours and (s["interval_start"].diff().dropna() == pd.Timedelta(minutes=15)).all()
    assert s["pv_kw"].eq(6.0).all() and plot.gaps.empty
    local = s["interval_start"].dt.tz_convert(tz)
    assert local.iloc[0].strftime("%H:%M") == "00:00" and local.iloc[-1].strftime("%H:%M") == "23:45"
    assert png_size(plot.png) == (1100, 600)


def test_utc_day_across_spring_forward_keeps_96_intervals():
    day = pd.Timestamp("2026-03-08", tz="UTC")  # New York moves to EDT at 07:00 UTC
    plot = plot_fleet_day(fleet_rows("2026-03-08"), day, timezone="America/New_York")
    local = plot.series["interval_start"].dt.tz_convert("America/New_York")
    assert len(plot.series) == 96 and plot.gaps.empty
    assert local.iloc[0].strftime("%d %H:%M %Z") == "07 19:00 EST" and local.iloc[-1].strftime("%d %H:%M %Z") == "08 19:45 EDT"


def test_fleet_timezone_is_where_most_sites_are():
    reg = pd.DataFrame({"site_id": ["a", "a", "b", "c", "d"],
                        "timezone": ["America/Chicago", "America/Chicago", "America/New_York", "America/New_York",
                                     "America/Chicago"]})
    assert fleet_timezone(reg) == "America/Chicago"
    assert fleet_timezone(reg.iloc[0:0]) == "UTC"
    assert fleet_timezone(pd.DataFrame({"site_id": ["a", "b"], "timezone": ["US/B", "US/A"]})) == "US/A"


def test_200_sites_of_5_minute_rows_plot_under_a_second():
    rows = fleet_rows("2026-06-01", sites=200, interval_s=300)  # 288,000 rows
    plot_fleet_day(rows.head(50), DAY)  # first call pays matplotlib's import and font cache
    t0 = time.process_time()  # CPU time: other processes on a shared machine do not count
    plot = plot_fleet_day(rows, DAY, timezone="America/Chicago")
    assert time.process_time() - t0 < 1.0
    assert plot.series["pv_kw"].eq(sum(range(1, 201))).all() and plot.series["devices"].iloc[0] == 600
