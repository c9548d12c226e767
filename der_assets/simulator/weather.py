"""Weather for the twin, from the real TMY3 file that pvlib ships.

pvlib 0.16 ships one usable TMY3 station, Greensboro NC (723170TYA.CSV, 36.1 N,
79.95 W, LST = UTC-5). The demo fleet is in Philadelphia and Chicago, so the
station's weather is *transplanted* onto each site:

* Calendar: a TMY file mixes years (January 1988, February 1981, ...), so its
  year is ignored. A simulated instant is mapped onto the TMY's hour-of-year by
  month, day and hour (Feb 29 reuses Feb 28).
* Time of day: the mapping is done in *solar* time. A site at longitude L sees
  the station hour whose apparent solar time equals the site's, i.e. station
  LST = UTC - 5 h + (L - L_station) / 15 h (the equation of time cancels out).
  So the cloud pattern of a TMY morning lands on the site's morning, not on the
  station's clock time, wherever the site is.
* Irradiance: the station's GHI and DNI are turned into clearness indices,
  ``kt = GHI / ETR_horizontal`` and ``kb = DNI / ETR_normal`` (both hourly
  integrals in the file), and re-applied to the site's own sun geometry
  (see :func:`der_assets.simulator.pv.site_irradiance`). Night hours of the
  station get the index of the nearest daylit hour of that day, because a
  site further north has a longer summer day than Greensboro.

Everything here is pure and vectorized; the parsed file is cached per process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pvlib

HOURS_PER_YEAR = 8760
#: Station file used by default (pvlib's bundled Greensboro TMY3).
DEFAULT_TMY_PATH = Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"

# cumulative days before each month in a 365-day year (index 1..12)
_CUM_DAYS = np.array([0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], dtype=np.int64)

# An hour whose extraterrestrial horizontal irradiance is below this has the
# sun up for only a few minutes; its GHI/ETR ratio is noise, so it is filled.
_MIN_ETR_W_M2 = 10.0


@dataclass(frozen=True)
class TmyYear:
    """One 8760-hour TMY year in station LST, row i = hour ending i+1 h after Jan 1 00:00.

    kt, kb: clearness index of global and beam irradiance [-], night-filled.
    temp_air_c: dry-bulb at the end of each hour [C].
    temp_lag_c: dry-bulb smoothed by a 3 h first-order lag [C], a cheap stand-in
        for building thermal mass in the HVAC model.
    wind_speed_m_s: wind speed [m/s].
    """

    kt: np.ndarray
    kb: np.ndarray
    temp_air_c: np.ndarray
    temp_lag_c: np.ndarray
    wind_speed_m_s: np.ndarray
    station_latitude: float
    station_longitude: float
    station_utc_offset_h: float
    source: str


def _fill_night(index: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace invalid hours with the nearest valid hour of the same day."""
    frame = pd.DataFrame(index.reshape(365, 24)).where(valid.reshape(365, 24))
    filled = frame.T.ffill().bfill().T  # along hours within each day
    out = filled.to_numpy().ravel()
    # a day without any daylit hour cannot occur at these latitudes, but keep it defined
    return np.nan_to_num(out, nan=0.0)


