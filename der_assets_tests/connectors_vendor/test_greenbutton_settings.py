"""Green Button inbox pickup, where connector settings come from, and the pure cursors."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from der_assets.connectors import enphase, fronius, greenbutton, sma, solaredge
from der_assets.connectors.payloads import Cursor, next_window
from der_assets.connectors.settings import SettingsError, ami_inbox, sunspec_devices, vendor_settings
from der_assets.simulator import greenbutton as gb_twin
from der_assets.telemetry import parse_payload

from ._twin import make_hub, twin_sum


def test_inbox_files_are_picked_up_once_and_parse(tmp_path):
    hub, clock = make_hub(days=4)
    inbox = tmp_path / "inbox"
    written = gb_twin.deliver_due_files(hub, inbox, delay_h=(24, 24))
    assert written  # the twin delivered complete local days that are 24 h old
    (inbox / ".partial.xml.tmp").write_bytes(b"<half")  # never listed
    meters = dict(zip(hub.registry["meter_id"], hub.registry["site_id"]))
    payloads, cur = greenbutton.pull(inbox, greenbutton.InboxCursor(), meters=meters, clock=clock)
    assert len(payloads) == len(written)
    again, cur2 = greenbutton.pull(inbox, greenbutton.InboxCursor.from_json(cur.to_json()), meters=meters,
                                   clock=clock)
    assert again == [] and cur2 == cur
    p = next(p for p in payloads if p.site_id == "S-00001")
    df = parse_payload(p.source, p.endpoint, p.content, **p.parse_kwargs())
    day0, day1 = df["interval_start"].min(), df["interval_start"].max() + pd.Timedelta(minutes=15)
    assert df["source"].iloc[0] == "ami"
    assert df[df["channel"] == "grid_kwh"]["value"].sum() == pytest.approx(
        twin_sum(hub, "S-00001", "grid_kwh", day0, day1), abs=0.005)
    # a later file with the same mtime as the cursor is still new; one with a later mtime too
    late = inbox / "greenbutton_X_2026-07-20.xml"
    late.write_bytes(p.content)
    os.utime(late, ns=(cur.mtime_ns, cur.mtime_ns))
    new, _ = greenbutton.pull(inbox, cur, meters=meters, clock=clock)
    assert [q.site_id for q in new] == [None]  # unknown meter: still landed, for an operator to see


def test_settings_env_wins_over_the_twin_ready_file_value_by_value(tmp_path, monkeypatch):
    ready = {"http": {"solaredge": "http://127.0.0.1:1111", "sonnen": "http://127.0.0.1:2222"},
             "credentials": {"solaredge_api_key": "TWINKEY", "sonnen_auth_token": "TWINTOK"},
             "device_base_path": "/sites/{site_id}", "sunspec": [{"site_id": "S-1", "device_id": "D", "source":
                                                                 "generac", "host": "127.0.0.1", "port": 5020,
                                                                 "unit_id": 1}],
             "ami_inbox": str(tmp_path / "inbox")}
    path = tmp_path / "twin_ready.json"
    path.write_text(json.dumps(ready))
    monkeypatch.setenv("DER_TWIN_READY_FILE", str(path))
    for k in ("DER_SOLAREDGE_BASE_URL", "DER_SOLAREDGE_API_KEY", "DER_SONNEN_BASE_URL", "DER_SONNEN_AUTH_TOKEN",
              "DER_SUNSPEC_DEVICES", "DER_AMI_INBOX", "DER_SMA_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    s = vendor_settings("solaredge")
    assert (s.base_url, s.credentials, s.origin) == ("http://127.0.0.1:1111", {"api_key": "TWINKEY"}, "twin")
    monkeypatch.setenv("DER_SOLAREDGE_API_KEY", "REALKEY")
    s = vendor_settings("solaredge")
    assert s.credentials == {"api_key": "REALKEY"} and s.origin == "env+twin"
    so = vendor_settings("sonnen")
    assert so.url_for("S-00019") == "http://127.0.0.1:2222/sites/S-00019"
    monkeypatch.setenv("DER_SONNEN_BASE_URL", "http://sonnen-{site_id}.lan")
    assert vendor_settings("sonnen").url_for("S-00019") == "http://sonnen-S-00019.lan"
    with pytest.raises(SettingsError, match="DER_SMA_BASE_URL"):
        vendor_settings("sma")
    assert sunspec_devices()[0]["port"] == 5020 and ami_inbox() == tmp_path / "inbox"
    monkeypatch.setenv("DER_SUNSPEC_DEVICES", json.dumps([{"site_id": "S-9", "host": "10.0.0.9", "port": 502}]))
    assert sunspec_devices()[0]["host"] == "10.0.0.9"
    with pytest.raises(SettingsError, match="credential 'access_token' not set"):
        vendor_settings("sma", env={"DER_SMA_BASE_URL": "https://monitoring.smaapis.de"}, ready={}).need("access_token")


def test_cursors_are_pure_never_go_back_and_reread_each_vendors_late_window():
    now = pd.Timestamp("2026-07-16T12:07Z")
    for mod, lookback_h in ((solaredge, 1), (enphase, 6), (sma, 1), (fronius, 0.5)):
        first = mod.next_cursor(None, now)
        again = mod.next_cursor(first.cursor, now + pd.Timedelta(minutes=30))
        assert mod.next_cursor(first.cursor, now + pd.Timedelta(minutes=30)) == again  # pure
        assert again.window_start == first.cursor.through - pd.Timedelta(hours=lookback_h)
        assert again.cursor.through >= first.cursor.through
    # a clock that steps back does not move the cursor back
    plan = next_window(Cursor(pd.Timestamp("2026-07-16T12:00Z").to_pydatetime()), pd.Timestamp("2026-07-16T11:00Z"),
                       interval_s=900)
    assert plan.cursor.through == pd.Timestamp("2026-07-16T12:00Z") and plan.empty
    assert Cursor.from_json(plan.cursor.to_json()) == plan.cursor
