"""Window replaces are idempotent and all-or-nothing, with COPY on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.warehouse.bulk import replace_window
from der_assets.warehouse.schema import interval_telemetry

DAY = dt.datetime(2026, 7, 15, tzinfo=dt.UTC)


def _rows(n: int, value: float, day: dt.datetime = DAY) -> pd.DataFrame:
    return pd.DataFrame({
        "site_id": "S1", "device_id": "S1-PV", "source": "solaredge", "channel": "pv_kwh",
        "interval_start": pd.date_range(day, periods=n, freq="5min"),
        "interval_s": 300, "value": [value] * (n - 1) + [None], "quality": ["measured"] * (n - 1) + ["missing"],
        "received_at": pd.Timestamp("2026-07-16T00:10:00Z"), "revision": 0,
    })


def _day_rows(engine, day=DAY):
    with engine.connect() as conn:
        return pd.read_sql(sa.select(interval_telemetry).where(
            interval_telemetry.c.interval_start >= day,
            interval_telemetry.c.interval_start < day + dt.timedelta(days=1)), conn)


def test_replace_is_idempotent(engine):
    for _ in range(2):
        with engine.begin() as conn:
            replace_window(conn, interval_telemetry, _rows(288, 0.25), time_column="interval_start",
                           start=DAY, end=DAY + dt.timedelta(days=1))
    stored = _day_rows(engine)
    assert len(stored) == 288
    assert stored["value"].sum() == pytest.approx(287 * 0.25)
    assert stored["value"].isna().sum() == 1  # the missing interval stays null, never zero
    assert set(stored["quality"]) == {"measured", "missing"}


def test_failed_replace_keeps_the_previous_version(engine):
    with engine.begin() as conn:
        replace_window(conn, interval_telemetry, _rows(288, 0.25), time_column="interval_start",
                       start=DAY, end=DAY + dt.timedelta(days=1))
    bad = _rows(288, 0.5)
    bad.loc[10, "quality"] = None  # violates NOT NULL halfway through the insert
    with pytest.raises(sa.exc.DBAPIError):
        with engine.begin() as conn:
            replace_window(conn, interval_telemetry, bad, time_column="interval_start",
                           start=DAY, end=DAY + dt.timedelta(days=1))
    stored = _day_rows(engine)
    assert len(stored) == 288 and stored["value"].max() == 0.25


def test_rows_outside_the_window_are_refused(engine):
    with pytest.raises(ValueError, match="outside the window"):
        with engine.begin() as conn:
            replace_window(conn, interval_telemetry, _rows(300, 0.1), time_column="interval_start",
                           start=DAY, end=DAY + dt.timedelta(days=1))


def test_other_days_are_untouched(engine):
    next_day = DAY + dt.timedelta(days=1)
    with engine.begin() as conn:
        replace_window(conn, interval_telemetry, _rows(288, 0.1, next_day), time_column="interval_start",
                       start=next_day, end=next_day + dt.timedelta(days=1))
        replace_window(conn, interval_telemetry, _rows(288, 0.2), time_column="interval_start",
                       start=DAY, end=DAY + dt.timedelta(days=1))
    assert _day_rows(engine, next_day)["value"].max() == 0.1
