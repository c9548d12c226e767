"""PV production for a whole fleet as array operations (pvlib pieces, no per-site loop).

Shapes: time runs along axis 0 and sites along axis 1, so a ``(n_t, 1)`` time
array broadcasts against ``(n_sites,)`` site parameters. The chain per element:

1. sun position: pvlib's Spencer (1971) declination and equation of time (time
   only) plus the analytical zenith/azimuth formulas, evaluated for every site
   longitude and latitude by broadcasting. Within ~0.3 deg of SPA, which is
   plenty for interval energy, and it vectorizes across sites (SPA takes one
   location per call);
2. site irradiance: the TMY clearness indices re-applied to the site geometry;
3. plane of array: beam projection, Hay-Davies sky diffuse, ground reflection;
   Martin-Ruiz incidence-angle loss on the beam;
4. SAPM cell temperature (close-mount, as on a roof), PVWatts DC with a
   temperature coefficient and flat system losses, PVWatts inverter efficiency
   and clipping at the site's AC rating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pvlib

from .weather import SiteWeather, TmyYear, sample_weather, tmy_hour_position

#: PVWatts v5 default total system losses (soiling, wiring, mismatch, ...) [fraction].
SYSTEM_LOSSES = 0.14
#: Power temperature coefficient of a typical mono-Si module [1/C].
GAMMA_PDC_PER_C = -0.0037
#: PVWatts nominal inverter efficiency [-].
ETA_INV_NOM = 0.96
ALBEDO = 0.2
_SAPM_ROOF = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]
# below this sun elevation the analytical geometry and the transplanted indices are unreliable
_MAX_ZENITH_DEG = 89.5


@dataclass(frozen=True)
class SolarGeometry:
    """Sun position per (time, site) [deg] and extraterrestrial normal irradiance per time [W/m2]."""

    zenith_deg: np.ndarray
    azimuth_deg: np.ndarray
    dni_extra_w_m2: np.ndarray


def solar_geometry(utc_s: np.ndarray, latitude_deg, longitude_deg) -> SolarGeometry:
    """Sun zenith and azimuth for every instant x site, by broadcasting.

    utc_s: instants [s since epoch, UTC], shape (n_t,).
    latitude_deg, longitude_deg: site coordinates [deg], shape (n_sites,).
    The hour angle is pvlib.solarposition.hour_angle's formula,
    15 * (UTC hours - 12) + longitude + EoT / 4, computed from UTC seconds
    directly because pvlib's version walks a DatetimeIndex in Python.
    """
    utc_s = np.asarray(utc_s, dtype=float)
    times = pd.to_datetime(utc_s, unit="s")
    doy = times.dayofyear.to_numpy() + (utc_s % 86400.0) / 86400.0  # fractional day of year
    decl_rad = pvlib.solarposition.declination_spencer71(doy)[:, None]
    eot_min = pvlib.solarposition.equation_of_time_spencer71(doy)[:, None]
    utc_h = ((utc_s % 86400.0) / 3600.0)[:, None]
    lat_rad = np.radians(np.asarray(latitude_deg, dtype=float))[None, :]
    hour_angle_deg = 15.0 * (utc_h - 12.0) + np.asarray(longitude_deg, dtype=float)[None, :] + eot_min / 4.0
    hour_angle_rad = np.radians((hour_angle_deg + 180.0) % 360.0 - 180.0)  # afternoon > 0, wrapped
    zenith_rad = pvlib.solarposition.solar_zenith_analytical(lat_rad, hour_angle_rad, decl_rad)
    azimuth_rad = pvlib.solarposition.solar_azimuth_analytical(lat_rad, hour_angle_rad, decl_rad, zenith_rad)
    dni_extra = pvlib.irradiance.get_extra_radiation(doy)
    return SolarGeometry(
        zenith_deg=np.degrees(zenith_rad),
        azimuth_deg=np.degrees(azimuth_rad),
        dni_extra_w_m2=np.asarray(dni_extra, dtype=float)[:, None],
    )


def site_irradiance(geometry: SolarGeometry, kt, kb):
    """GHI, DNI, DHI [W/m2] at the site from clearness indices and the site's own sun.

    GHI = kt * E0n * cos(z), DNI = kb * E0n, DHI = GHI - DNI * cos(z) >= 0
    (kb <= kt holds by construction), zero with the sun below the horizon.
    """
    cos_z = np.cos(np.radians(geometry.zenith_deg))
    up = geometry.zenith_deg < _MAX_ZENITH_DEG
    e0n = geometry.dni_extra_w_m2
    ghi = np.where(up, kt * e0n * cos_z, 0.0)
    dni = np.where(up, kb * e0n, 0.0)
    dhi = np.maximum(ghi - dni * cos_z, 0.0)
    return ghi, dni, dhi


def pv_ac_kw(
    geometry: SolarGeometry,
    weather: SiteWeather,
    *,
    tilt_deg,
    azimuth_deg,
    pv_dc_kw,
    pv_ac_kw_limit,
) -> np.ndarray:
    """AC power [kW] per (time, site) for PVWatts-style arrays, with inverter clipping.

    tilt_deg, azimuth_deg: array orientation [deg], azimuth 180 = south.
    pv_dc_kw: array DC nameplate at STC [kW]; pv_ac_kw_limit: inverter AC rating [kW].
    """
    ghi, dni, dhi = site_irradiance(geometry, weather.kt, weather.kb)
    zen, azi = geometry.zenith_deg, geometry.azimuth_deg
    cos_aoi = pvlib.irradiance.aoi_projection(tilt_deg, azimuth_deg, zen, azi)
    cos_aoi = np.clip(cos_aoi, 0.0, 1.0)
    cos_z = np.maximum(np.cos(np.radians(zen)), 0.01745)
    poa_beam = dni * cos_aoi
    sky = pvlib.irradiance.haydavies(
        tilt_deg, azimuth_deg, dhi, dni, geometry.dni_extra_w_m2, zen, azi,
        projection_ratio=cos_aoi / cos_z,
    )
    ground = pvlib.irradiance.get_ground_diffuse(tilt_deg, ghi, albedo=ALBEDO)
    aoi_deg = np.degrees(np.arccos(cos_aoi))
    iam = pvlib.iam.martin_ruiz(aoi_deg)
    poa_global = poa_beam + sky + ground
    effective = poa_beam * iam + sky + ground
    temp_cell = pvlib.temperature.sapm_cell(
        poa_global, weather.temp_air_c, weather.wind_speed_m_s,
        _SAPM_ROOF["a"], _SAPM_ROOF["b"], _SAPM_ROOF["deltaT"],
    )
    pdc_w = pvlib.pvsystem.pvwatts_dc(effective, temp_cell, np.asarray(pv_dc_kw) * 1000.0, GAMMA_PDC_PER_C)
    pdc_w = np.maximum(pdc_w, 0.0) * (1.0 - SYSTEM_LOSSES)
    inverter_pdc0_w = np.asarray(pv_ac_kw_limit) * 1000.0 / ETA_INV_NOM
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # a 0 kW inverter gives 0/0
        pac_w = pvlib.inverter.pvwatts(pdc_w, inverter_pdc0_w, eta_inv_nom=ETA_INV_NOM)
    pac_w = np.where(inverter_pdc0_w > 0, np.nan_to_num(pac_w, nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    return np.minimum(pac_w, np.asarray(pv_ac_kw_limit) * 1000.0) / 1000.0


def fleet_pv_kw(
    mid_utc_s: np.ndarray,
    *,
    latitude_deg,
    longitude_deg,
    tilt_deg,
    azimuth_deg,
    pv_dc_kw,
    pv_ac_kw_limit,
    tmy: TmyYear,
    chunk_sites: int = 2048,
) -> np.ndarray:
    """Interval-average AC power [kW], shape (n_t, n_sites), evaluated at interval midpoints.

    Sites are processed in chunks only to bound temporary memory (each
    temporary is n_t x chunk floats); every chunk is one set of array ops.
    """
    mid_utc_s = np.asarray(mid_utc_s, dtype=float)
    n_sites = len(np.atleast_1d(latitude_deg))
    out = np.zeros((mid_utc_s.size, n_sites))
    for lo in range(0, n_sites, chunk_sites):
        sl = slice(lo, lo + chunk_sites)
        lon = np.asarray(longitude_deg, dtype=float)[sl]
        geom = solar_geometry(mid_utc_s, np.asarray(latitude_deg, dtype=float)[sl], lon)
        weather = sample_weather(tmy_hour_position(mid_utc_s[:, None], lon[None, :], tmy), tmy)
        out[:, sl] = pv_ac_kw(
            geom, weather,
            tilt_deg=np.asarray(tilt_deg, dtype=float)[sl],
            azimuth_deg=np.asarray(azimuth_deg, dtype=float)[sl],
            pv_dc_kw=np.asarray(pv_dc_kw, dtype=float)[sl],
            pv_ac_kw_limit=np.asarray(pv_ac_kw_limit, dtype=float)[sl],
        )
    return out
