"""A poison file in the inbox (issue 17 item 17): rejected with its reason, and the files behind it flow."""

from __future__ import annotations

import json

from der_assets.dispatch.intake.inbox import ingest_inbox
from der_assets.dispatch.intake.store import Outcome

from ._helpers import body, landed, statuses
from ._sqlite import sqlite_engine  # noqa: F401 (fixture)


def test_a_deeply_nested_file_is_rejected_and_the_rest_are_recorded(sqlite_engine, tmp_path):
    """SQLite only: the webhook test runs the same refusals on both databases."""
    engine = sqlite_engine
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "01-poison.json").write_bytes(b'{"instruction_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    (inbox / "02-modification-2-70.json").write_text(json.dumps(body(instruction_id="BIG", modification=2**70)))
    (inbox / "03-good.json").write_text(json.dumps(body(instruction_id="GOOD")))

    assert ingest_inbox(engine, inbox) == [Outcome.REJECTED, Outcome.REJECTED, Outcome.NEW]

    assert statuses(engine) == {("GOOD", 0): "active"}
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["03-good.json"]
    rejected = inbox / "rejected"
    assert (rejected / "01-poison.json.error.txt").read_text() == \
        "01-poison.json: not valid JSON (nested too deeply)\n"
    assert (rejected / "02-modification-2-70.json.error.txt").read_text() == (
        f"02-modification-2-70.json field modification: {2**70} is over 2147483647, the largest modification "
        "number stored\n")
    assert [s for _, s, _ in landed(engine)] == ["quarantined", "quarantined", "parsed"]
    # a second scan finds nothing left behind
    assert ingest_inbox(engine, inbox) == []
