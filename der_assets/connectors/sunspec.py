"""SunSpec Modbus TCP client (pymodbus 3.16 async): scan, decode, snapshot, and model 124 control.

Used for Fronius/ABB inverters and the Generac PWRcell beacon. Every SunSpec quirk lives here:

- Discovery: the "SunS" marker (0x5375 0x6E53) sits at 40000 on most devices, at 0 or 50000
  on some (0-based PDU addresses, as pysunspec2 probes them). After it, models chain as
  ID, L, <L registers>; the next model is at addr + L + 2, until ID 0xFFFF.
- A read moves at most 125 registers (Modbus limit), so long models are read in pieces.
- Values are integers with a separate scale factor: value = raw x 10^SF. A scale factor
  that is itself not implemented (0x8000) makes its values None, never a guess.
- Not-implemented sentinels become None: int16 0x8000, uint16/enum16/bitfield16 0xFFFF,
  uint32/bitfield32 0xFFFFFFFF, int32 0x80000000, acc16/acc32 0 (pysunspec2 treats an
  accumulator of 0 as not implemented), sunssf 0x8000, empty strings.
- Decoded models: 1 (common), 101/102/103 (inverter, int+SF), 124 (basic storage), 713 (DER
  storage capacity), 802 (battery). Other models are listed with their raw registers only.
- Snapshot JSON (one per poll; a poll log is several concatenated) is described in
  der_assets/telemetry/parsers/sunspec.py, which parses it.
- Control (model 124): a setpoint is written as OutWRte (discharge) or InWRte (charge) in %
  of WChaMax, then StorCtl_Mod (bit 1 discharge, bit 0 charge; 0 = back to self-consumption)
  LAST, since each write re-issues the command on real devices as on the twin.
  InOutWRte_RvrtTms (s) makes the device revert on its own if we go silent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from typing import Optional

import pandas as pd
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from .http import ConnectorError
from .payloads import Clock, PollLog, RawPayload, as_utc, utc_now

SNAPSHOT_FORMAT = "der_assets.sunspec_snapshot/1"
ENDPOINT = "snapshot"
MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)
END_MODEL = 0xFFFF
MAX_READ = 125
MAX_MODELS = 64

# (name, type, size in registers, scale-factor point); types as in the SunSpec model JSON
_INVERTER = [
    ("A", "uint16", 1, "A_SF"), ("AphA", "uint16", 1, "A_SF"), ("AphB", "uint16", 1, "A_SF"),
    ("AphC", "uint16", 1, "A_SF"), ("A_SF", "sunssf", 1, None),
    ("PPVphAB", "uint16", 1, "V_SF"), ("PPVphBC", "uint16", 1, "V_SF"), ("PPVphCA", "uint16", 1, "V_SF"),
    ("PhVphA", "uint16", 1, "V_SF"), ("PhVphB", "uint16", 1, "V_SF"), ("PhVphC", "uint16", 1, "V_SF"),
    ("V_SF", "sunssf", 1, None), ("W", "int16", 1, "W_SF"), ("W_SF", "sunssf", 1, None),
    ("Hz", "uint16", 1, "Hz_SF"), ("Hz_SF", "sunssf", 1, None), ("VA", "int16", 1, "VA_SF"),
    ("VA_SF", "sunssf", 1, None), ("VAr", "int16", 1, "VAr_SF"), ("VAr_SF", "sunssf", 1, None),
    ("PF", "int16", 1, "PF_SF"), ("PF_SF", "sunssf", 1, None), ("WH", "acc32", 2, "WH_SF"),
    ("WH_SF", "sunssf", 1, None), ("DCA", "uint16", 1, "DCA_SF"), ("DCA_SF", "sunssf", 1, None),
    ("DCV", "uint16", 1, "DCV_SF"), ("DCV_SF", "sunssf", 1, None), ("DCW", "int16", 1, "DCW_SF"),
    ("DCW_SF", "sunssf", 1, None), ("TmpCab", "int16", 1, "Tmp_SF"), ("TmpSnk", "int16", 1, "Tmp_SF"),
    ("TmpTrns", "int16", 1, "Tmp_SF"), ("TmpOt", "int16", 1, "Tmp_SF"), ("Tmp_SF", "sunssf", 1, None),
    ("St", "enum16", 1, None), ("StVnd", "enum16", 1, None), ("Evt1", "bitfield32", 2, None),
    ("Evt2", "bitfield32", 2, None), ("EvtVnd1", "bitfield32", 2, None), ("EvtVnd2", "bitfield32", 2, None),
    ("EvtVnd3", "bitfield32", 2, None), ("EvtVnd4", "bitfield32", 2, None),
]
MODELS = {
    1: [("Mn", "string", 16, None), ("Md", "string", 16, None), ("Opt", "string", 8, None),
        ("Vr", "string", 8, None), ("SN", "string", 16, None), ("DA", "uint16", 1, None), ("Pad", "pad", 1, None)],
    101: _INVERTER, 102: _INVERTER, 103: _INVERTER,
    124: [("WChaMax", "uint16", 1, "WChaMax_SF"), ("WChaGra", "uint16", 1, "WChaDisChaGra_SF"),
          ("WDisChaGra", "uint16", 1, "WChaDisChaGra_SF"), ("StorCtl_Mod", "bitfield16", 1, None),
          ("VAChaMax", "uint16", 1, "VAChaMax_SF"), ("MinRsvPct", "uint16", 1, "MinRsvPct_SF"),
          ("ChaState", "uint16", 1, "ChaState_SF"), ("StorAval", "uint16", 1, "StorAval_SF"),
          ("InBatV", "uint16", 1, "InBatV_SF"), ("ChaSt", "enum16", 1, None),
          ("OutWRte", "int16", 1, "InOutWRte_SF"), ("InWRte", "int16", 1, "InOutWRte_SF"),
          ("InOutWRte_WinTms", "uint16", 1, None), ("InOutWRte_RvrtTms", "uint16", 1, None),
          ("InOutWRte_RmpTms", "uint16", 1, None), ("ChaGriSet", "enum16", 1, None),
          ("WChaMax_SF", "sunssf", 1, None), ("WChaDisChaGra_SF", "sunssf", 1, None),
          ("VAChaMax_SF", "sunssf", 1, None), ("MinRsvPct_SF", "sunssf", 1, None),
          ("ChaState_SF", "sunssf", 1, None), ("StorAval_SF", "sunssf", 1, None),
          ("InBatV_SF", "sunssf", 1, None), ("InOutWRte_SF", "sunssf", 1, None)],
    713: [("WHRtg", "uint16", 1, "WH_SF"), ("WHAvail", "uint16", 1, "WH_SF"), ("SoC", "uint16", 1, "Pct_SF"),
          ("SoH", "uint16", 1, "Pct_SF"), ("Sta", "enum16", 1, None), ("WH_SF", "sunssf", 1, None),
          ("Pct_SF", "sunssf", 1, None)],
    802: [("AHRtg", "uint16", 1, "AHRtg_SF"), ("WHRtg", "uint16", 1, "WHRtg_SF"),
          ("WChaRteMax", "uint16", 1, "WChaDisChaMax_SF"), ("WDisChaRteMax", "uint16", 1, "WChaDisChaMax_SF"),
          ("DisChaRte", "uint16", 1, "DisChaRte_SF"), ("SoCMax", "uint16", 1, "SoC_SF"),
          ("SoCMin", "uint16", 1, "SoC_SF"), ("SocRsvMax", "uint16", 1, "SoC_SF"),
          ("SoCRsvMin", "uint16", 1, "SoC_SF"), ("SoC", "uint16", 1, "SoC_SF"), ("DoD", "uint16", 1, "DoD_SF"),
          ("SoH", "uint16", 1, "SoH_SF"), ("NCyc", "uint32", 2, None), ("ChaSt", "enum16", 1, None),
          ("LocRemCtl", "enum16", 1, None), ("Hb", "uint16", 1, None), ("CtrlHb", "uint16", 1, None),
          ("AlmRst", "uint16", 1, None), ("Typ", "enum16", 1, None), ("State", "enum16", 1, None),
          ("StateVnd", "enum16", 1, None), ("WarrDt", "uint32", 2, None), ("Evt1", "bitfield32", 2, None),
          ("Evt2", "bitfield32", 2, None), ("EvtVnd1", "bitfield32", 2, None), ("EvtVnd2", "bitfield32", 2, None),
          ("V", "uint16", 1, "V_SF"), ("VMax", "uint16", 1, "V_SF"), ("VMin", "uint16", 1, "V_SF"),
          ("CellVMax", "uint16", 1, "CellV_SF"), ("CellVMaxStr", "uint16", 1, None),
          ("CellVMaxMod", "uint16", 1, None), ("CellVMin", "uint16", 1, "CellV_SF"),
          ("CellVMinStr", "uint16", 1, None), ("CellVMinMod", "uint16", 1, None),
          ("CellVAvg", "uint16", 1, "CellV_SF"), ("A", "int16", 1, "A_SF"), ("AChaMax", "uint16", 1, "AMax_SF"),
          ("ADisChaMax", "uint16", 1, "AMax_SF"), ("W", "int16", 1, "W_SF"), ("ReqInvState", "enum16", 1, None),
          ("ReqW", "int16", 1, "W_SF"), ("SetOp", "enum16", 1, None), ("SetInvState", "enum16", 1, None),
          ("AHRtg_SF", "sunssf", 1, None), ("WHRtg_SF", "sunssf", 1, None), ("WChaDisChaMax_SF", "sunssf", 1, None),
          ("DisChaRte_SF", "sunssf", 1, None), ("SoC_SF", "sunssf", 1, None), ("DoD_SF", "sunssf", 1, None),
          ("SoH_SF", "sunssf", 1, None), ("V_SF", "sunssf", 1, None), ("CellV_SF", "sunssf", 1, None),
          ("A_SF", "sunssf", 1, None), ("AMax_SF", "sunssf", 1, None), ("W_SF", "sunssf", 1, None)],
}
STORCTL_CHARGE, STORCTL_DISCHARGE = 0x1, 0x2


# ---- decoding (pure) ----------------------------------------------------------------------------


def _int(regs: list[int]) -> int:
    v = 0
    for r in regs:
        v = (v << 16) | (r & 0xFFFF)
    return v


def decode_point(ptype: str, regs: list[int]):
    """One point's raw value (before scaling), None for its not-implemented sentinel."""
    if ptype == "string":
        raw = b"".join(r.to_bytes(2, "big") for r in regs).split(b"\0", 1)[0]
        text = raw.decode("ascii", "replace").strip()
        return text or None
    v = _int(regs)
    bits = 16 * len(regs)
    if ptype in ("int16", "sunssf", "int32", "int64"):
        if v == 1 << (bits - 1):
            return None
        return v - (1 << bits) if v >= 1 << (bits - 1) else v
    if ptype in ("uint16", "enum16", "bitfield16", "uint32", "enum32", "bitfield32", "uint64"):
        return None if v == (1 << bits) - 1 else v
    if ptype in ("acc16", "acc32", "acc64"):
        return None if v == 0 else v
    if ptype == "pad":
        return None
    raise ValueError(f"unsupported SunSpec point type {ptype!r}")


