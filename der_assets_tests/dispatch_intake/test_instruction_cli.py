"""`der instruction submit|list|show|cancel`: the same store and landing zone as the other channels."""

from __future__ import annotations

import io
import json

import pytest

from der_assets.cli import main
from der_assets.dispatch.intake.store import history

from ._helpers import body, landed, statuses
from ._running import import_demo_registry


@pytest.fixture
def url(warehouse_url):
    return warehouse_url


@pytest.fixture
def registry(engine, tmp_path):
    return import_demo_registry(engine, tmp_path)


def _der(capsys, *args: str, stdin: bytes | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_submit_of_an_unknown_resource_exits_1_with_the_reason_and_stores_nothing(engine, url, registry, tmp_path,
                                                                                 capsys):
    path = tmp_path / "evt.json"
    path.write_text(json.dumps(body(instruction_id="CLI-9", resource_id="AGG-9")))
    code, out, err = _der(capsys, "instruction", "submit", str(path), "--url", url)
    assert (code, out) == (1, "")
    assert err == (f"der: instruction refused, nothing stored: {path} field resource_id: "
                   "resource AGG-9 is not in the registry; known: AGG-1\n")
    assert statuses(engine) == {}
    # the bytes were landed first, like every channel's, and quarantined with the reason
    assert landed(engine) == [("cli", "quarantined",
                               f"{path} field resource_id: resource AGG-9 is not in the registry; known: AGG-1")]


def test_submit_list_show_cancel_round_trip(engine, url, registry, tmp_path, capsys, monkeypatch):
    path = tmp_path / "evt.json"
    path.write_text(json.dumps(body(instruction_id="CLI-1", target_kw=[100, 200, 300, 400])))
    assert _der(capsys, "instruction", "submit", str(path), "--url", url) == (
        0, "instruction CLI-1 modification 0 (AGG-1): new\n", "")
    # the same bytes from stdin change nothing
    assert _der(capsys, "instruction", "submit", "-", "--url", url, stdin=path.read_bytes(), monkeypatch=monkeypatch) == (
        0, "instruction CLI-1 modification 0 (AGG-1): duplicate\n", "")

    code, out, _ = _der(capsys, "instruction", "list", "--json", "--url", url)
    rows = json.loads(out)
    assert code == 0 and [(r["instruction_id"], r["modification"], r["status"], r["channel"], r["max_kw"])
                          for r in rows] == [("CLI-1", 0, "active", "cli", 400.0)]
    assert rows[0]["start"] == "2026-07-15T18:00:00Z" and rows[0]["target_kw"] == [100.0, 200.0, 300.0, 400.0]
    code, out, _ = _der(capsys, "instruction", "list", "--url", url)
    assert out.splitlines()[0].split() == ["instruction_id", "modification", "status", "iso", "resource_id", "start",
                                           "end", "interval_minutes", "max_kw", "channel", "received_at"]
    assert out.splitlines()[1].split()[:9] == ["CLI-1", "0", "active", "PJM", "AGG-1", "2026-07-15T18:00:00Z",
                                               "2026-07-15T20:00:00Z", "30", "400"]

    assert _der(capsys, "instruction", "cancel", "CLI-1", "--reason", "ISO withdrew the event", "--url", url) == (
        0, "instruction CLI-1 modification 1: cancelled\n", "")
    assert [(r.modification, r.status, r.channel) for r in history(engine, "CLI-1")] == [
        (0, "superseded", "cli"), (1, "cancelled", "cli")]
    # the cancellation keeps the schedule (a new modification of the same event)
    old, new = history(engine, "CLI-1")
    assert (new.start, new.end, new.target_kw) == (old.start, old.end, old.target_kw)

    code, out, _ = _der(capsys, "instruction", "show", "CLI-1", "--json", "--url", url)
    shown = json.loads(out)
    assert shown["current"]["status"] == "cancelled" and shown["current"]["reason"] == "ISO withdrew the event"
    assert [(m["modification"], m["status"]) for m in shown["modifications"]] == [(0, "superseded"), (1, "cancelled")]
    code, out, _ = _der(capsys, "instruction", "show", "CLI-1", "--url", url)
    assert "status            cancelled" in out and "reason: ISO withdrew the event" in out

    assert json.loads(_der(capsys, "instruction", "list", "--status", "active", "--json", "--url", url)[1]) == []
    assert _der(capsys, "instruction", "cancel", "CLI-1", "--url", url) == (
        1, "", "der: instruction CLI-1 is already cancelled (modification 1)\n")
    assert _der(capsys, "instruction", "show", "NOPE", "--url", url)[0] == 2
    assert [s for _, s, _ in landed(engine)] == ["parsed", "parsed", "parsed"]


def test_a_missing_file_is_one_line(tmp_path, capsys):
    code, out, err = _der(capsys, "instruction", "submit", str(tmp_path / "none.json"))
    assert (code, out, err) == (2, "", f"der: error: {tmp_path / 'none.json'}: no such file\n")
