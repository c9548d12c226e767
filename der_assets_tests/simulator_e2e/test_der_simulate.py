"""`der simulate` end to end: the ready file, and a discharge command over a real protocol.

The twin runs as its own process in fast replay (600 simulated seconds per wall second) at
noon in July, when self-consumption charges every battery from PV. One battery is told over
SunSpec Modbus (model 124) to discharge; read back over the same protocol, its state of
charge falls while an untouched battery's does not.

Waits are in twin time, read from the clock the ready file publishes, never a wall-clock sleep:
the replay clock stands at --start until the ready file is written (however long the startup
takes on a busy machine), and the test waits until the twin has run 40 minutes past the command.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file

pytestmark = pytest.mark.slow
sclient = pytest.importorskip("sunspec2.modbus.client")
START = pd.Timestamp("2026-07-15T16:00Z")  # noon in Philadelphia


@pytest.fixture
def twin_process(tmp_path):
    registry = write_registry_file(demo_fleet(30), tmp_path / "fleet.csv")
    ready = tmp_path / "ready.json"
    der = Path(sys.executable).parent / "der"
    log = open(tmp_path / "simulate.log", "w")
    proc = subprocess.Popen(
        [str(der), "simulate", "--registry", str(registry), "--ready-file", str(ready),
         "--start", START.isoformat(), "--speed", "600", "--inbox", str(tmp_path / "inbox")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ),
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((tmp_path / "simulate.log").read_text()[-3000:])
            time.sleep(0.1)
        yield json.loads(ready.read_text()), tmp_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0, "der simulate did not stop cleanly on SIGTERM"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()


def _twin_now(ready: dict) -> pd.Timestamp:
    """The twin's time now, from the clock its ready file describes (the same wall clock as ours)."""
    clock = ready["clock"]
    return pd.Timestamp(clock["sim_epoch"]) + pd.Timedelta(seconds=(time.time() - clock["wall_epoch_s"]) * clock["speed"])


def _wait_twin(ready: dict, until: pd.Timestamp) -> None:
    deadline = time.monotonic() + 120
    while _twin_now(ready) < until:
        assert time.monotonic() < deadline, f"the twin did not reach {until}"
        time.sleep(0.05)


def _read_soc(device: dict) -> float:
    dev = sclient.SunSpecModbusClientDeviceTCP(slave_id=device["unit_id"], ipaddr=device["host"], ipport=device["port"])
    try:
        dev.scan()
        return dev.models[124][0].ChaState.cvalue
    finally:
        dev.close()


def _discharge(device: dict, pct: float) -> None:
    dev = sclient.SunSpecModbusClientDeviceTCP(slave_id=device["unit_id"], ipaddr=device["host"], ipport=device["port"])
    try:
        dev.scan()
        storage = dev.models[124][0]
        storage.OutWRte.cvalue = pct
        storage.StorCtl_Mod.value = 2  # DISCHARGE
        storage.write()
    finally:
        dev.close()


def test_ready_file_lists_every_protocol(twin_process):
    ready, tmp_path = twin_process
    assert ready["ami_inbox"] == str(tmp_path / "inbox")
    assert {"solaredge_api_key", "sonnen_auth_token"} <= set(ready["credentials"])
    fleet = demo_fleet(30)
    expected = set(fleet.loc[fleet.telemetry_source.isin(["generac", "sunspec"]), "site_id"])
    assert {d["site_id"] for d in ready["sunspec"]} == expected
    assert all(d["host"] == "127.0.0.1" for d in ready["sunspec"])
    # startup cost no twin time: the past was simulated up to --start exactly, and the clock runs from there
    assert pd.Timestamp(ready["history"]["until"]) == START == pd.Timestamp(ready["clock"]["sim_epoch"])


def test_discharge_over_modbus_changes_later_telemetry(twin_process):
    ready, _ = twin_process
    fleet = demo_fleet(30).drop_duplicates("site_id").set_index("site_id")
    # a battery that may export (a non-export site cannot discharge past its net load, which
    # is negative at noon) and whose reserve floor leaves room below its 50 % start
    free = [d for d in ready["sunspec"] if fleet.loc[d["site_id"], "reserve_floor_pct"] < 50
            and fleet.loc[d["site_id"], "export_allowed"]]
    commanded = free[0]
    control = next(d for d in ready["sunspec"] if d is not commanded)
    soc_before = _read_soc(commanded)
    control_before = _read_soc(control)
    _discharge(commanded, 100.0)  # full rated power
    commanded_at = _twin_now(ready)
    # 40 twin minutes, and one more step of the twin's run loop (a sync a wall second, 10 twin minutes)
    _wait_twin(ready, commanded_at + pd.Timedelta(minutes=50))
    soc_after = _read_soc(commanded)
    control_after = _read_soc(control)
    assert _twin_now(ready) < START + pd.Timedelta(hours=4), "the reads ran into the evening"
    # 5-9 kW for ~40 min out of 20 kWh is a drop of well over 5 points of SoC
    assert soc_after < soc_before - 5.0, (soc_before, soc_after)
    # the untouched battery charges from noon PV (or sits full)
    assert control_after >= control_before - 0.5, (control_before, control_after)
