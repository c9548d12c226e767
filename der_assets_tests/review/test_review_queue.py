"""Review items keep their id and an operator's resolution when the telemetry day is rebuilt."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets import review
from der_assets.defs.telemetry.store import write_day
from der_assets.errors import ValidationFailed
from der_assets.warehouse.schema import review_history, review_queue

DAY = pd.Timestamp("2026-07-15T00:00Z")


def _gap(site: str, first: str, n: int, channel: str = "pv_kwh") -> dict:
    start = pd.Timestamp(f"2026-07-15T{first}Z")
    return {"site_id": site, "device_id": f"{site}-pv", "source": "solaredge", "channel": channel, "issue": "gap",
            "first_interval": start, "last_interval": start + pd.Timedelta(minutes=15 * (n - 1)), "n_intervals": n}


def _run(engine, items: list[dict], quarantined: list[dict] | None = None) -> None:
    write_day(engine, pd.DataFrame(), pd.DataFrame(items), day_start=DAY, sources=["solaredge"],
              origin="interval_telemetry", quarantined=quarantined or [], parsed_ids=[])


def _rows(engine) -> dict[str, dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(review_queue).order_by(review_queue.c.review_id)).mappings().all()
    return {r["site_id"]: dict(r) for r in rows}


def test_a_resolution_survives_a_rerun_of_the_day(engine):
    _run(engine, [_gap("S1", "15:00", 4), _gap("S2", "10:00", 2)],
         quarantined=[{"payload_id": 7, "site_id": "S3", "source": "solaredge", "error": "truncated body"}])
    first = _rows(engine)
    assert {s: (r["issue"], r["status"]) for s, r in first.items()} == {
        "S1": ("gap", "open"), "S2": ("gap", "open"), "S3": ("quarantined_payload", "open")}
    s1 = first["S1"]["review_id"]
    review.resolve(engine, s1, note="inverter was off for a firmware update", by="ana",
                   now=dt.datetime(2026, 7, 16, 9, 0, tzinfo=dt.UTC))

    _run(engine, [_gap("S1", "15:00", 4), _gap("S2", "10:00", 2)],
         quarantined=[{"payload_id": 7, "site_id": "S3", "source": "solaredge", "error": "truncated body"}])
    again = _rows(engine)
    assert {s: r["review_id"] for s, r in again.items()} == {s: r["review_id"] for s, r in first.items()}
    assert (again["S1"]["status"], again["S1"]["resolved_by"], again["S1"]["resolution_note"]) == (
        "resolved", "ana", "inverter was off for a firmware update")
    assert again["S2"]["status"] == "open"
    # first detection is the first run's, not the re-run's
    assert again["S2"]["detected_at"] == first["S2"]["detected_at"]
    assert [tuple(r) for r in review.history_of(engine, s1)[["action", "by", "note"]].itertuples(index=False)] == [
        ("resolved", "ana", "inverter was off for a firmware update")]


def test_a_resolved_item_that_changed_reopens_and_says_what_changed(engine):
    _run(engine, [_gap("S1", "15:00", 4)])
    s1 = _rows(engine)["S1"]["review_id"]
    review.resolve(engine, s1, note="known outage", by="ana")
    _run(engine, [_gap("S1", "15:00", 6)])  # the same gap, now two intervals longer
    row = _rows(engine)["S1"]
    assert (row["review_id"], row["status"], row["resolved_by"]) == (s1, "open", None)
    history = review.history_of(engine, s1)
    assert list(history["action"]) == ["resolved", "reopened"]
    assert history["note"].iloc[1] == ("changed since it was resolved: last_interval 2026-07-15T15:45:00+00:00 -> "
                                       "2026-07-15T16:15:00+00:00, n_intervals 4 -> 6")


def test_a_vanished_open_item_is_cleared_and_a_vanished_resolved_one_stays_resolved(engine):
    _run(engine, [_gap("S1", "15:00", 4), _gap("S2", "10:00", 2)])
    rows = _rows(engine)
    review.resolve(engine, rows["S1"]["review_id"], note="checked", by="ana")
    _run(engine, [])  # late data filled both gaps
    left = _rows(engine)
    assert {s: (r["review_id"], r["status"]) for s, r in left.items()} == {
        "S1": (rows["S1"]["review_id"], "resolved"), "S2": (rows["S2"]["review_id"], "cleared")}
    assert list(review.list_items(engine)["site_id"]) == []  # nothing open
    # a new finding gets a new id, past every earlier one; the cleared gap, found again, is open again
    _run(engine, [_gap("S4", "01:00", 1), _gap("S2", "10:00", 2)])
    after = _rows(engine)
    assert after["S4"]["review_id"] > max(r["review_id"] for r in rows.values())
    assert (after["S2"]["review_id"], after["S2"]["status"]) == (rows["S2"]["review_id"], "open")


def test_resolve_refuses_an_unknown_id_an_empty_note_and_a_second_resolution(engine):
    _run(engine, [_gap("S1", "15:00", 4)])
    s1 = _rows(engine)["S1"]["review_id"]
    with pytest.raises(ValidationFailed, match="review item 999 does not exist"):
        review.resolve(engine, 999, note="x", by="ana")
    with pytest.raises(ValidationFailed, match="needs a note"):
        review.resolve(engine, s1, note="  ", by="ana")
    review.resolve(engine, s1, note="ok", by="ana")
    with pytest.raises(ValidationFailed, match=f"review item {s1} is already resolved by ana"):
        review.resolve(engine, s1, note="again", by="bo")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(review_history)).scalar_one() == 1


def test_items_differ_by_channel_and_start(engine):
    _run(engine, [_gap("S1", "15:00", 4), _gap("S1", "15:00", 4, channel="soc_pct"), _gap("S1", "18:00", 1)])
    with engine.connect() as conn:
        keys = conn.execute(sa.select(review_queue.c.item_key)).scalars().all()
    assert len(set(keys)) == 3
