"""Benchmark: one fleet-day of the digital twin at 5-minute resolution.

Prints ONE JSON object: site-intervals per second and wall seconds for the
vectorized twin on ``--sites`` sites, and the same for a naive baseline run in
this process: the same physics done per site in a Python loop (pvlib SPA solar
position and transposition per site, the load model called per site, the
battery as scalar Python arithmetic per interval), timed on ``--baseline-sites``
sites and extrapolated linearly to ``--sites``.

    python benchmarks/simulator.py --sites 10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import sys
import time

import numpy as np
import pandas as pd
import pvlib

from der_assets.simulator import FleetSpec, simulate_fleet_day
from der_assets.simulator import _rng
from der_assets.simulator.fleet import day_window_utc, utc_offsets_s
from der_assets.simulator.load import household_load_kw, household_traits
from der_assets.simulator.pv import (
    _SAPM_ROOF, ALBEDO, ETA_INV_NOM, GAMMA_PDC_PER_C, SYSTEM_LOSSES, site_irradiance, SolarGeometry,
)
from der_assets.simulator.weather import load_tmy, sample_weather, tmy_hour_position

LOCATIONS = [(39.95, -75.16, "America/New_York"), (41.88, -87.63, "America/Chicago")]


def bench_fleet_frame(n_sites: int, seed: int) -> pd.DataFrame:
    """Two metro areas with per-site jitter (the registry's demo fleet is not used here)."""
    rng = np.random.default_rng(seed)
    which = rng.random(n_sites) < 0.6
    lat = np.where(which, LOCATIONS[0][0], LOCATIONS[1][0]) + rng.normal(0, 0.15, n_sites)
    lon = np.where(which, LOCATIONS[0][1], LOCATIONS[1][1]) + rng.normal(0, 0.15, n_sites)
    dc = rng.uniform(4.0, 12.0, n_sites).round(2)
    return pd.DataFrame(
        {
            "site_id": [f"BENCH-{i:06d}" for i in range(n_sites)],
            "latitude": lat,
            "longitude": lon,
            "timezone": np.where(which, LOCATIONS[0][2], LOCATIONS[1][2]),
            "pv_dc_kw": dc,
            "pv_ac_kw": (dc / rng.uniform(1.0, 1.35, n_sites)).round(2),
            "tilt_deg": rng.uniform(10, 40, n_sites),
            "azimuth_deg": rng.uniform(100, 260, n_sites),
            "battery_kwh": rng.choice([0.0, 10.0, 13.5, 20.0], n_sites),
            "battery_kw": rng.choice([3.8, 5.0, 7.6], n_sites),
            "battery_efficiency": 0.9,
            "reserve_floor_pct": 20.0,
            "export_allowed": rng.random(n_sites) < 0.5,
        }
    )


def naive_site_day(row: pd.Series, starts: pd.DatetimeIndex, interval_s: int, seed: int, soc_pct: float) -> dict:
    """One site, one window, the slow way: pvlib per site, scalar battery loop."""
    tmy = load_tmy()
    mid = starts + pd.Timedelta(seconds=interval_s / 2)
    mid_s = mid.asi8 / 1e9
    loc = pvlib.location.Location(row.latitude, row.longitude, tz=row.timezone)
    sp = loc.get_solarposition(mid)  # SPA, one location per call
    weather = sample_weather(tmy_hour_position(mid_s, row.longitude, tmy), tmy)
    geom = SolarGeometry(sp["zenith"].to_numpy(), sp["azimuth"].to_numpy(),
                         np.asarray(pvlib.irradiance.get_extra_radiation(mid)))
    ghi, dni, dhi = site_irradiance(geom, weather.kt, weather.kb)
    poa = pvlib.irradiance.get_total_irradiance(
        row.tilt_deg, row.azimuth_deg, sp["zenith"], sp["azimuth"], dni, ghi, dhi,
        dni_extra=geom.dni_extra_w_m2, albedo=ALBEDO, model="haydavies",
    )
    aoi = pvlib.irradiance.aoi(row.tilt_deg, row.azimuth_deg, sp["zenith"], sp["azimuth"])
    iam = pvlib.iam.martin_ruiz(aoi)
    eff = poa["poa_direct"] * iam + poa["poa_diffuse"]
    tcell = pvlib.temperature.sapm_cell(poa["poa_global"], weather.temp_air_c, weather.wind_speed_m_s,
                                        _SAPM_ROOF["a"], _SAPM_ROOF["b"], _SAPM_ROOF["deltaT"])
    pdc = np.maximum(pvlib.pvsystem.pvwatts_dc(eff, tcell, row.pv_dc_kw * 1000, GAMMA_PDC_PER_C), 0) * (1 - SYSTEM_LOSSES)
    pac = pvlib.inverter.pvwatts(pdc, row.pv_ac_kw * 1000 / ETA_INV_NOM, eta_inv_nom=ETA_INV_NOM)
    pv_kw = np.nan_to_num(np.asarray(pac, dtype=float)) / 1000

    key = _rng.site_keys([row.site_id], seed)
    traits = household_traits(key)
    offset = utc_offsets_s(mid_s.astype(np.int64), (row.timezone,))
    load_kw = household_load_kw(mid_s[:, None] + offset, weather.temp_lag_c[:, None],
                                starts.asi8 // 10**9 // interval_s, key, traits)[:, 0]

    cap, pmax, sq = row.battery_kwh, row.battery_kw if row.battery_kwh > 0 else 0.0, math.sqrt(row.battery_efficiency)
    reserve = cap * row.reserve_floor_pct / 100
    soc = max(cap * soc_pct / 100, reserve)
    dt_h = interval_s / 3600
    batt = []
    for k in range(len(starts)):  # scalar self-consumption
        net = load_kw[k] - pv_kw[k]
        if net > 0:
            p = min(net, pmax, max(soc - reserve, 0) * sq / dt_h)
            soc -= p * dt_h / sq
        else:
            p = -min(-net, pmax, max(cap - soc, 0) / sq / dt_h)
            soc += -p * dt_h * sq
        batt.append(p * dt_h)
    return {"pv_kwh": pv_kw * dt_h, "load_kwh": load_kw * dt_h, "battery_kwh": np.array(batt)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=10_000)
    ap.add_argument("--baseline-sites", type=int, default=50)
    ap.add_argument("--date", type=dt.date.fromisoformat, default=dt.date(2026, 7, 15))
    ap.add_argument("--interval-s", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    frame = bench_fleet_frame(args.sites, args.seed)
    load_tmy()  # parse the TMY file once, outside both timings

    t0 = time.perf_counter()
    fleet = FleetSpec.from_frame(frame)
    res = simulate_fleet_day(fleet, args.date, interval_s=args.interval_s, seed=args.seed)
    wall_s = time.perf_counter() - t0
    site_intervals = res.n_intervals * fleet.n_sites

    n_base = min(args.baseline_sites, args.sites)
    start, end = day_window_utc(args.date)
    starts = pd.date_range(start, end, freq=f"{args.interval_s}s", inclusive="left")
    t1 = time.perf_counter()
    base = [naive_site_day(row, starts, args.interval_s, args.seed, 50.0) for row in frame.iloc[:n_base].itertuples()]
    base_s = time.perf_counter() - t1
    base_extrapolated_s = base_s * args.sites / n_base

    # the baseline is a check too: same physics, so the same energies (SPA vs analytical sun aside)
    pv_vec = res.pv_kwh[:, :n_base].sum()
    pv_base = sum(b["pv_kwh"].sum() for b in base)
    load_diff = max(np.abs(b["load_kwh"] - res.load_kwh[:, j]).max() for j, b in enumerate(base))
    batt_diff = max(np.abs(b["battery_kwh"] - res.battery_kwh[:, j]).max() for j, b in enumerate(base))
    out = {
        "benchmark": "simulator_fleet_day",
        "date": args.date.isoformat(),
        "interval_s": args.interval_s,
        "sites": fleet.n_sites,
        "intervals": res.n_intervals,
        "site_intervals": site_intervals,
        "wall_s": round(wall_s, 3),
        "site_intervals_per_s": round(site_intervals / wall_s),
        "baseline": {
            "method": "per-site Python loop: pvlib SPA + get_total_irradiance per site, scalar battery loop",
            "sites_timed": n_base,
            "wall_s": round(base_s, 3),
            "extrapolated_wall_s": round(base_extrapolated_s, 1),
            "site_intervals_per_s": round(n_base * res.n_intervals / base_s),
        },
        "speedup_vs_baseline": round(base_extrapolated_s / wall_s, 1),
        "checks": {
            "max_balance_error_kwh": float(np.abs(res.load_kwh - res.pv_kwh - res.battery_kwh - res.grid_kwh).max()),
            "fleet_pv_mwh": round(float(res.pv_kwh.sum()) / 1000, 3),
            "fleet_load_mwh": round(float(res.load_kwh.sum()) / 1000, 3),
            "baseline_pv_rel_diff": round(float(abs(pv_base - pv_vec) / max(pv_vec, 1e-9)), 5),
            "baseline_max_load_diff_kwh": float(load_diff),
            "baseline_max_battery_diff_kwh": round(float(batt_diff), 6),
        },
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pvlib": pvlib.__version__,
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
