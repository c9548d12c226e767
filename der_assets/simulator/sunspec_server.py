"""SunSpec Modbus TCP server for one FleetTwin site (models 1, 103, 124), loopback only.

Why: the telemetry connectors and the dispatch command adapters must be tested
against the real protocol, not a mock of our own client. This server speaks
SunSpec over pymodbus so an independent client (pysunspec2) can scan it.

Register map (0-based wire addresses, as pymodbus' SimData uses them; the old
1-based ``ModbusSequentialDataBlock`` is avoided as it is deprecated for v4):

======  =====================================================================
40000   "SunS" marker
40002   model 1 (common, L=66): Mn, Md, Opt, Vr, SN = site_id, DA
40070   model 103 (three-phase inverter, L=50): the PV inverter.
        W = PV AC power averaged over the last completed interval,
        WH = lifetime PV energy (acc32, Wh). Phase voltages, frequency,
        DC voltage and cabinet temperature are nominal constants.
40122   model 124 (basic storage, L=24), only for sites with a battery
40148   end model 0xFFFF, L=0
======  =====================================================================

Unimplemented points hold the SunSpec sentinels: 0x8000 (int16, sunssf),
0xFFFF (uint16, enum16), 0xFFFFFFFF (bitfield32).

Storage control (model 124), mapped onto twin setpoints (+ discharge, - charge):

* ``StorCtl_Mod`` bit 1 (DISCHARGE): setpoint += OutWRte % x WChaMax;
  bit 0 (CHARGE): setpoint -= InWRte % x WChaMax; 0 returns to self-consumption.
* ``InOutWRte_RvrtTms`` > 0: the setpoint lasts that many seconds, then the
  device reverts (StorCtl_Mod reads 0 again); 0 = until changed.
* Every write to WChaMax, StorCtl_Mod, OutWRte, InWRte or RvrtTms re-issues the
  setpoint; it acts after the site's latency and ramp like any twin command.
* Out-of-range values answer Modbus exception 3 (ILLEGAL DATA VALUE); writes
  to read-only or unimplemented registers answer exception 2 (ILLEGAL ADDRESS).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from .fleet import FleetTwin

BASE_ADDR = 40000
M1_ADDR = BASE_ADDR + 2
M1_LEN = 66
M103_ADDR = M1_ADDR + 2 + M1_LEN  # 40070
M103_LEN = 50
M124_ADDR = M103_ADDR + 2 + M103_LEN  # 40122
M124_LEN = 24

NI_INT16 = 0x8000
NI_UINT16 = 0xFFFF
NI_SUNSSF = 0x8000
NI_BITFIELD32 = (0xFFFF, 0xFFFF)

# model 124 point offsets (from the model start, ID at 0)
O_WCHAMAX, O_WCHAGRA, O_WDISCHAGRA, O_STORCTL = 2, 3, 4, 5
O_VACHAMAX, O_MINRSV, O_CHASTATE, O_STORAVAL, O_INBATV, O_CHAST = 6, 7, 8, 9, 10, 11
O_OUTWRTE, O_INWRTE, O_WINTMS, O_RVRTTMS, O_RMPTMS, O_CHAGRISET = 12, 13, 14, 15, 16, 17
O_SF_WCHAMAX, O_SF_GRA, O_SF_VACHAMAX, O_SF_MINRSV, O_SF_CHASTATE, O_SF_STORAVAL, O_SF_INBATV, O_SF_RTE = range(18, 26)
WRITABLE_124 = {O_WCHAMAX, O_STORCTL, O_OUTWRTE, O_INWRTE, O_RVRTTMS}

# Generac PWRcell vendor model 64259 "site_energy" (L=64): point name, type, registers. The
# layout follows Generac's published model definition; a conformance test compares it with
# the real model_64259.json. Counters are watt-seconds (Ws), not Wh.
M64259_LEN = 64
M64259_POINTS = (
    ("time", "uint32", 2), ("sysmode", "enum16", 1), ("alarms", "bitfield16", 1), ("bat_soc", "uint16", 1),
    ("sf_10", "sunssf", 1), ("inv_state", "enum16", 1), ("dcgenerator_power", "int16", 1),
    ("generation", "uint64", 4), ("consumption", "int64", 4), ("bat_out", "uint64", 4), ("bat_in", "uint64", 4),
    ("net_out", "uint64", 4), ("net_in", "uint64", 4), ("inv_out", "uint64", 4), ("inv_in", "uint64", 4),
    ("dcgenerator_out", "uint64", 4), ("dcgenerator_in", "uint64", 4), ("net_out_var", "uint64", 4),
    ("net_in_var", "uint64", 4), ("gen_power", "int16", 1), ("inv_power", "int16", 1), ("net_power", "int16", 1),
    ("bat_power", "int16", 1), ("max_sink_power", "int16", 1), ("max_source_power", "int16", 1),
    ("Pad5", "pad", 1), ("Pad6", "pad", 1),
)

SF_RTE = -1  # OutWRte / InWRte in 0.1 %
SF_PCT = -1  # SoC and reserve in 0.1 %
SF_GRA = -2  # ramp in 0.01 % of WChaMax per second
CHAST_OFF, CHAST_EMPTY, CHAST_DISCHARGING, CHAST_CHARGING, CHAST_FULL, CHAST_HOLDING = 1, 2, 3, 4, 5, 6
ST_SLEEPING, ST_MPPT, ST_THROTTLED = 2, 4, 5


def _u16(v: int) -> int:
    """Two's complement of a signed 16-bit value, as a register."""
    return int(v) & 0xFFFF


