"""End to end: openleadr's own VTN issues, modifies and cancels an event; our VEN lands and records it."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time

import pytest

pytest.importorskip("openleadr")
from openleadr import OpenADRServer, utils  # noqa: E402

from der_assets.connectors.landing import read_payload  # noqa: E402
from der_assets.dispatch.intake.openadr import InstructionVEN  # noqa: E402
from der_assets.dispatch.intake.store import history, latest  # noqa: E402

from ._helpers import landed  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    # openleadr's VTN stores itself under a str key in its aiohttp app; harmless, not ours to fix
    pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning"),
]
VEN_ID, REG_ID = "ven-der-1", "reg-der-1"
WAIT_S = 15.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _until(predicate, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


async def _scenario(engine):
    port = _free_port()
    server = OpenADRServer(
        vtn_id="TEST_VTN", http_host="127.0.0.1", http_port=port, requested_poll_freq=dt.timedelta(seconds=1),
        ven_lookup=lambda ven_id: {"ven_id": VEN_ID, "ven_name": "der-ven", "fingerprint": None, "registration_id": REG_ID},
        show_server_cert_domain=False,
    )

    async def register(registration_info):
        return VEN_ID, REG_ID

    server.add_handler("on_create_party_registration", register)
    await server.run()
    ven = InstructionVEN(engine, vtn_url=f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b", ven_name="der-ven",
                         iso="PJM", resource_id="AGG-1", simple_levels_kw={1: 1000.0, 2: 2000.0})
    try:
        await asyncio.wait_for(ven.run(), WAIT_S)
        assert ven.client.registration_id == REG_ID

        start = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
        intervals = [{"dtstart": start, "duration": dt.timedelta(minutes=30), "signal_payload": 1},
                     {"dtstart": start + dt.timedelta(minutes=30), "duration": dt.timedelta(minutes=30), "signal_payload": 2}]
        opted: list[str] = []
        event_id = server.add_event(ven_id=VEN_ID, signal_name="simple", signal_type="level", intervals=intervals,
                                    callback=lambda ven_id, event_id, opt_type: opted.append(opt_type))

        row = await _until(lambda: latest(engine, event_id), "the event in the store")
        assert (row.modification, row.status, row.channel) == (0, "active", "openadr")
        assert (row.start, row.end, row.interval_minutes) == (start, start + dt.timedelta(hours=1), 30)
        assert row.target_kw == (1000.0, 2000.0)
        xml = read_payload(row.raw_sha256)
        assert b"oadrDistributeEvent" in xml and event_id.encode() in xml
        await _until(lambda: opted == ["optIn"], "the VTN to hear optIn")

        # the VTN lowers the second interval: a modification
        event = server.events[VEN_ID][0]
        event.event_signals[0].intervals[1]["signal_payload"] = 1  # add_event keeps the dicts it was given
        utils.increment_event_modification_number(event)
        server.events_updated[VEN_ID] = True
        row = await _until(lambda: (r := latest(engine, event_id)) and r.modification == 1 and r, "modification 1")
        assert row.target_kw == (1000.0, 1000.0) and row.status == "active"

        server.cancel_event(VEN_ID, event_id)
        row = await _until(lambda: (r := latest(engine, event_id)) and r.modification == 2 and r, "the cancellation")
        assert row.status == "cancelled"
        assert [(r.modification, r.status) for r in history(engine, event_id)] == [
            (0, "superseded"), (1, "superseded"), (2, "cancelled")]
        assert [r[2] for r in ven.results] == ["new", "modified", "cancelled"]
    finally:
        await ven.stop()
        await server.stop()
    return landed(engine)


def test_vtn_event_modification_and_cancel_reach_the_store(engine, caplog):
    caplog.set_level(logging.WARNING, logger="openleadr")
    kept = asyncio.run(asyncio.wait_for(_scenario(engine), 50))
    # one landed oadrDistributeEvent per delivery, all parsed; empty polls are not landed
    assert kept == [("openadr", "parsed", None)] * 3
