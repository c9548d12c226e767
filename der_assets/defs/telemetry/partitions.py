"""Telemetry partitions: UTC days, crossed with the vendor source for raw pulls."""

import dagster as dg

PULL_SOURCES = ["solaredge", "enphase", "sma", "sonnen", "fronius", "sunspec"]
VENDOR_SOURCES = ["solaredge", "enphase", "sma", "sonnen", "fronius", "generac", "sunspec"]

daily = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)  # today is a partition too
sources = dg.StaticPartitionsDefinition(PULL_SOURCES)
day_by_source = dg.MultiPartitionsDefinition({"date": daily, "source": sources})