def _s16(reg: int) -> int:
    return reg - 0x10000 if reg & 0x8000 else reg


def _string_regs(text: str, n_regs: int) -> list[int]:
    raw = text.encode("ascii", "replace")[: 2 * n_regs].ljust(2 * n_regs, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, 2 * n_regs, 2)]


def _fit_sf(max_abs: float, limit: int) -> int:
    """Smallest scale factor >= 0 so that max_abs / 10**sf fits under ``limit``."""
    sf = 0
    while max_abs / 10**sf > limit:
        sf += 1
    return sf


def _clamp_int(x: float, lo: int, hi: int) -> int:
    return int(min(max(round(x), lo), hi))


class SunSpecSite:
    """The register image of one twin site and the rules for writing it (no networking)."""

    def __init__(
        self,
        twin: FleetTwin,
        site_id: str,
        *,
        realtime: bool = False,
        clock: Callable[[], float] = time.time,
        manufacturer: str = "der_assets",
        model_name: str = "FleetTwin hybrid",
        version: str = "0.1.0",
        generac_site_energy: bool = False,
    ) -> None:
        self.twin = twin
        self.site_id = str(site_id)
        self.idx = int(twin.fleet.index_of([self.site_id])[0])
        self.realtime = realtime
        self.clock = clock
        fleet = twin.fleet
        self.pv_ac_w = float(fleet.pv_ac_kw[self.idx] * 1000)
        self.battery_w = float(fleet.battery.power_kw[self.idx] * 1000)
        self.capacity_kwh = float(fleet.battery.capacity_kwh[self.idx])
        self.has_battery = self.capacity_kwh > 0
        self.w_sf = _fit_sf(max(self.pv_ac_w / 0.96, 1.0), 32767)
        self.wchamax_sf = _fit_sf(max(self.battery_w, 1.0), 65535)
        after_124 = (M124_ADDR + 2 + M124_LEN) if self.has_battery else M124_ADDR
        self.generac = generac_site_energy
        self.m64259_addr = after_124 if self.generac else None
        end = after_124 + (2 + M64259_LEN if self.generac else 0)
        self.end_addr = end
        self.n_regs = end + 2 - BASE_ADDR
        # model 124 control state, as last written
        self.wchamax_w = self.battery_w
        self.storctl_mod = 0
        self.out_wrte = 0  # in 10**SF_RTE %
        self.in_wrte = 0
        self.rvrt_tms = 0
        self.revert_at_s: float | None = None
        self._identity = (manufacturer, model_name, version)
        self.regs = self._static_image()

    # ---- image

    def _static_image(self) -> list[int]:
        r = [0] * self.n_regs

        def put(addr: int, values: list[int]) -> None:
            r[addr - BASE_ADDR : addr - BASE_ADDR + len(values)] = values

        put(BASE_ADDR, [0x5375, 0x6E53])  # "SunS"
        m1 = [1, M1_LEN]
        manufacturer, model_name, version = self._identity
        m1 += _string_regs(manufacturer, 16) + _string_regs(model_name, 16)
        m1 += _string_regs("", 8) + _string_regs(version, 8) + _string_regs(self.site_id, 16)
        m1 += [1, NI_INT16]  # DA, Pad
        put(M1_ADDR, m1)
        put(M103_ADDR, [103, M103_LEN])
        if self.has_battery:
            put(M124_ADDR, [124, M124_LEN])
        if self.generac:
            put(self.m64259_addr, [64259, M64259_LEN])
        put(self.end_addr, [0xFFFF, 0])
        return r

    def _now_s(self) -> float:
        return float(self.clock()) if self.realtime else float(self.twin.now.value / 1e9)

    def refresh(self) -> list[int]:
        """Recompute the live registers from the twin (syncing it first in real-time mode)."""
        if self.realtime:
            self.twin.sync(pd.Timestamp(self.clock(), unit="s", tz="UTC"))
        if self.revert_at_s is not None and self._now_s() >= self.revert_at_s:
            self.storctl_mod, self.revert_at_s = 0, None
        r = self.regs
        i = self.idx
        last = self.twin.last_result
        if last is not None and last.n_intervals:
            hours = last.interval_s / 3600
            pv_w = float(last.pv_kwh[-1, i] / hours * 1000)
        else:
            pv_w = 0.0
        counters = self.twin.lifetime_wh()
        wh = int(counters["pv_wh"].iloc[i]) % 2**32
        wsc = 10**self.w_sf
        amps = pv_w / 360.0  # three phases at 120 V
        dc_w = pv_w / 0.96
        if pv_w <= 0:
            st = ST_SLEEPING
        elif pv_w >= 0.999 * self.pv_ac_w:
            st = ST_THROTTLED
        else:
            st = ST_MPPT
        m = M103_ADDR - BASE_ADDR
        r[m + 2 : m + 2 + 50] = [
            _clamp_int(amps * 100, 0, 65534), *[_clamp_int(amps / 3 * 100, 0, 65534)] * 3, _u16(-2),  # A, AphA-C, A_SF
            NI_UINT16, NI_UINT16, NI_UINT16, 1200, 1200, 1200, _u16(-1),  # PPVph*, PhVph* 120.0 V, V_SF
            _u16(_clamp_int(pv_w / wsc, -32767, 32767)), _u16(self.w_sf),  # W, W_SF
            6000, _u16(-2),  # Hz 60.00
            _u16(_clamp_int(pv_w / wsc, -32767, 32767)), _u16(self.w_sf),  # VA, VA_SF
            0, _u16(self.w_sf),  # VAr, VAr_SF
            100, 0,  # PF 100 %, PF_SF
            (wh >> 16) & 0xFFFF, wh & 0xFFFF, 0,  # WH acc32, WH_SF
            _clamp_int(dc_w / 380.0 * 100, 0, 65534), _u16(-2),  # DCA, DCA_SF
            3800 if pv_w > 0 else 0, _u16(-1),  # DCV 380.0 V, DCV_SF
            _u16(_clamp_int(dc_w / wsc, -32767, 32767)), _u16(self.w_sf),  # DCW, DCW_SF
            300, NI_INT16, NI_INT16, NI_INT16, _u16(-1),  # TmpCab 30.0 C, TmpSnk/Trns/Ot, Tmp_SF
            st, NI_UINT16,  # St, StVnd
            0, 0, 0, 0,  # Evt1, Evt2: no events
            *NI_BITFIELD32 * 4,  # EvtVnd1-4
        ]
        if self.has_battery:
            self._refresh_storage(r)
        if self.generac:
            self._refresh_site_energy(r, pv_w, counters.iloc[i])
        return r

    def _refresh_site_energy(self, r: list[int], pv_w: float, lifetime_wh: pd.Series) -> None:
        """Generac 64259: lifetime counters in Ws (uint64), instantaneous W, SoC in 0.1 %."""
        last = self.twin.last_result
        hours = (last.interval_s / 3600) if last is not None else 1.0
        bat_w = float(last.battery_kwh[-1, self.idx] / hours * 1000) if last is not None and last.n_intervals else 0.0
        grid_w = float(last.grid_kwh[-1, self.idx] / hours * 1000) if last is not None and last.n_intervals else 0.0
        ws = {k: int(round(float(lifetime_wh[k]) * 3600)) for k in lifetime_wh.index}
        values = {
            "time": int(self._now_s()), "sysmode": 1, "alarms": 0,
            "bat_soc": _clamp_int(float(self.twin.soc_pct[self.idx]) * 10, 0, 1000), "sf_10": _u16(-1),
            "inv_state": 1, "dcgenerator_power": 0,
            "generation": ws["pv_wh"], "consumption": ws["load_wh"],
            "bat_out": ws["battery_discharge_wh"], "bat_in": ws["battery_charge_wh"],
            "net_out": ws["grid_export_wh"], "net_in": ws["grid_import_wh"],
            "inv_out": ws["pv_wh"] + ws["battery_discharge_wh"], "inv_in": ws["battery_charge_wh"],
            "dcgenerator_out": 0, "dcgenerator_in": 0, "net_out_var": 0, "net_in_var": 0,
            "gen_power": _clamp_int(pv_w, -32767, 32767), "inv_power": _clamp_int(pv_w + bat_w, -32767, 32767),
            "net_power": _clamp_int(grid_w, -32767, 32767), "bat_power": _clamp_int(bat_w, -32767, 32767),
            "max_sink_power": _clamp_int(self.battery_w, 0, 32767), "max_source_power": _clamp_int(self.battery_w, 0, 32767),
            "Pad5": NI_INT16, "Pad6": NI_INT16,
        }
        regs: list[int] = []
        for name, kind, size in M64259_POINTS:
            v = int(values[name])
            if kind in ("int16", "sunssf"):
                v &= 0xFFFF
            elif kind == "int64":
                v &= (1 << 64) - 1
            regs += [(v >> (16 * (size - 1 - k))) & 0xFFFF for k in range(size)]
        start = self.m64259_addr + 2 - BASE_ADDR
        r[start : start + M64259_LEN] = regs

    def _refresh_storage(self, r: list[int]) -> None:
        i = self.idx
        b = self.twin.fleet.battery
        soc_pct = float(self.twin.soc_pct[i])
        reserve_pct = float(100 * b.reserve_kwh[i] / b.capacity_kwh[i])
        p_kw = float(self.twin.battery_power_kw[i])
        if soc_pct <= reserve_pct + 1e-6 and p_kw <= 1e-3:
            cha_st = CHAST_EMPTY
        elif soc_pct >= 99.999 and p_kw >= -1e-3:
            cha_st = CHAST_FULL
        elif p_kw > 1e-3:
            cha_st = CHAST_DISCHARGING
        elif p_kw < -1e-3:
            cha_st = CHAST_CHARGING
        else:
            cha_st = CHAST_HOLDING
        gra = 100.0 * b.ramp_kw_per_s[i] * 1000 / max(self.wchamax_w, 1e-9)
        m = M124_ADDR - BASE_ADDR
        r[m + 2 : m + 2 + M124_LEN] = [
            _clamp_int(self.wchamax_w / 10**self.wchamax_sf, 0, 65534),  # WChaMax
            _clamp_int(gra / 10**SF_GRA, 0, 65534), _clamp_int(gra / 10**SF_GRA, 0, 65534),  # WChaGra, WDisChaGra
            self.storctl_mod,
            NI_UINT16,  # VAChaMax
            _clamp_int(reserve_pct / 10**SF_PCT, 0, 1000),  # MinRsvPct
            _clamp_int(soc_pct / 10**SF_PCT, 0, 1000),  # ChaState
            NI_UINT16, NI_UINT16,  # StorAval, InBatV
            cha_st,
            _u16(self.out_wrte), _u16(self.in_wrte),
            NI_UINT16, self.rvrt_tms, NI_UINT16, NI_UINT16,  # WinTms, RvrtTms, RmpTms, ChaGriSet
            _u16(self.wchamax_sf), _u16(SF_GRA), NI_SUNSSF, _u16(SF_PCT), _u16(SF_PCT), NI_SUNSSF, NI_SUNSSF,
            _u16(SF_RTE),
        ]

    # ---- writes

    def write(self, address: int, values: list[int]) -> ExcCodes | None:
        """Validate a register write and turn it into a twin setpoint; an ExcCodes rejects it."""
        m = M124_ADDR
        offsets = [address + k - m for k in range(len(values))]
        if not self.has_battery or any(o not in WRITABLE_124 for o in offsets):
            return ExcCodes.ILLEGAL_ADDRESS
        new = {o: v for o, v in zip(offsets, values)}
        wchamax_w = new.get(O_WCHAMAX, None)
        if wchamax_w is not None:
            wchamax_w = wchamax_w * 10**self.wchamax_sf
            if not 0 < wchamax_w <= self.battery_w:
                return ExcCodes.ILLEGAL_VALUE
        mod = new.get(O_STORCTL, self.storctl_mod)
        if mod & ~0x3:
            return ExcCodes.ILLEGAL_VALUE
        out_wrte = _s16(new[O_OUTWRTE]) if O_OUTWRTE in new else self.out_wrte
        in_wrte = _s16(new[O_INWRTE]) if O_INWRTE in new else self.in_wrte
        limit = round(100 / 10**SF_RTE)
        if abs(out_wrte) > limit or abs(in_wrte) > limit:
            return ExcCodes.ILLEGAL_VALUE
        self.wchamax_w = self.wchamax_w if wchamax_w is None else float(wchamax_w)
        self.storctl_mod = mod
        self.out_wrte, self.in_wrte = out_wrte, in_wrte
        self.rvrt_tms = new.get(O_RVRTTMS, self.rvrt_tms)
        self._apply()
        return None

    def setpoint_kw(self) -> float | None:
        """The setpoint the current control registers ask for (None = self-consumption)."""
        if self.storctl_mod == 0:
            return None
        kw = 0.0
        if self.storctl_mod & 0x2:
            kw += self.out_wrte * 10**SF_RTE / 100 * self.wchamax_w / 1000
        if self.storctl_mod & 0x1:
            kw -= self.in_wrte * 10**SF_RTE / 100 * self.wchamax_w / 1000
        return kw

    def _apply(self) -> None:
        now_s = self._now_s()
        duration = float(self.rvrt_tms) if self.rvrt_tms > 0 else math.inf
        issued = pd.Timestamp(now_s, unit="s", tz="UTC")
        kw = self.setpoint_kw()
        self.twin.command(self.site_id, kw, duration, issued_at=issued)
        latency = float(self.twin.fleet.command_latency_s[self.idx])
        self.revert_at_s = now_s + latency + duration if kw is not None and np.isfinite(duration) else None

    # ---- pymodbus hook

    async def action(self, function_code, start_address, address, count, registers, set_values):
        """pymodbus SimDevice action: refresh on reads, validate and apply on writes."""
        if set_values is None:
            live = self.refresh()
            registers[: len(live)] = live
            return None
        return self.write(address, [int(v) for v in set_values])


def _require_loopback(host: str) -> None:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the simulator serves loopback only, not {host!r}")


class SunSpecServer:
    """Async Modbus TCP server for one site on 127.0.0.1. Use ``async with`` or start()/stop()."""

    def __init__(self, site: SunSpecSite, *, host: str = "127.0.0.1", port: int = 5020, unit_id: int = 1) -> None:
        _require_loopback(host)
        self.site = site
        self.host, self.port, self.unit_id = host, port, unit_id
        self._server: ModbusTcpServer | None = None

    def device(self) -> SimDevice:
        regs = self.site.refresh()
        block = SimData(BASE_ADDR, values=list(regs), datatype=DataType.REGISTERS)
        return SimDevice(self.unit_id, simdata=[block], action=self.site.action)

    async def start(self) -> None:
        self._server = ModbusTcpServer(self.device(), address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def __aenter__(self) -> SunSpecServer:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()