def decode_model(model_id: int, body: list[int]) -> Optional[dict]:
    """Points of a known model with scale factors applied (SF points kept as integers); None if unknown."""
    points = MODELS.get(model_id)
    if points is None:
        return None
    raw, pos = {}, 0
    for name, ptype, size, _sf in points:
        if pos + size > len(body):
            break  # a shorter (older) model revision: trailing points absent
        raw[name] = decode_point(ptype, body[pos:pos + size])
        pos += size
    out = {}
    for name, ptype, _size, sf in points:
        if name not in raw or ptype == "pad":
            continue
        v = raw[name]
        if sf is not None and v is not None:
            scale = raw.get(sf)
            v = None if scale is None else float(v) * 10.0 ** scale
        out[name] = v
    return out


# ---- the device -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SunSpecDevice:
    """One Modbus endpoint as the ready file / DER_SUNSPEC_DEVICES lists it."""

    site_id: str
    host: str
    port: int
    unit_id: int = 1
    device_id: Optional[str] = None
    source: str = "sunspec"  # "sunspec" (Fronius/ABB) or "generac"

    @classmethod
    def from_dict(cls, d: dict) -> "SunSpecDevice":
        return cls(str(d["site_id"]), str(d["host"]), int(d["port"]), int(d.get("unit_id", 1)),
                   d.get("device_id"), str(d.get("source", "sunspec")))


