"""Home batteries: one vectorized interval step for the whole fleet.

Sign: battery power is + discharging to the site bus, - charging (DESIGN.md).
Efficiency is round trip eta, split evenly between the two directions as the
dispatch contract says: delivering E kWh at the terminals lowers the stored
energy by E / sqrt(eta); absorbing E kWh raises it by E * sqrt(eta).

Control, per site and per part of an interval:

* no command -> self-consumption: charge from PV surplus, discharge to cover
  net load, never below the reserve floor, never exporting. An inverter
  follows its own CT meter within a second or so, so this target is reached
  instantly at 5-minute resolution;
* a command (setpoint kW) -> the battery moves from its present power toward
  the setpoint at no more than the site's ramp rate (kW/s), then holds it.
  The command is clipped to the power rating, to the reserve floor and
  capacity, and for a non-export site to the site's net load in the interval.

An interval is split into at most three segments with constant targets (the
command schedule may switch twice inside one interval, e.g. a command that
takes effect after its latency and one that ends). Within a segment the power
path is a ramp then a plateau, integrated exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_SEGMENTS = 3


@dataclass(frozen=True)
class BatteryParams:
    """Per-site battery parameters, arrays of shape (n_sites,)."""

    capacity_kwh: np.ndarray
    power_kw: np.ndarray
    efficiency: np.ndarray  # round trip, (0, 1]
    reserve_kwh: np.ndarray
    export_allowed: np.ndarray  # bool
    ramp_kw_per_s: np.ndarray

    @property
    def sqrt_eta(self) -> np.ndarray:
        return np.sqrt(self.efficiency)


@dataclass
class BatteryState:
    """Mutable fleet battery state: stored energy and instantaneous power at the current instant."""

    soc_kwh: np.ndarray
    power_kw: np.ndarray


def _ramp_segment(p0, target, rate_kw_per_s, length_s):
    """Energy [kW*s] and end power [kW] of a ramp from p0 toward target, then a plateau.

    rate_kw_per_s may be inf (instant). Exact piecewise-linear integral.
    """
    delta = target - p0
    with np.errstate(divide="ignore", invalid="ignore"):
        t_reach = np.where(np.isinf(rate_kw_per_s), 0.0, np.abs(delta) / rate_kw_per_s)
    reached = t_reach <= length_s
    # not reached: ramp the whole segment
    p_end_ramp = p0 + np.sign(delta) * np.where(np.isinf(rate_kw_per_s), 0.0, rate_kw_per_s) * length_s
    energy_partial = 0.5 * (p0 + p_end_ramp) * length_s
    t_r = np.where(reached, t_reach, 0.0)
    energy_reached = 0.5 * (p0 + target) * t_r + target * (length_s - t_r)
    energy = np.where(reached, energy_reached, energy_partial)
    p_end = np.where(length_s > 0, np.where(reached, target, p_end_ramp), p0)  # an empty segment changes nothing
    return energy, p_end


def step_batteries(
    params: BatteryParams,
    state: BatteryState,
    *,
    load_kw: np.ndarray,
    pv_kw: np.ndarray,
    interval_s: float,
    segment_target_kw: np.ndarray,
    segment_length_s: np.ndarray,
) -> np.ndarray:
    """Advance every battery by one interval; return interval battery energy [kWh] (+ discharge).

    load_kw, pv_kw: interval-average site load and PV [kW], shape (n_sites,).
    segment_target_kw: (N_SEGMENTS, n_sites) commanded setpoint [kW], NaN = self-consumption.
    segment_length_s: (N_SEGMENTS, n_sites) segment lengths [s], summing to interval_s.
    Mutates ``state`` (soc_kwh, power_kw).
    """
    dt_h = interval_s / 3600.0
    sq = params.sqrt_eta
    net_kw = load_kw - pv_kw
    # the most the battery can deliver / absorb at its terminals this interval
    deliverable_kwh = np.maximum(state.soc_kwh - params.reserve_kwh, 0.0) * sq
    absorbable_kwh = np.maximum(params.capacity_kwh - state.soc_kwh, 0.0) / sq
    max_dis_kw = np.minimum(params.power_kw, deliverable_kwh / dt_h)
    max_ch_kw = np.minimum(params.power_kw, absorbable_kwh / dt_h)
    # a non-export site may discharge only up to its own net load
    export_cap_kw = np.where(params.export_allowed, np.inf, np.maximum(net_kw, 0.0))
    hi_kw = np.minimum(max_dis_kw, export_cap_kw)
    self_kw = np.clip(net_kw, -max_ch_kw, np.minimum(max_dis_kw, np.maximum(net_kw, 0.0)))

    p = state.power_kw
    energy_kws = np.zeros_like(p)
    for j in range(segment_target_kw.shape[0]):  # <= 3 segments, each vectorized over sites
        cmd = segment_target_kw[j]
        is_cmd = ~np.isnan(cmd)
        target = np.where(is_cmd, np.clip(np.nan_to_num(cmd), -max_ch_kw, hi_kw), self_kw)
        rate = np.where(is_cmd, params.ramp_kw_per_s, np.inf)
        e, p = _ramp_segment(p, target, rate, segment_length_s[j])
        energy_kws += e

    battery_kwh = energy_kws / 3600.0
    # the ramp may pass through infeasible values (e.g. ramping down from a setpoint
    # that the net load no longer allows); the meter sees interval energy, so clamp that
    lo_kwh = -max_ch_kw * dt_h
    hi_kwh = hi_kw * dt_h
    clamped = (battery_kwh < lo_kwh) | (battery_kwh > hi_kwh)
    battery_kwh = np.clip(battery_kwh, lo_kwh, hi_kwh)
    state.power_kw = np.where(clamped, battery_kwh / dt_h, np.clip(p, -max_ch_kw, hi_kw))
    stored_delta = np.where(battery_kwh > 0.0, -battery_kwh / sq, -battery_kwh * sq)
    no_battery = params.capacity_kwh <= 0.0
    state.soc_kwh = np.where(
        no_battery, 0.0, np.clip(state.soc_kwh + stored_delta, np.minimum(params.reserve_kwh, state.soc_kwh), params.capacity_kwh)
    )
    return battery_kwh
