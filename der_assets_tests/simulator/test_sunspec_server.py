"""SunSpec Modbus TCP server: scanned by the independent pysunspec2 client, controls become setpoints."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pandas as pd
import pytest
from pymodbus.constants import ExcCodes

from der_assets.simulator import FleetSpec, FleetTwin
from der_assets.simulator.sunspec_server import (
    M103_ADDR, M124_ADDR, O_INWRTE, O_OUTWRTE, O_RVRTTMS, O_STORCTL, O_WCHAMAX, SunSpecServer, SunSpecSite,
)

from ._fleets import site_row

START = pd.Timestamp("2026-07-15 16:00", tz="UTC")


def _twin(**overrides) -> FleetTwin:
    fleet = FleetSpec.from_frame(pd.DataFrame([site_row("SITE-1", **overrides), site_row("PV-ONLY", battery_kwh=0.0)]))
    return FleetTwin(fleet, START)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_register_image_values_and_sentinels():
    twin = _twin()
    twin.step(3)
    site = SunSpecSite(twin, "SITE-1")
    r = site.refresh()
    assert r[0:2] == [0x5375, 0x6E53]  # "SunS" at 40000
    assert r[2:4] == [1, 66]
    assert r[M103_ADDR - 40000 : M103_ADDR - 40000 + 2] == [103, 50]
    m = M103_ADDR - 40000
    pv_w = twin.last_result.pv_kwh[-1, 0] * 12 * 1000
    assert r[m + 14] == round(pv_w)  # W with W_SF = 0
    assert r[m + 7] == 0xFFFF  # PPVphAB uint16 not implemented
    assert r[m + 34] == 0x8000  # TmpSnk int16 not implemented
    s = M124_ADDR - 40000
    assert r[s : s + 2] == [124, 24]
    assert r[s + 8] == round(twin.soc_pct[0] * 10)  # ChaState, SF -1
    assert r[s + 20] == 0x8000  # VAChaMax_SF sunssf not implemented
    assert r[s + 26 : s + 28] == [0xFFFF, 0]  # end model
    # a PV-only site ends after model 103
    pv_only = SunSpecSite(twin, "PV-ONLY").refresh()
    assert pv_only[M124_ADDR - 40000 : M124_ADDR - 40000 + 2] == [0xFFFF, 0]


def test_storage_writes_become_setpoints_and_bad_values_are_rejected():
    twin = _twin(command_latency_s=30.0)
    site = SunSpecSite(twin, "SITE-1")
    a = M124_ADDR
    assert site.write(a + O_OUTWRTE, [1001]) == ExcCodes.ILLEGAL_VALUE  # > 100.0 %
    assert site.write(a + O_STORCTL, [4]) == ExcCodes.ILLEGAL_VALUE  # undefined bit
    assert site.write(a + O_WCHAMAX, [6000]) == ExcCodes.ILLEGAL_VALUE  # above the 5 kW rating
    assert site.write(M103_ADDR + 14, [1]) == ExcCodes.ILLEGAL_ADDRESS  # W is read-only
    assert site.write(a + 8, [500]) == ExcCodes.ILLEGAL_ADDRESS  # ChaState is read-only
    assert twin.commands.empty
    # discharge at 60 % of WChaMax (4 kW) = 2.4 kW for 600 s
    assert site.write(a + O_WCHAMAX, [4000]) is None
    assert site.write(a + O_OUTWRTE, [600]) is None
    assert site.write(a + O_RVRTTMS, [600]) is None
    assert site.write(a + O_STORCTL, [2]) is None
    cmd = twin.commands.iloc[-1]
    assert cmd["setpoint_kw"] == pytest.approx(2.4)
    assert cmd["start"] == START + pd.Timedelta(seconds=30)
    assert cmd["end"] == START + pd.Timedelta(seconds=630)
    # charge at 25 % via InWRte with the CHARGE bit: -1 kW; negative percentages are allowed
    assert site.write(a + O_INWRTE, [250]) is None and site.write(a + O_STORCTL, [1]) is None
    assert site.setpoint_kw() == pytest.approx(-1.0)
    assert site.write(a + O_OUTWRTE, [(-300) & 0xFFFF]) is None and site.write(a + O_STORCTL, [2]) is None
    assert site.setpoint_kw() == pytest.approx(-1.2)
    # after the revert time the control mode reads 0 again and the twin is back to self-consumption
    twin.advance_to(START + pd.Timedelta(minutes=20))
    r = site.refresh()
    assert r[a - 40000 + O_STORCTL] == 0
    assert twin.commands.empty


@pytest.mark.slow
def test_pysunspec2_scans_and_reads_w_and_commands_the_twin():
    sclient = pytest.importorskip("sunspec2.modbus.client")
    twin = _twin(command_latency_s=0.0, ramp_kw_per_s=100.0)
    twin.step(3)
    port = _free_port()

    def client_session():
        dev = sclient.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port)
        try:
            dev.scan()
            ids = sorted(k for k in dev.models if isinstance(k, int))
            inv = dev.models[103][0]
            storage = dev.models[124][0]
            seen = {"ids": ids, "W": inv.W.cvalue, "WH": inv.WH.cvalue, "TmpSnk": inv.TmpSnk.value,
                    "ChaState": storage.ChaState.cvalue, "WChaMax": storage.WChaMax.cvalue}
            storage.OutWRte.cvalue = 80.0
            storage.StorCtl_Mod.value = 2
            storage.write()
            return seen
        finally:
            dev.close()

    async def run():
        async with SunSpecServer(SunSpecSite(twin, "SITE-1"), port=port):
            return await asyncio.to_thread(client_session)

    seen = asyncio.run(run())
    assert seen["ids"] == [1, 103, 124]
    assert seen["W"] == pytest.approx(twin.last_result.pv_kwh[-1, 0] * 12 * 1000, abs=0.5)
    assert seen["WH"] == int(twin.lifetime_wh()["pv_wh"].iloc[0])
    assert seen["TmpSnk"] is None  # the 0x8000 sentinel reads as "not implemented"
    assert seen["ChaState"] == pytest.approx(round(twin.soc_pct[0], 1))
    assert seen["WChaMax"] == 5000
    # the write is a setpoint of 80 % x 5 kW = 4 kW, delivered by the twin from now on
    assert twin.commands.iloc[-1]["setpoint_kw"] == pytest.approx(4.0)
    res = twin.step(2)
    assert np.allclose(res.battery_kwh[:, 0], 4.0 / 12, atol=1e-3)


def test_server_refuses_non_loopback_addresses():
    twin = _twin()
    with pytest.raises(ValueError, match="loopback"):
        SunSpecServer(SunSpecSite(twin, "SITE-1"), host="0.0.0.0")


def test_realtime_site_follows_the_clock_and_stamps_commands_with_it():
    twin = _twin(command_latency_s=10.0)
    now = {"t": (START + pd.Timedelta(minutes=11)).value / 1e9}
    site = SunSpecSite(twin, "SITE-1", realtime=True, clock=lambda: now["t"])
    site.refresh()
    assert twin.now == START + pd.Timedelta(minutes=10)  # only whole elapsed intervals
    assert site.write(M124_ADDR + O_INWRTE, [1000]) is None
    assert site.write(M124_ADDR + O_STORCTL, [1]) is None  # charge at 100 % of 5 kW
    cmd = twin.commands.iloc[-1]
    assert cmd["setpoint_kw"] == pytest.approx(-5.0)
    assert cmd["start"] == START + pd.Timedelta(minutes=11, seconds=10)
    assert pd.isna(cmd["end"])  # RvrtTms = 0: until changed
