"""Command adapters against the twin's real control paths: each vendor's battery takes the setpoint."""

from __future__ import annotations

import asyncio
import json
import socket

import pandas as pd
import pytest

from der_assets.dispatch.adapters import send_setpoint
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.simulator.sunspec_server import SunSpecServer, SunSpecSite

pytest.importorskip("sunspec2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def twin(tmp_path, monkeypatch):
    fleet = demo_fleet(30)
    clock = ManualClock(pd.Timestamp("2026-07-15T16:00Z"))
    hub = TwinHub(fleet, start=clock(), clock=clock)
    clock.advance(minutes=30)
    hub.sync()
    creds = make_credentials(0)
    batteries = fleet[fleet.device_type == "battery"].drop_duplicates("telemetry_source").set_index("telemetry_source")
    modbus_site = batteries.loc["generac", "site_id"]
    port = _free_port()
    with serving(build_http_apps(hub, creds)) as urls:
        ready = tmp_path / "ready.json"
        ready.write_text(json.dumps({
            "http": urls, "credentials": creds, "ami_inbox": str(tmp_path),
            "sunspec": [{"site_id": modbus_site, "host": "127.0.0.1", "port": port, "unit_id": 1, "source": "generac"}]}))
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
        yield hub, batteries, SunSpecSite(hub.twin, modbus_site, generac_site_energy=True), port


def _last_command(hub, site_id):
    commands = hub.twin.commands
    return commands[commands.site_id == site_id].iloc[-1]


@pytest.mark.parametrize("source", ["solaredge", "enphase", "sma", "sonnen", "generac"])
def test_each_vendor_takes_a_setpoint(twin, source):
    hub, batteries, modbus_site, port = twin
    battery = batteries.loc[source]

    async def run():
        async with SunSpecServer(modbus_site, port=port):
            return await send_setpoint(battery.device_id, battery.site_id, source, 3.0, 900)

    ack = asyncio.run(run())
    assert ack.ok, ack.detail
    assert _last_command(hub, battery.site_id)["setpoint_kw"] == pytest.approx(3.0, abs=0.01)


def test_out_of_limits_is_refused_not_raised(twin):
    hub, batteries, _, _ = twin
    battery = batteries.loc["solaredge"]
    ack = asyncio.run(send_setpoint(battery.device_id, battery.site_id, "solaredge", 50.0, 900))
    assert not ack.ok and "400" in ack.detail
    assert ack.battery_id == battery.device_id


def test_unknown_control_path(twin):
    ack = asyncio.run(send_setpoint("X-BAT", "X", "fronius", 1.0, 60))
    assert not ack.ok and "no control path" in ack.detail
