"""The demo VTN end to end: `der demo event` issues an OpenADR event on it, the running intake's VEN
records it, and the dispatch sensor asks for a run of it. A resource the registry lacks is refused
by the VEN (optOut), and the command says so."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import httpx
import pytest

from der_assets.cli import main
from der_assets.dispatch.intake.store import history, latest

from ._helpers import landed
from ._running import import_demo_registry, read_ready, running_intake, running_vtn, until

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")]


def _der(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_demo_event_reaches_the_store_through_the_ven_and_the_sensor_asks_for_a_run(engine, warehouse_url, tmp_path,
                                                                                    capsys):
    from der_assets.defs.dispatch.assets import dispatch_instruction_sensor
    from der_assets.defs.resources import WarehouseResource

    import_demo_registry(engine, tmp_path)
    with running_vtn(tmp_path) as vtn, running_intake(engine, tmp_path, vtn_url=vtn["vtn_url"]) as (service, _):
        until(lambda: read_ready(tmp_path / "intake_ready.json")["ven"]["status"] == "registered", "the VEN to register")
        ven_line = read_ready(tmp_path / "intake_ready.json")["ven"]
        assert ven_line["vtn_url"] == vtn["vtn_url"] and ven_line["ven_id"] == vtn["ven_id"]

        before = dt.datetime.now(dt.timezone.utc)
        code, out, err = _der(capsys, "demo", "event", "--in", "10m", "--kw", "500", "--duration", "1h",
                              "--vtn-ready", str(tmp_path / "vtn_ready.json"), "--url", warehouse_url)
        assert (code, err) == (0, ""), err
        event_id = out.split()[2].rstrip(":")
        assert out.splitlines()[1].startswith(f"recorded by the VEN: instruction {event_id} modification 0 active")

        row = latest(engine, event_id)
        assert (row.channel, row.resource_id, row.iso, row.status) == ("openadr", "AGG-1", "PJM", "active")
        # 10 minutes from now, rounded up to the quarter-hour; an hour of 5-minute intervals at 500 kW
        assert before + dt.timedelta(minutes=10) <= row.start < before + dt.timedelta(minutes=25, seconds=1)
        assert row.start.minute % 15 == 0 and row.start.second == 0
        assert (row.end - row.start, row.interval_minutes, row.target_kw) == (dt.timedelta(hours=1), 5, (500.0,) * 12)
        issued = httpx.get(f"{vtn['admin_url']}/events", headers={"Authorization": f"Bearer {vtn['admin_token']}"},
                           timeout=10).json()
        until(lambda: httpx.get(f"{vtn['admin_url']}/events", timeout=10,
                                headers={"Authorization": f"Bearer {vtn['admin_token']}"}).json()[0]["opt"],
              "the VTN to hear the VEN's opt")
        assert [e["event_id"] for e in issued] == [event_id]

        # the dispatch sensor turns the VEN's instruction into a run request for its partition
        instance = dg.DagsterInstance.ephemeral()
        resources = {"warehouse": WarehouseResource(url=warehouse_url)}
        fired = dispatch_instruction_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [(r.partition_key, r.run_key) for r in fired.run_requests] == [(event_id, f"{event_id}:0:active")]

        # the resource check is the VEN's too: an event for a resource the registry lacks is opted out of
        code, out, err = _der(capsys, "demo", "event", "--kw", "50", "--resource", "AGG-9", "--wait-s", "20",
                              "--vtn-ready", str(tmp_path / "vtn_ready.json"), "--url", warehouse_url)
        refused = out.split()[2].rstrip(":")
        assert code == 1 and err.startswith(f"der: the VEN opted out of {refused}")
        assert latest(engine, refused) is None

        # the VTN cancels the first: a new modification, cancelled
        r = httpx.post(f"{vtn['admin_url']}/events/{event_id}/cancel", timeout=10,
                       headers={"Authorization": f"Bearer {vtn['admin_token']}"})
        assert r.status_code == 200
        until(lambda: latest(engine, event_id).status == "cancelled", "the cancellation in the store")
        assert [(h.modification, h.status) for h in history(engine, event_id)] == [(0, "superseded"), (1, "cancelled")]

    assert read_ready(tmp_path / "intake_ready.json")["ven"]["status"] == "stopped"
    kept = landed(engine)
    assert [e for e, _, _ in kept] == ["openadr"] * len(kept)
    assert any(s == "quarantined" and "resource AGG-9 is not in the registry; known: AGG-1" in err_
               for _, s, err_ in kept)

    # and the cancellation into one more (the running event releases its batteries)
    again = dispatch_instruction_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                                cursor=fired.cursor))
    assert [(r.partition_key, r.run_key) for r in again.run_requests] == [(event_id, f"{event_id}:1:cancelled")]


def test_the_admin_endpoint_wants_its_token_and_a_whole_event(tmp_path):
    with running_vtn(tmp_path) as vtn:
        url = f"{vtn['admin_url']}/events"
        start = "2026-07-15T18:00:00Z"
        assert httpx.post(url, json={"start": start, "duration_s": 3600, "kw": 5, "resource_id": "AGG-1"},
                          timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {vtn['admin_token']}"}
        r = httpx.post(url, json={"start": start, "duration_s": 1000, "kw": 5, "resource_id": "AGG-1"}, headers=auth,
                       timeout=10)
        assert r.status_code == 400
        assert r.json()["error"] == ("cannot issue the event: the duration (16.6667 min) is not a positive whole "
                                     "number of 5-minute intervals")
        assert httpx.post(url, json={"start": start, "kw": 5}, headers=auth, timeout=10).json()["error"] == (
            "cannot issue the event: missing key 'duration_s'")
        assert httpx.post(f"{url}/NOPE/cancel", headers=auth, timeout=10).status_code == 404


def test_demo_event_without_a_running_vtn_is_one_line(tmp_path, capsys):
    code, out, err = _der(capsys, "demo", "event", "--kw", "500", "--vtn-ready", str(tmp_path / "vtn_ready.json"))
    assert (code, out) == (2, "")
    assert err == f"der: error: {tmp_path / 'vtn_ready.json'}: no such file; no demo VTN is running (`der dev` starts one)\n"
    code, _, err = _der(capsys, "demo", "event", "--kw", "500", "--in", "ten minutes")
    assert code == 2 and "'ten minutes' is not a duration like 10m, 1h or 1h30m" in err


def test_the_ven_waits_for_a_vtn_that_starts_later(engine, tmp_path):
    """The intake may start before its VTN: the health line says unreachable, then registered."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
    ready_file = tmp_path / "intake_ready.json"
    with running_intake(engine, tmp_path, vtn_url=url):
        line = until(lambda: (r := read_ready(ready_file)) and r["ven"]["status"] == "unreachable" and r["ven"],
                     "the VEN to report the VTN unreachable")
        assert line["vtn_url"] == url and line["ven_id"] is None
        with running_vtn(tmp_path, port=port):
            line = until(lambda: (r := read_ready(ready_file))["ven"]["status"] == "registered" and r["ven"],
                         "the VEN to register once the VTN is up")
            assert line["last_error"] is None and line["poll_s"] == 1.0
            until(lambda: read_ready(ready_file)["ven"]["last_poll_at"], "a poll answered")
