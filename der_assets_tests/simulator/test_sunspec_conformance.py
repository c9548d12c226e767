"""SunSpec and Generac PWRcell conformance: the twin's registers decode with the real model definitions.

pysunspec2 is pointed at the model definitions copied into der_assets_tests/fixtures (the
official SunSpec models 1, 103, 124 and Generac's vendor model 64259), scans a twin device
over Modbus TCP on loopback, and the decoded points must be the twin's own numbers.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pandas as pd
import pytest

from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.sunspec_server import M64259_LEN, M64259_POINTS, SunSpecServer, SunSpecSite

sclient = pytest.importorskip("sunspec2.modbus.client")
sdevice = pytest.importorskip("sunspec2.device")

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SUNSPEC_DEFS = FIXTURES / "sunspec" / "models_json"
GENERAC_DEFS = FIXTURES / "generac_pwrcell" / "edalquist_pwrcell_sunspec" / "vendor_models_json"


def test_generac_layout_matches_the_vendor_definition():
    definition = json.loads((GENERAC_DEFS / "model_64259.json").read_text())
    points = definition["group"]["points"][2:]  # after ID and L
    assert [(p["name"], p["type"], p.get("size", 1)) for p in points] == list(M64259_POINTS)
    assert sum(p.get("size", 1) for p in points) == M64259_LEN
    units = {p["name"]: p.get("units") for p in points}
    assert units["generation"] == "Ws" and units["time"] == "Unix seconds" and units["bat_soc"] == "%SoC"


@pytest.fixture
def official_definitions():
    saved = list(sdevice.model_defs_path)
    sdevice.set_model_defs_path([str(SUNSPEC_DEFS), str(GENERAC_DEFS)])
    sdevice.clear_model_defs_cache()
    yield
    sdevice.set_model_defs_path(saved)
    sdevice.clear_model_defs_cache()


def test_generac_device_decodes_with_fixture_definitions(official_definitions):
    clock = ManualClock(pd.Timestamp("2026-07-15T16:00Z"))
    fleet = demo_fleet(30)
    site_id = fleet.loc[fleet.telemetry_source == "generac", "site_id"].iloc[0]
    hub = TwinHub(fleet, start=clock(), clock=clock)
    clock.advance(hours=2)
    hub.sync()
    site = SunSpecSite(hub.twin, site_id, generac_site_energy=True, manufacturer="Generac")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def read():
        dev = sclient.SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port)
        try:
            dev.scan()
            site_energy = dev.models[64259][0]
            return {
                "models": sorted(k for k in dev.models if isinstance(k, int)),
                "Mn": dev.models[1][0].Mn.value,
                "W": dev.models[103][0].W.cvalue,
                "WH": dev.models[103][0].WH.cvalue,
                "ChaState": dev.models[124][0].ChaState.cvalue,
                "time": site_energy.time.value,
                "bat_soc": site_energy.bat_soc.cvalue,
                "generation": site_energy.generation.value,
                "bat_in": site_energy.bat_in.value,
                "net_in": site_energy.net_in.value,
            }
        finally:
            dev.close()

    async def run():
        async with SunSpecServer(site, port=port):
            return await asyncio.to_thread(read)

    seen = asyncio.run(run())
    i = hub.site_index(site_id)
    lifetime = hub.twin.lifetime_wh().iloc[i]
    assert seen["models"] == [1, 103, 124, 64259]
    assert seen["Mn"] == "Generac"
    assert seen["time"] == int(hub.twin.now.timestamp())
    assert seen["generation"] == round(lifetime["pv_wh"] * 3600)  # watt-seconds, not Wh
    assert seen["bat_in"] == round(lifetime["battery_charge_wh"] * 3600)
    assert seen["net_in"] == round(lifetime["grid_import_wh"] * 3600)
    assert seen["WH"] == int(lifetime["pv_wh"])
    assert seen["bat_soc"] == pytest.approx(round(hub.twin.soc_pct[i], 1))
    assert seen["ChaState"] == pytest.approx(round(hub.twin.soc_pct[i], 1))
    assert seen["W"] == pytest.approx(hub.twin.last_result.pv_kwh[-1, i] * 12 * 1000, abs=1.0)