@dataclass(frozen=True)
class ModelRef:
    model_id: int
    address: int  # of the ID register
    length: int


class SunSpecClient:
    """An open Modbus TCP connection to one device, with its scanned model map."""

    def __init__(self, device: SunSpecDevice, *, timeout_s: float = 3.0, retries: int = 2):
        self.device = device
        self._client = AsyncModbusTcpClient(device.host, port=device.port, timeout=timeout_s, retries=retries,
                                            reconnect_delay=0)
        self.base: Optional[int] = None
        self.models: list[ModelRef] = []

    def _fail(self, reason: str, endpoint: str = ENDPOINT) -> ConnectorError:
        d = self.device
        return ConnectorError(f"{d.host}:{d.port} unit {d.unit_id}: {reason}", source=d.source, endpoint=endpoint,
                              site_id=d.site_id, retryable=True, at=dt.datetime.now(dt.UTC))

    async def __aenter__(self) -> "SunSpecClient":
        if not await self._client.connect():
            raise self._fail("cannot connect")
        return self

    async def __aexit__(self, *exc) -> None:
        self._client.close()

    async def read(self, address: int, count: int) -> Optional[list[int]]:
        """Holding registers [address, address+count), in <=125 pieces; None on a Modbus exception reply."""
        out: list[int] = []
        while count > 0:
            n = min(count, MAX_READ)
            try:
                rr = await self._client.read_holding_registers(address, count=n, device_id=self.device.unit_id)
            except ModbusException as exc:
                raise self._fail(f"read {address}+{n}: {exc}") from None
            if rr.isError():
                return None
            out.extend(rr.registers)
            address, count = address + n, count - n
        return out

    async def scan(self) -> list[ModelRef]:
        """Find "SunS" (40000, then 0, then 50000) and walk the model chain to 0xFFFF."""
        for base in BASE_ADDRESSES:
            marker = await self.read(base, 2)
            if marker is not None and tuple(marker) == MARKER:
                break
        else:
            raise self._fail(f"no SunSpec marker 'SunS' at {', '.join(map(str, BASE_ADDRESSES))}", "scan")
        models, addr = [], base + 2
        for _ in range(MAX_MODELS):
            head = await self.read(addr, 2)
            if head is None:
                raise self._fail(f"model chain broken at {addr} (no END model 0xFFFF)", "scan")
            model_id, length = head
            if model_id == END_MODEL:
                self.base, self.models = base, models
                return models
            models.append(ModelRef(model_id, addr, length))
            addr += length + 2
        raise self._fail(f"more than {MAX_MODELS} models: chain does not end", "scan")

    async def snapshot(self, polled_at) -> dict:
        """Every model's registers, decoded where known, as one snapshot dict."""
        if self.base is None:
            await self.scan()
        models = []
        for m in self.models:
            body = await self.read(m.address + 2, m.length)
            if body is None:
                raise self._fail(f"model {m.model_id} at {m.address} unreadable")
            models.append({"id": m.model_id, "address": m.address, "length": m.length,
                           "points": decode_model(m.model_id, body), "registers": body})
        return {"format": SNAPSHOT_FORMAT, "polled_at": pd.Timestamp(as_utc(polled_at)).isoformat(),
                "unit_id": self.device.unit_id, "base_address": self.base, "models": models}

    def model(self, model_id: int) -> ModelRef:
        for m in self.models:
            if m.model_id == model_id:
                return m
        raise self._fail(f"device has no model {model_id} (models: {[m.model_id for m in self.models]})", "control")

    async def write(self, address: int, values: list[int]) -> None:
        try:
            rr = await self._client.write_registers(address, values, device_id=self.device.unit_id)
        except ModbusException as exc:
            raise self._fail(f"write {address}: {exc}", "control") from None
        if rr.isError():
            code = getattr(rr, "exception_code", "?")
            err = self._fail(f"device refused write of {values} at {address} (Modbus exception {code})", "control")
            err.retryable = False
            raise err


