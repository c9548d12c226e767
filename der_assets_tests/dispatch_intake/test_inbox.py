"""The file inbox: good files recorded and moved to done/, bad ones to rejected/ with a one-line reason."""

from __future__ import annotations

import json

from der_assets.dispatch.intake.inbox import ingest_inbox
from der_assets.dispatch.intake.store import Outcome

from ._helpers import body, landed, statuses

ID = "PJM-2026-07-15-001"


def test_inbox_records_good_files_and_rejects_bad_ones(engine, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "01-original.json").write_text(json.dumps(body()))
    (inbox / "02-modified.json").write_text(json.dumps(body(modification=1, target_kw=1500)))
    (inbox / "03-backwards.json").write_text(json.dumps(body(instruction_id="X", end="2026-07-15T17:00:00Z")))
    (inbox / "04-truncated.json").write_text('{"instruction_id": "Y", "start": ')
    (inbox / "notes.txt").write_text("not an instruction")

    outcomes = ingest_inbox(engine, inbox)

    assert outcomes == [Outcome.NEW, Outcome.MODIFIED, Outcome.REJECTED, Outcome.REJECTED]
    assert statuses(engine) == {(ID, 0): "superseded", (ID, 1): "active"}
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["01-original.json", "02-modified.json"]
    assert sorted(p.name for p in (inbox / "rejected").iterdir()) == [
        "03-backwards.json", "03-backwards.json.error.txt", "04-truncated.json", "04-truncated.json.error.txt"]
    reason = (inbox / "rejected" / "03-backwards.json.error.txt").read_text()
    assert reason.count("\n") == 1 and "field end" in reason
    assert "not valid JSON" in (inbox / "rejected" / "04-truncated.json.error.txt").read_text()
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == ["notes.txt"]
    assert [(e, s) for e, s, _ in landed(engine)] == [
        ("inbox", "parsed"), ("inbox", "parsed"), ("inbox", "quarantined"), ("inbox", "quarantined")]

    # nothing left to do; the same file dropped again is a duplicate and is kept beside the first
    assert ingest_inbox(engine, inbox) == []
    (inbox / "01-original.json").write_text(json.dumps(body()))
    assert ingest_inbox(engine, inbox) == [Outcome.DUPLICATE]
    assert sorted(p.name for p in (inbox / "done").iterdir()) == [
        "01-original.1.json", "01-original.json", "02-modified.json"]
    assert len(statuses(engine)) == 2