@functools.lru_cache(maxsize=4)
def load_tmy(path: str | Path = DEFAULT_TMY_PATH) -> TmyYear:
    """Parse a TMY3 file (via ``pvlib.iotools.read_tmy3``) into a :class:`TmyYear`."""
    data, meta = pvlib.iotools.read_tmy3(str(path), map_variables=True)
    date = pd.to_datetime(data["Date (MM/DD/YYYY)"], format="%m/%d/%Y")
    hour = data["Time (HH:MM)"].str.slice(0, 2).astype(int).to_numpy()  # 1..24, hour ending
    month = date.dt.month.to_numpy()
    day = np.minimum(date.dt.day.to_numpy(), np.where(month == 2, 28, 31))
    row = (_CUM_DAYS[month] + day - 1) * 24 + hour - 1
    if len(np.unique(row)) != HOURS_PER_YEAR:
        raise ValueError(f"{path}: expected {HOURS_PER_YEAR} distinct hours, got {len(np.unique(row))}")
    order = np.argsort(row)

    def col(name: str) -> np.ndarray:
        return data[name].to_numpy(dtype=float)[order]

    ghi, dni = col("ghi"), col("dni")
    etr_h, etr_n = col("ghi_extra"), col("dni_extra")
    valid = etr_h >= _MIN_ETR_W_M2
    with np.errstate(divide="ignore", invalid="ignore"):
        kt = np.clip(np.where(valid, ghi / etr_h, np.nan), 0.0, 1.0)
        kb = np.clip(np.where(valid & (etr_n > 0), dni / etr_n, np.nan), 0.0, 0.9)
    kt = _fill_night(kt, valid)
    kb = np.minimum(_fill_night(kb, valid), kt)  # beam can't exceed global

    temp = col("temp_air")
    alpha = 1.0 - np.exp(-1.0 / 3.0)  # 3 h time constant at 1 h steps
    lagged = np.empty(HOURS_PER_YEAR)
    state = float(temp.mean())
    for _ in range(2):  # second pass starts from the year's end, as the year is cyclic
        for i, t in enumerate(temp):
            state += alpha * (t - state)
            lagged[i] = state
    return TmyYear(
        kt=kt,
        kb=kb,
        temp_air_c=temp,
        temp_lag_c=lagged,
        wind_speed_m_s=col("wind_speed"),
        station_latitude=float(meta["latitude"]),
        station_longitude=float(meta["longitude"]),
        station_utc_offset_h=float(meta["TZ"]),
        source=Path(path).name,
    )


def _noleap_day_of_year(epoch_days: np.ndarray) -> np.ndarray:
    """0-based day of a 365-day year for integer days since 1970-01-01 (Feb 29 -> Feb 28)."""
    first = int(epoch_days.min())
    dates = pd.to_datetime(np.arange(first, int(epoch_days.max()) + 1), unit="D")
    month = dates.month.to_numpy()
    day = dates.day.to_numpy()
    day = np.where((month == 2) & (day == 29), 28, day)
    return (_CUM_DAYS[month] + day - 1)[epoch_days - first]


def tmy_hour_position(utc_s, longitude_deg, tmy: TmyYear) -> np.ndarray:
    """Position in the TMY year [h since Jan 1 00:00 station LST] matching each site's solar time.

    utc_s: seconds since the Unix epoch, UTC (shape broadcastable with longitude_deg).
    longitude_deg: site longitude [deg east].
    Returns float hours in [0, 8760).
    """
    shift_s = tmy.station_utc_offset_h * 3600.0 + (np.asarray(longitude_deg) - tmy.station_longitude) * 240.0
    lst_s = np.asarray(utc_s, dtype=float) + shift_s
    epoch_days = np.floor(lst_s / 86400.0).astype(np.int64)
    sec_of_day = lst_s - epoch_days * 86400.0
    return _noleap_day_of_year(epoch_days) * 24.0 + sec_of_day / 3600.0


@dataclass(frozen=True)
class SiteWeather:
    """Weather sampled at each site and instant (arrays of one broadcast shape)."""

    kt: np.ndarray
    kb: np.ndarray
    temp_air_c: np.ndarray
    temp_lag_c: np.ndarray
    wind_speed_m_s: np.ndarray


def sample_weather(hour_position: np.ndarray, tmy: TmyYear) -> SiteWeather:
    """Sample the TMY at fractional hour positions.

    Irradiance indices are hourly averages, so they are held constant over their
    hour. Temperatures and wind are instantaneous readings at the end of their
    hour, so they are interpolated linearly between readings.
    """
    pos = np.asarray(hour_position, dtype=float)
    row = np.floor(pos).astype(np.int64) % HOURS_PER_YEAR
    # reading i is taken at pos = i + 1, so pos - 1 is the fractional reading index
    x = pos - 1.0
    i0 = np.floor(x).astype(np.int64)
    w = x - i0
    i0 %= HOURS_PER_YEAR
    i1 = (i0 + 1) % HOURS_PER_YEAR

    def interp(series: np.ndarray) -> np.ndarray:
        return series[i0] * (1.0 - w) + series[i1] * w

    return SiteWeather(
        kt=tmy.kt[row],
        kb=tmy.kb[row],
        temp_air_c=interp(tmy.temp_air_c),
        temp_lag_c=interp(tmy.temp_lag_c),
        wind_speed_m_s=interp(tmy.wind_speed_m_s),
    )
