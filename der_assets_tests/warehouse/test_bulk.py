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


def test_values_read_back_exactly_whatever_their_column_type(engine):
    """COPY text is made column by column on PostgreSQL: every value must come back as it went in."""
    import numpy as np

    from der_assets.warehouse.bulk import bulk_insert
    from der_assets.warehouse.schema import review_queue

    values = [0.1, 1 / 3, 1e-300, 5e-324, 123456789.123456789, None, 5e15 + 0.5, -7.25]
    n = len(values)
    rows = pd.DataFrame({
        "site_id": pd.Categorical(["S,1", 'S"2', "S1", "S1", "S5", "S1", "S1", "S1"]),
        "device_id": ["D\n1", "D2", "D3", "D4", "D5", "D6", "D7", "D8"], "source": "solaredge", "channel": "pv_kwh",
        "interval_start": pd.date_range(DAY, periods=n, freq="5min") + pd.Timedelta(microseconds=123456),
        "interval_s": np.int64(300), "value": values, "quality": ["measured"] * 5 + ["missing"] + ["measured"] * 2,
        "received_at": [pd.Timestamp("2026-07-16T00:10:00.000001Z")] * (n - 1) + [pd.Timestamp("2026-07-16T00:10Z")],
        "revision": 0,
    })
    review = pd.DataFrame({"day": [DAY.date()], "origin": ["t"], "site_id": ["S1"], "issue": ["gap"],
                           "detail": ['comma, "quote"\nnewline \\N'], "n_intervals": [3],
                           "detected_at": [pd.Timestamp("2026-07-16T01:00Z")]})
    with engine.begin() as conn:
        bulk_insert(conn, interval_telemetry, rows)
        bulk_insert(conn, review_queue, review)
    back = _day_rows(engine).sort_values("interval_start").reset_index(drop=True)
    got = back["value"].tolist()
    assert [str(v) for v in got[:5]] == [str(v) for v in values[:5]] and np.isnan(got[5]) and got[6:] == values[6:]
    assert back["site_id"].tolist() == ["S,1", 'S"2', "S1", "S1", "S5", "S1", "S1", "S1"]
    assert back["device_id"].iloc[0] == "D\n1"
    assert pd.to_datetime(back["interval_start"], utc=True).tolist() == pd.to_datetime(rows["interval_start"], utc=True).tolist()
    assert pd.to_datetime(back["received_at"], utc=True).iloc[0] == pd.Timestamp("2026-07-16T00:10:00.000001Z")
    with engine.connect() as conn:
        detail = conn.execute(sa.select(review_queue.c.detail)).scalar_one()
    assert detail == 'comma, "quote"\nnewline \\N'


def test_copy_text_is_streamed_in_chunks_without_losing_a_byte(engine, monkeypatch):
    import io

    from der_assets.warehouse import bulk

    stream = bulk._CopyStream(io.StringIO(t) for t in ["ab", "", "cde", "f"])
    assert [stream.read(2), stream.read(1), stream.read(10), stream.read(3)] == ["ab", "c", "def", ""]
    monkeypatch.setattr(bulk, "COPY_CHUNK_ROWS", 7)
    rows = _rows(50, 0.25)
    with engine.begin() as conn:
        replace_window(conn, interval_telemetry, rows, time_column="interval_start", start=DAY,
                       end=DAY + dt.timedelta(days=1))
    back = _day_rows(engine)
    assert len(back) == 50 and back["value"].sum() == pytest.approx(49 * 0.25) and back["value"].isna().sum() == 1


def test_text_that_looks_like_copy_syntax_is_stored_as_text(engine):
    """A site_id of `\\N` (the registry accepts it) is a site, not NULL: COPY's NULL marker, its
    end-of-data line `\\.`, backslashes, tabs, newlines and CRs all come back as they went in."""
    from der_assets.warehouse.bulk import bulk_insert

    sites = ["\\N", "\\.", "a\\b", "tab\there", "cr\rlf\n", "ends\\", "\\\\N", ""]
    rows = _rows(len(sites), 0.5)
    rows["site_id"] = sites
    rows["device_id"] = pd.Categorical(sites)  # categories go through the same text path
    with engine.begin() as conn:
        bulk_insert(conn, interval_telemetry, rows)
    back = _day_rows(engine).sort_values("interval_start").reset_index(drop=True)
    assert back["site_id"].tolist() == sites
    assert back["device_id"].tolist() == sites
    assert back["value"].isna().tolist() == [False] * (len(sites) - 1) + [True]  # the real NULL stays NULL
