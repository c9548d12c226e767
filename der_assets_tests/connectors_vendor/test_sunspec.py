"""SunSpec Modbus connector against the twin's pymodbus server: scan, decode, poll log, model 124 control."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest

from der_assets.connectors import sunspec
from der_assets.connectors.http import ConnectorError
from der_assets.simulator.sunspec_server import SunSpecServer, SunSpecSite
from der_assets.telemetry import parse_payload, parsers
from der_assets.telemetry.parsers import sunspec as sunspec_parser

from ._twin import clock_sleep, make_hub, run, twin_sum

SITE = "S-00039"  # America/New_York, SunSpec inverter + battery


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def registered(monkeypatch):
    """The one-line registration the lead adds to parsers/__init__.py, applied for this test only."""
    monkeypatch.setitem(parsers.VENDORS, "sunspec", (sunspec_parser, "sunspec"))
    monkeypatch.setitem(parsers.PARSERS, ("sunspec", "snapshot"), sunspec_parser.parse_snapshot)


def test_decode_sentinels_and_scale_factors():
    body = [0] * 50
    body[12], body[13] = 4321, 1  # W=4321 x 10^1
    body[22], body[23], body[24] = 0, 0, 0  # WH acc32 = 0 -> not implemented
    body[4] = 0x8000  # A_SF not implemented -> A, AphA.. are None
    body[32] = 0x8000  # TmpSnk int16 sentinel
    body[5] = 0xFFFF  # PPVphAB uint16 sentinel
    body[40:42] = [0xFFFF, 0xFFFF]  # Evt2 bitfield32 sentinel
    p = sunspec.decode_model(103, body)
    assert p["W"] == 43210.0 and p["W_SF"] == 1
    assert p["WH"] is None and p["A"] is None and p["A_SF"] is None
    assert p["TmpSnk"] is None and p["PPVphAB"] is None and p["Evt2"] is None and p["Evt1"] == 0
    assert sunspec.decode_point("string", [0x4142, 0x4300, 0x4444]) == "ABC"
    assert sunspec.decode_point("uint32", [0xFFFF, 0xFFFF]) is None
    assert sunspec.decode_point("int16", [0xFFFE]) == -2
    assert sunspec.decode_model(64259, [1, 2]) is None  # not decoded: raw registers only


def test_scan_poll_log_parses_and_pv_matches_the_twin(registered):
    hub, clock = make_hub(days=2.75)
    t0 = clock()
    port = _port()
    device = sunspec.SunSpecDevice(SITE, "127.0.0.1", port, 1, f"{SITE}-BAT", "sunspec")

    async def go():
        async with SunSpecServer(SunSpecSite(hub.twin, SITE), port=port):
            async with sunspec.SunSpecClient(device) as c:
                models = [m.model_id for m in await c.scan()]
                one = await c.snapshot(clock())
            payloads = await sunspec.pull(device, polls=13, every_s=300, clock=clock, sleep=clock_sleep(clock, hub))
            return models, one, payloads
    models, one, payloads = run(go())
    assert models == [1, 103, 124]
    common = next(m for m in one["models"] if m["id"] == 1)["points"]
    assert common["SN"] == SITE and common["Mn"] == "der_assets"
    storage = next(m for m in one["models"] if m["id"] == 124)["points"]
    assert storage["ChaState"] == pytest.approx(float(hub.twin.soc_pct[hub.site_index(SITE)]), abs=0.05)
    assert storage["VAChaMax"] is None and storage["StorAval"] is None  # not implemented on the twin
    (payload,) = payloads
    assert (payload.source, payload.endpoint, payload.site_id) == ("sunspec", "snapshot", SITE)
    assert len(payload.content.splitlines()) == 13
    assert json.loads(payload.content.splitlines()[0])["format"] == sunspec.SNAPSHOT_FORMAT
    df = parse_payload(payload.source, payload.endpoint, payload.content, **payload.parse_kwargs())
    pv = df[df["channel"] == "pv_kwh"]
    assert len(pv) == 4 and (pv["quality"] == "measured").all()
    end = t0 + pd.Timedelta(hours=1)
    assert pv["value"].sum() == pytest.approx(twin_sum(hub, SITE, "pv_kwh", t0, end), abs=0.001)  # whole-Wh WH
    assert set(df["channel"]) == {"pv_kwh", "soc_pct"}


def test_write_storage_setpoint_becomes_a_twin_command_and_limits_are_checked():
    hub, clock = make_hub(days=2)
    site = SunSpecSite(hub.twin, SITE)
    port = _port()
    device = sunspec.SunSpecDevice(SITE, "127.0.0.1", port)

    async def go():
        async with SunSpecServer(site, port=port):
            async with sunspec.SunSpecClient(device) as c:
                wrote = await sunspec.write_storage_setpoint(c, 2.0, revert_s=900)
                discharge = (site.storctl_mod, site.setpoint_kw(), site.rvrt_tms)
                await sunspec.write_storage_setpoint(c, -1.5)
                charge = site.setpoint_kw()
                with pytest.raises(ValueError, match="exceeds WChaMax"):
                    await sunspec.write_storage_setpoint(c, 1000.0)
                await sunspec.write_storage_setpoint(c, None)
                return wrote, discharge, charge, site.setpoint_kw()
    wrote, discharge, charge, released = run(go())
    assert wrote["StorCtl_Mod"] == sunspec.STORCTL_DISCHARGE
    assert discharge[0] == 2 and discharge[1] == pytest.approx(2.0, abs=0.01) and discharge[2] == 900
    assert charge == pytest.approx(-1.5, abs=0.01)
    assert released is None


def test_no_device_is_a_connector_error():
    device = sunspec.SunSpecDevice(SITE, "127.0.0.1", _port())

    async def go():
        await sunspec.pull(device, polls=1, every_s=0, timeout_s=0.5)
    with pytest.raises(ConnectorError, match=r"sunspec/snapshot site=S-00039 .*cannot connect"):
        run(go())
