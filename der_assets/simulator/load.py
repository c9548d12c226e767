"""Household load with behavioural variability, vectorized over (interval, site).

Why this shape: dispatch and settlement both hinge on what a subscriber's home
does around an event (the evening peak, air conditioning on a hot afternoon),
so the load has to move with the clock, the weather and the day, not be a
flat profile. A home's load is the sum of:

* base load (fridge, standby), constant per site;
* occupancy-driven activity in *local* time: a morning bump after the wake-up
  time, a daytime level that depends on who is home (weekends, home workers),
  an evening level from the arrival time to bedtime, and a cooking peak after
  arrival. Wake, arrival and bedtime are drawn per site per local day around
  the site's own habits;
* HVAC: cooling above, and (for electrically heated homes) heating below, an
  occupancy-dependent thermostat setpoint, driven by the TMY dry-bulb lagged by
  3 h for building mass, proportional to the gap and capped at the unit size;
* an EV charging session for some homes, after arrival;
* day-to-day scale and interval noise (smoothed, so it looks like appliance
  cycling rather than white noise).

Every random number comes from :mod:`._rng` keyed on site, local day or
interval counter, so a value never depends on the window it was computed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _rng

# stream ids for the counter-based RNG (never reuse one for two purposes)
_S_BASE, _S_SIZE, _S_WAKE, _S_ARRIVE, _S_SLEEP, _S_DAYOCC = 1, 2, 3, 4, 5, 6
_S_COOLSET, _S_HEATSET, _S_ELECHEAT, _S_KCOOL, _S_EV, _S_EVKW = 7, 8, 9, 10, 11, 12
_D_WAKE, _D_ARRIVE, _D_SLEEP, _D_SCALE, _D_EVKWH, _D_EVDELAY = 101, 102, 103, 104, 105, 106
_I_NOISE = 201

#: taps of the causal smoothing kernel applied to interval noise
_NOISE_TAPS = 12
_NOISE_RHO = 0.8


@dataclass(frozen=True)
class HouseholdTraits:
    """Per-site habits and equipment, each an array of shape (n_sites,)."""

    base_kw: np.ndarray
    size: np.ndarray  # multiplier on activity loads and HVAC [-]
    wake_h: np.ndarray  # mean local wake time [h]
    arrive_h: np.ndarray  # mean local arrival time on weekdays [h]
    sleep_h: np.ndarray  # mean local bedtime [h]
    day_occupancy: np.ndarray  # weekday daytime occupancy (home workers ~1) [-]
    cool_setpoint_c: np.ndarray
    heat_setpoint_c: np.ndarray
    electric_heat: np.ndarray  # bool
    cool_kw_per_c: np.ndarray
    hvac_max_kw: np.ndarray
    has_ev: np.ndarray  # bool
    ev_kw: np.ndarray


def household_traits(site_key: np.ndarray) -> HouseholdTraits:
    """Draw stable per-site habits from the site keys (see :func:`._rng.site_keys`)."""
    u = lambda s: _rng.uniform(site_key, s)  # noqa: E731
    n = lambda s: _rng.normal(site_key, s)  # noqa: E731
    size = np.exp(0.25 * n(_S_SIZE))
    return HouseholdTraits(
        base_kw=0.15 + 0.3 * u(_S_BASE),
        size=size,
        wake_h=np.clip(6.5 + 0.75 * n(_S_WAKE), 4.5, 9.5),
        arrive_h=np.clip(17.5 + 1.0 * n(_S_ARRIVE), 14.0, 21.0),
        sleep_h=np.clip(23.0 + 0.6 * n(_S_SLEEP), 21.0, 23.8),
        day_occupancy=np.where(u(_S_DAYOCC) < 0.25, 0.9, 0.2),
        cool_setpoint_c=np.clip(23.5 + 1.0 * n(_S_COOLSET), 21.0, 27.0),
        heat_setpoint_c=np.clip(20.0 + 1.0 * n(_S_HEATSET), 17.0, 22.5),
        electric_heat=u(_S_ELECHEAT) < 0.3,
        cool_kw_per_c=size * (0.22 + 0.15 * u(_S_KCOOL)),
        hvac_max_kw=size * 3.5,
        has_ev=u(_S_EV) < 0.2,
        ev_kw=np.where(u(_S_EVKW) < 0.8, 7.2, 1.4),
    )


def _step_up(h, at_h, width_h=0.15):
    """Smooth 0 -> 1 step at ``at_h`` (logistic of width ``width_h``)."""
    return 0.5 * (1.0 + np.tanh((h - at_h) / (2.0 * width_h)))


def _window(h, start_h, end_h, width_h=0.15):
    return _step_up(h, start_h, width_h) * (1.0 - _step_up(h, end_h, width_h))


def _daily(site_key, stream: int, local_day: np.ndarray, normal: bool) -> np.ndarray:
    """Per (site, local day) draw, gathered to the (n_t, n_sites) grid of ``local_day``.

    Draws are made once per distinct day (a window spans a few), then gathered.
    """
    first = int(local_day.min())
    days = np.arange(first, int(local_day.max()) + 1)
    draw = (_rng.normal if normal else _rng.uniform)(site_key[None, :], stream, days[:, None])
    return np.take_along_axis(draw, local_day - first, axis=0)


def interval_noise(site_key: np.ndarray, interval_index: np.ndarray) -> np.ndarray:
    """Unit-variance, time-correlated noise per (interval, site).

    interval_index: absolute interval counters (utc_start_s // interval_s), shape (n_t,),
    consecutive. A fixed causal kernel rho**j over ``_NOISE_TAPS`` earlier intervals
    smooths hashed white noise, so the value at an interval is the same in any window.
    """
    idx = np.asarray(interval_index, dtype=np.int64)
    ext = np.concatenate([idx[0] - np.arange(_NOISE_TAPS, 0, -1), idx])
    white = _rng.normal(site_key[None, :], _I_NOISE, ext[:, None])
    weights = _NOISE_RHO ** np.arange(_NOISE_TAPS + 1)
    weights /= np.sqrt(np.sum(weights**2))
    n_t = idx.size
    out = np.zeros((n_t, site_key.size))
    for j, w in enumerate(weights):  # loop over kernel taps, not sites
        out += w * white[_NOISE_TAPS - j : _NOISE_TAPS - j + n_t]
    return out


def household_load_kw(
    local_s: np.ndarray,
    temp_lag_c: np.ndarray,
    interval_index: np.ndarray,
    site_key: np.ndarray,
    traits: HouseholdTraits,
) -> np.ndarray:
    """Interval-average household load [kW], shape (n_t, n_sites).

    local_s: local wall-clock time of each interval midpoint as seconds since
        1970-01-01 local (UTC seconds + UTC offset), shape (n_t, n_sites).
    temp_lag_c: lagged outdoor dry-bulb at the site [C], same shape.
    interval_index: absolute interval counters, shape (n_t,).
    site_key: uint64 site keys, shape (n_sites,).
    """
    local_day = np.floor(local_s / 86400.0).astype(np.int64)
    h = (local_s - local_day * 86400.0) / 3600.0
    weekend = ((local_day + 3) % 7) >= 5  # 1970-01-01 was a Thursday (0 = Monday)

    wake = np.clip(traits.wake_h + 0.4 * _daily(site_key, _D_WAKE, local_day, True) + 1.0 * weekend, 4.0, 11.0)
    arrive = np.clip(traits.arrive_h + 0.75 * _daily(site_key, _D_ARRIVE, local_day, True), 13.0, 22.0)
    sleep = np.clip(traits.sleep_h + 0.4 * _daily(site_key, _D_SLEEP, local_day, True), 20.5, 23.9)
    arrive = np.minimum(arrive, sleep - 0.5)
    scale = np.exp(0.15 * _daily(site_key, _D_SCALE, local_day, True))
    day_occ = np.where(weekend, 0.85, traits.day_occupancy)

    size = traits.size
    leave = wake + 1.25
    morning = _window(h, wake, leave)
    daytime = day_occ * _window(h, leave, arrive)
    evening = _window(h, arrive, sleep)
    cooking = np.exp(-0.5 * ((h - (arrive + 0.75)) / 0.4) ** 2)
    activity_kw = size * (0.9 * morning + 0.35 * daytime + 0.7 * evening + 1.2 * cooking)

    noise = interval_noise(site_key, interval_index)
    appliance_kw = (traits.base_kw + activity_kw) * scale * np.maximum(1.0 + 0.25 * noise, 0.2)

    # thermostat: occupied = awake and home; asleep counts as partly occupied
    asleep = 1.0 - _window(h, wake, sleep)
    occupied = np.clip(morning + daytime + evening + 0.6 * asleep, 0.0, 1.0)
    cool_set = traits.cool_setpoint_c + 3.0 * (1.0 - occupied)
    heat_set = traits.heat_setpoint_c - 3.0 * (1.0 - occupied)
    cool_kw = np.clip(traits.cool_kw_per_c * (temp_lag_c - cool_set), 0.0, traits.hvac_max_kw)
    heat_kw = traits.electric_heat * np.clip(0.8 * traits.cool_kw_per_c * (heat_set - temp_lag_c), 0.0, traits.hvac_max_kw)
    hvac_kw = (cool_kw + heat_kw) * np.maximum(1.0 + 0.1 * noise, 0.0)

    ev_kwh = np.where(weekend, 0.4, 1.0) * (4.0 + 14.0 * _daily(site_key, _D_EVKWH, local_day, False))
    ev_start = arrive + 0.25 + 1.5 * _daily(site_key, _D_EVDELAY, local_day, False)
    ev_end = np.minimum(ev_start + ev_kwh / traits.ev_kw, 24.0)
    ev_kw = traits.has_ev * traits.ev_kw * _window(h, ev_start, ev_end, width_h=0.05)

    return np.maximum(appliance_kw + hvac_kw + ev_kw, 0.05)
