"""`der review list|resolve|history` on a warehouse with two items: hand-checkable rows and exit codes."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from der_assets.cli import main
from der_assets.defs.telemetry.store import write_day


def der(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.fixture
def two_items(engine, warehouse_url, monkeypatch):
    monkeypatch.setenv("DER_WAREHOUSE_URL", warehouse_url)
    start = pd.Timestamp("2026-07-15T15:00Z")
    gap = {"site_id": "S1", "device_id": "S1-pv", "source": "solaredge", "channel": "pv_kwh", "issue": "gap",
           "first_interval": start, "last_interval": start + pd.Timedelta(minutes=45), "n_intervals": 4}
    write_day(engine, pd.DataFrame(), pd.DataFrame([gap]), day_start=pd.Timestamp("2026-07-15T00:00Z"),
              sources=["solaredge"], origin="interval_telemetry", parsed_ids=[],
              quarantined=[{"payload_id": 3, "site_id": "S2", "source": "solaredge", "error": "truncated JSON body"}])
    write_day(engine, pd.DataFrame(), pd.DataFrame(), day_start=pd.Timestamp("2026-07-16T00:00Z"), sources=["ami"],
              origin="meter_intervals", parsed_ids=[],
              quarantined=[{"payload_id": 9, "site_id": "S3", "source": "greenbutton", "error": "no IntervalBlock"}])


def test_list_resolve_and_history(capsys, two_items):
    code, out, _ = der(capsys, "review", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["review_id"], r["site_id"], r["issue"], r["status"], r["n_intervals"]) for r in rows] == [
        (1, "S1", "gap", "open", 4), (2, "S2", "quarantined_payload", "open", None),
        (3, "S3", "quarantined_payload", "open", None)]
    assert rows[0]["first_interval"] == "2026-07-15T15:00:00.000Z" and rows[1]["detail"] == "payload 3: truncated JSON body"

    code, out, _ = der(capsys, "review", "list", "--origin", "meter_intervals")
    assert code == 0 and out.splitlines()[-1] == "1 item(s)" and " S3 " in out.splitlines()[1]
    code, out, _ = der(capsys, "review", "list", "--day", "2026-07-15", "--json")
    assert [r["review_id"] for r in json.loads(out)] == [1, 2]

    code, out, _ = der(capsys, "review", "resolve", "1", "--note", "inverter off for a firmware update", "--by", "ana")
    assert (code, out) == (0, "review item 1 (gap at S1, 2026-07-15) resolved by ana: inverter off for a firmware update\n")
    code, out, _ = der(capsys, "review", "list", "--json")
    assert [r["review_id"] for r in json.loads(out)] == [2, 3]
    code, out, _ = der(capsys, "review", "list", "--all", "--json")
    resolved = json.loads(out)[0]
    assert (resolved["review_id"], resolved["status"], resolved["resolved_by"], resolved["resolution_note"]) == (
        1, "resolved", "ana", "inverter off for a firmware update")
    code, out, _ = der(capsys, "review", "history", "1")
    assert code == 0 and out.endswith(" resolved by ana: inverter off for a firmware update\n")


def test_unknown_id_is_one_line_and_exit_1(capsys, two_items):
    code, out, err = der(capsys, "review", "resolve", "42", "--note", "x", "--by", "ana")
    assert (code, out, err) == (1, "", "der: review item 42 does not exist (see `der review list --all`)\n")
    code, _, err = der(capsys, "review", "resolve", "1", "--note", "", "--by", "ana")
    assert code == 1 and err == "der: a resolution needs a note (--note) saying what was done\n"


def test_nothing_open(capsys, engine, warehouse_url, monkeypatch):
    monkeypatch.setenv("DER_WAREHOUSE_URL", warehouse_url)
    assert der(capsys, "review", "list") == (0, "no open review items\n", "")