def snapshot_bytes(snapshot: dict) -> bytes:
    return json.dumps(snapshot, separators=(",", ":")).encode()


async def pull(device: SunSpecDevice, *, polls: int, every_s: float, clock: Clock = utc_now,
               sleep=asyncio.sleep, timeout_s: float = 3.0) -> list[RawPayload]:
    """Scan once, then `polls` snapshots `every_s` apart, as one poll-log payload.

    A poll that fails mid-way leaves a gap in the log; if every poll failed, the last
    error is raised.
    """
    log = PollLog(device.source, ENDPOINT, device.site_id, device_id=device.device_id)
    last: Optional[ConnectorError] = None
    async with SunSpecClient(device, timeout_s=timeout_s) as c:
        await c.scan()
        for i in range(polls):
            if i:
                await sleep(every_s)
            try:
                at = clock()
                log.add(at, snapshot_bytes(await c.snapshot(at)))
            except ConnectorError as exc:
                last = exc
    if not log.polls and last is not None:
        raise last
    return log.payloads(as_utc(clock()))


# ---- control (model 124) ----------------------------------------------------------------------


def _u16(v: int) -> int:
    return int(v) & 0xFFFF


async def write_storage_setpoint(c: SunSpecClient, setpoint_kw: Optional[float], *, revert_s: int = 0) -> dict:
    """Ask the battery for setpoint_kw (+ discharge, - charge; None = back to self-consumption).

    Rates are written as % of WChaMax in the model's InOutWRte_SF; revert_s > 0 makes the
    device drop the command on its own after that many seconds. Returns what was written.
    A setpoint beyond WChaMax raises ValueError before anything is written.
    """
    if c.base is None:
        await c.scan()
    m = c.model(124)
    body = await c.read(m.address + 2, m.length)
    if body is None:
        raise c._fail("model 124 unreadable", "control")
    pts = decode_model(124, body)
    wchamax_w, rte_sf = pts.get("WChaMax"), pts.get("InOutWRte_SF")
    offset = {name: i for i, name in enumerate(n for n, *_ in MODELS[124])}  # all model-124 points are 1 register
    addr = m.address + 2
    if setpoint_kw is None:
        mode, out_raw, in_raw = 0, None, None
    else:
        if not wchamax_w or rte_sf is None:
            raise c._fail("model 124 has no usable WChaMax / InOutWRte_SF: cannot express a rate", "control")
        pct = abs(setpoint_kw) * 1000.0 / wchamax_w * 100.0
        if pct > 100.0 + 1e-9:
            raise ValueError(f"setpoint {setpoint_kw} kW exceeds WChaMax {wchamax_w / 1000:g} kW")
        raw = round(pct / 10.0 ** rte_sf)
        mode = STORCTL_DISCHARGE if setpoint_kw > 0 else STORCTL_CHARGE
        out_raw, in_raw = (raw, 0) if setpoint_kw > 0 else (0, raw)
    if out_raw is not None:
        await c.write(addr + offset["OutWRte"], [_u16(out_raw), _u16(in_raw)])
    await c.write(addr + offset["InOutWRte_RvrtTms"], [int(revert_s)])
    await c.write(addr + offset["StorCtl_Mod"], [mode])  # last: this is what arms the command
    return {"StorCtl_Mod": mode, "OutWRte_raw": out_raw, "InWRte_raw": in_raw, "InOutWRte_RvrtTms": int(revert_s),
            "WChaMax_w": wchamax_w}
