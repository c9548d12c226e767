"""Store semantics: new, modified, duplicate, stale, cancelled, conflicts, and the sensor's reads."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.intake.store import (
    InstructionConflict,
    Outcome,
    history,
    later_cursor,
    latest,
    pending,
    record_instruction,
)

from ._helpers import at, instruction, statuses

ID = "PJM-2026-07-15-001"


def rec(engine, *, minute=0, cancelled=False, channel="http", **overrides):
    return record_instruction(engine, instruction(**overrides), channel=channel, raw=repr(overrides).encode(),
                              received_at=at(minute), cancelled=cancelled)


def test_new_then_duplicate_changes_nothing(engine):
    # start given in EDT: stored and read back as 18:00 UTC
    assert rec(engine, start="2026-07-15T14:00:00-04:00") == Outcome.NEW
    first = latest(engine, ID)
    assert rec(engine, minute=5, start="2026-07-15T14:00:00-04:00") == Outcome.DUPLICATE
    assert statuses(engine) == {(ID, 0): "active"}
    again = latest(engine, ID)
    assert again == first
    assert again.start == dt.datetime(2026, 7, 15, 18, tzinfo=dt.timezone.utc)
    assert again.end - again.start == dt.timedelta(hours=2)
    assert again.target_kw == (2000.0, 2000.0, 2000.0, 2000.0)  # 2 h of 30-min intervals
    assert again.received_at == at(0) and again.channel == "http" and len(again.raw_sha256) == 64
    assert again.to_instruction().target_kw.tolist() == [2000.0] * 4


def test_modifications_supersede_older_rows(engine):
    assert rec(engine) == Outcome.NEW
    assert rec(engine, minute=1, modification=1, target_kw=1500) == Outcome.MODIFIED
    assert rec(engine, minute=2, modification=2, target_kw=[1000, 1000, 500, 0]) == Outcome.MODIFIED
    assert statuses(engine) == {(ID, 0): "superseded", (ID, 1): "superseded", (ID, 2): "active"}
    assert latest(engine, ID).target_kw == (1000.0, 1000.0, 500.0, 0.0)
    assert [r.modification for r in history(engine, ID)] == [0, 1, 2]


def test_older_modification_arriving_late_is_stale(engine):
    rec(engine)
    rec(engine, minute=1, modification=2, target_kw=1000)
    assert rec(engine, minute=2, modification=1, target_kw=1500) == Outcome.STALE
    assert statuses(engine) == {(ID, 0): "superseded", (ID, 1): "superseded", (ID, 2): "active"}
    assert latest(engine, ID).modification == 2


def test_cancellation_as_new_modification_keeps_rows(engine):
    rec(engine)
    assert rec(engine, minute=1, modification=1, cancelled=True) == Outcome.CANCELLED
    assert statuses(engine) == {(ID, 0): "superseded", (ID, 1): "cancelled"}
    assert rec(engine, minute=2, modification=1, cancelled=True) == Outcome.DUPLICATE
    assert rec(engine, minute=3, modification=0, cancelled=True) == Outcome.STALE
    assert statuses(engine) == {(ID, 0): "superseded", (ID, 1): "cancelled"}


def test_cancellation_of_same_modification_updates_in_place(engine):
    rec(engine)
    assert rec(engine, minute=4, cancelled=True) == Outcome.CANCELLED
    row = latest(engine, ID)
    assert statuses(engine) == {(ID, 0): "cancelled"}
    assert row.received_at == at(4)  # moved forward so the sensor's cursor sees the change


def test_same_modification_with_another_schedule_is_a_conflict(engine):
    rec(engine)
    with pytest.raises(InstructionConflict, match="different schedule") as err:
        rec(engine, minute=1, target_kw=999)
    assert err.value.field == "modification"
    assert latest(engine, ID).target_kw == (2000.0,) * 4


def test_store_requires_resource_and_issue_time(engine):
    bare = instruction(resource_id=None)
    with pytest.raises(DispatchInputError) as err:
        record_instruction(engine, bare, channel="http", raw=b"{}", received_at=at(0))
    assert err.value.field == "resource_id"
    assert statuses(engine) == {}


def test_pending_walks_received_order_with_a_cursor(engine):
    rec(engine, minute=2, instruction_id="B")
    rec(engine, minute=1, instruction_id="A")
    rec(engine, minute=2, instruction_id="C")
    everything = pending(engine, None)
    assert [(r.instruction_id, r.modification) for r in everything] == [("A", 0), ("B", 0), ("C", 0)]
    after_a = pending(engine, everything[0].cursor)
    assert [r.instruction_id for r in after_a] == ["B", "C"]
    assert pending(engine, everything[-1].cursor) == []
    # a modification and an in-place cancellation both show up after the old cursor
    cursor = everything[-1].cursor
    rec(engine, minute=3, instruction_id="A", modification=1, target_kw=100)
    rec(engine, minute=4, instruction_id="B", cancelled=True)
    later = pending(engine, cursor)
    assert [(r.instruction_id, r.modification, r.status) for r in later] == [("A", 1, "active"), ("B", 0, "cancelled")]
    assert [r.instruction_id for r in pending(engine, None, limit=2)] == ["A", "C"]  # B moved to minute 4


def test_lookback_sees_a_row_that_committed_behind_the_cursor(engine):
    rec(engine, minute=5, instruction_id="LATER")
    cursor = pending(engine, None)[-1].cursor
    # a slow writer stamped received_at a minute earlier but committed only now
    rec(engine, minute=4, instruction_id="SLOW")
    assert pending(engine, cursor) == []
    seen = pending(engine, cursor, lookback=dt.timedelta(minutes=2))
    assert [r.instruction_id for r in seen] == ["SLOW", "LATER"]
    assert later_cursor(cursor, seen[0].cursor) == cursor  # the cursor never moves back
    assert later_cursor(None, cursor) == cursor and later_cursor(cursor, None) == cursor


def test_latest_unknown_is_none(engine):
    assert latest(engine, "nope") is None


def test_concurrent_modifications_leave_exactly_one_current_row(engine):
    """Eight writers at once, one per modification: the per-id lock keeps the invariant."""
    errors: list[BaseException] = []

    def write(mod: int) -> None:
        try:
            rec(engine, minute=mod, modification=mod, target_kw=100 * mod)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(m,)) for m in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    rows = statuses(engine)
    assert len(rows) == 8
    assert [m for (_, m), s in rows.items() if s != "superseded"] == [7]
    assert rows[(ID, 7)] == "active"
