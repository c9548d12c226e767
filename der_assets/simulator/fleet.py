"""Fleet digital twin: FleetSpec, FleetTwin and simulate_fleet_day.

Time: UTC inside. Interval starts are UTC, interval-beginning, on a grid of
``interval_s`` seconds since the Unix epoch (so 300 s intervals start at :00,
:05, ... UTC). A "day" given to :func:`simulate_fleet_day` is a calendar day in
``day_tz``: UTC by default, which matches the project's daily UTC telemetry
partitions; pass ``day_tz="America/New_York"`` for an ISO-local day, which has
23 or 25 hours on DST change days (276 or 300 five-minute intervals).
Household behaviour always follows each site's own local clock.

Hot path: PV and load are computed for all sites with array operations (sites
in chunks only to bound memory); the battery is a loop over intervals, each
step vectorized over all sites. No Python loop over sites anywhere.
"""

from __future__ import annotations

import datetime as dt
import time as _time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from . import _rng
from .battery import BatteryParams, BatteryState, step_batteries
from .commands import empty_commands, normalize, prune, rasterize
from .load import HouseholdTraits, household_load_kw, household_traits
from .pv import pv_ac_kw, solar_geometry
from .weather import DEFAULT_TMY_PATH, TmyYear, load_tmy, sample_weather, tmy_hour_position

REQUIRED_COLUMNS = [
    "site_id", "latitude", "longitude", "timezone", "pv_dc_kw", "pv_ac_kw", "tilt_deg", "azimuth_deg",
    "battery_kwh", "battery_kw",
]
#: optional columns and their defaults (None = derived, see FleetSpec.from_frame)
OPTIONAL_COLUMNS: dict[str, object] = {
    "battery_efficiency": 0.9,  # round trip
    "reserve_floor_pct": 20.0,  # backup reserve, % of capacity
    "export_allowed": False,
    "command_latency_s": 30.0,  # cloud API to inverter acting on it
    "ramp_kw_per_s": None,  # default: full rated power in 60 s
}
DEFAULT_INITIAL_SOC_PCT = 50.0
COUNTER_COLUMNS = [
    "pv_wh", "load_wh", "grid_import_wh", "grid_export_wh", "battery_charge_wh", "battery_discharge_wh",
]
CHANNELS = ["pv_kwh", "load_kwh", "battery_kwh", "grid_kwh", "soc_pct"]


# --------------------------------------------------------------------------- fleet


@dataclass(frozen=True, eq=False)
class FleetSpec:
    """Validated, array-backed description of a fleet; one site = one PV array + at most one battery."""

    frame: pd.DataFrame
    site_ids: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    tz_names: tuple[str, ...]
    tz_index: np.ndarray
    pv_dc_kw: np.ndarray
    pv_ac_kw: np.ndarray
    tilt_deg: np.ndarray
    azimuth_deg: np.ndarray
    battery: BatteryParams
    command_latency_s: np.ndarray
    _position: pd.Index = field(repr=False)

    @property
    def n_sites(self) -> int:
        return int(self.site_ids.size)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> FleetSpec:
        """Build from one row per site (columns in REQUIRED_COLUMNS, optional OPTIONAL_COLUMNS).

        Raises ValueError naming the offending sites on missing columns, duplicate
        ids, unknown time zones or out-of-range values.
        """
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"fleet frame is missing columns {missing}")
        df = frame.copy().reset_index(drop=True)
        df["site_id"] = df["site_id"].astype(str)
        for col, default in OPTIONAL_COLUMNS.items():  # absent column or empty cell -> documented default
            if col not in df.columns:
                df[col] = np.nan if default is None else default
            elif default is not None:
                df[col] = df[col].where(df[col].notna(), default)
        df["ramp_kw_per_s"] = df["ramp_kw_per_s"].astype(float).fillna(df["battery_kw"].astype(float) / 60.0)
        df["export_allowed"] = df["export_allowed"].astype(bool)
        if df["site_id"].duplicated().any():
            raise ValueError(f"duplicate site_id: {sorted(df.loc[df['site_id'].duplicated(), 'site_id'])[:10]}")
        num = [c for c in REQUIRED_COLUMNS + list(OPTIONAL_COLUMNS) if c not in ("site_id", "timezone", "export_allowed")]
        for c in num:
            df[c] = pd.to_numeric(df[c], errors="raise").astype(float)
        checks = {
            "latitude in [-90, 90]": df["latitude"].between(-90, 90),
            "longitude in [-180, 180]": df["longitude"].between(-180, 180),
            "pv_dc_kw >= 0": df["pv_dc_kw"] >= 0,
            "pv_ac_kw >= 0": df["pv_ac_kw"] >= 0,
            "tilt_deg in [0, 90]": df["tilt_deg"].between(0, 90),
            "azimuth_deg in [0, 360]": df["azimuth_deg"].between(0, 360),
            "battery_kwh >= 0": df["battery_kwh"] >= 0,
            "battery_kw >= 0": df["battery_kw"] >= 0,
            "battery_efficiency in (0, 1]": (df["battery_efficiency"] > 0) & (df["battery_efficiency"] <= 1),
            "reserve_floor_pct in [0, 100]": df["reserve_floor_pct"].between(0, 100),
            "command_latency_s >= 0": df["command_latency_s"] >= 0,
            "ramp_kw_per_s > 0": df["ramp_kw_per_s"] > 0,
        }
        bad = {rule: df.loc[~ok, "site_id"].tolist()[:5] for rule, ok in checks.items() if not ok.all()}
        if bad:
            raise ValueError(f"invalid fleet rows: {bad}")
        tz_codes, tz_names = pd.factorize(df["timezone"].astype(str))
        for name in tz_names:
            ZoneInfo(name)  # raises ZoneInfoNotFoundError on a bad name
        cap = df["battery_kwh"].to_numpy()
        battery = BatteryParams(
            capacity_kwh=cap,
            power_kw=np.where(cap > 0, df["battery_kw"].to_numpy(), 0.0),
            efficiency=df["battery_efficiency"].to_numpy(),
            reserve_kwh=cap * df["reserve_floor_pct"].to_numpy() / 100.0,
            export_allowed=df["export_allowed"].to_numpy(bool),
            ramp_kw_per_s=df["ramp_kw_per_s"].to_numpy(),
        )
        site_ids = df["site_id"].to_numpy(object)
        return cls(
            frame=df,
            site_ids=site_ids,
            latitude=df["latitude"].to_numpy(),
            longitude=df["longitude"].to_numpy(),
            tz_names=tuple(str(t) for t in tz_names),
            tz_index=np.asarray(tz_codes, dtype=np.int64),
            pv_dc_kw=df["pv_dc_kw"].to_numpy(),
            pv_ac_kw=df["pv_ac_kw"].to_numpy(),
            tilt_deg=df["tilt_deg"].to_numpy(),
            azimuth_deg=df["azimuth_deg"].to_numpy(),
            battery=battery,
            command_latency_s=df["command_latency_s"].to_numpy(),
            _position=pd.Index(site_ids),
        )

    def index_of(self, site_ids) -> np.ndarray:
        """Positions of site ids in the fleet (KeyError on an unknown id)."""
        ids = pd.Index([site_ids] if isinstance(site_ids, str) else np.asarray(site_ids).astype(str))
        pos = self._position.get_indexer(ids)
        if (pos < 0).any():
            raise KeyError(f"unknown site_id {ids[pos < 0][0]!r}")
        return pos.astype(np.int64)


# --------------------------------------------------------------------------- exogenous physics


def utc_offsets_s(utc_s: np.ndarray, tz_names: tuple[str, ...]) -> np.ndarray:
    """UTC offset [s] of each instant in each time zone, shape (n_t, n_tz)."""
    idx = pd.DatetimeIndex(pd.to_datetime(np.asarray(utc_s, dtype=np.int64), unit="s", utc=True))
    naive_utc = idx.tz_localize(None)
    cols = [(idx.tz_convert(tz).tz_localize(None) - naive_utc).total_seconds().to_numpy() for tz in tz_names]
    return np.stack(cols, axis=1) if cols else np.zeros((idx.size, 0))


def fleet_exogenous(
    fleet: FleetSpec,
    site_key: np.ndarray,
    traits: HouseholdTraits,
    interval_start_s: np.ndarray,
    interval_s: int,
    tmy: TmyYear,
    *,
    chunk_sites: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval-average PV and load [kW] for every interval x site, shape (n_t, n_sites) each.

    Depends only on absolute time, the site and the seed, never on the window,
    so any window of a day gives the same numbers as the whole day.
    """
    start_s = np.asarray(interval_start_s, dtype=np.int64)
    mid_s = start_s.astype(float) + interval_s / 2.0
    counter = start_s // interval_s
    offsets = utc_offsets_s(mid_s.astype(np.int64), fleet.tz_names)  # (n_t, n_tz)
    n = fleet.n_sites
    pv_kw = np.zeros((start_s.size, n))
    load_kw = np.zeros((start_s.size, n))
    for lo in range(0, n, chunk_sites):  # chunks bound temporaries; each chunk is array ops
        sl = slice(lo, min(lo + chunk_sites, n))
        lat, lon = fleet.latitude[sl], fleet.longitude[sl]
        weather = sample_weather(tmy_hour_position(mid_s[:, None], lon[None, :], tmy), tmy)
        geom = solar_geometry(mid_s, lat, lon)
        pv_kw[:, sl] = pv_ac_kw(
            geom, weather, tilt_deg=fleet.tilt_deg[sl], azimuth_deg=fleet.azimuth_deg[sl],
            pv_dc_kw=fleet.pv_dc_kw[sl], pv_ac_kw_limit=fleet.pv_ac_kw[sl],
        )
        local_s = mid_s[:, None] + offsets[:, fleet.tz_index[sl]]
        chunk_traits = HouseholdTraits(**{k: v[sl] for k, v in traits.__dict__.items()})
        load_kw[:, sl] = household_load_kw(local_s, weather.temp_lag_c, counter, site_key[sl], chunk_traits)
    return pv_kw, load_kw


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, eq=False)
class FleetResult:
    """Per-site per-interval energies for a window, arrays shaped (n_intervals, n_sites).

    Signs follow DESIGN.md: battery + discharge / - charge, grid + import / - export.
    soc_pct is the state of charge at interval end (NaN for a site without battery).
    lifetime_wh_start / lifetime_wh_end: counters (Wh) per site before and after the window.
    """

    site_ids: np.ndarray
    interval_start: pd.DatetimeIndex
    interval_s: int
    pv_kwh: np.ndarray
    load_kwh: np.ndarray
    battery_kwh: np.ndarray
    grid_kwh: np.ndarray
    soc_pct: np.ndarray
    lifetime_wh_start: pd.DataFrame
    lifetime_wh_end: pd.DataFrame

    @property
    def n_intervals(self) -> int:
        return len(self.interval_start)

    def to_frame(self) -> pd.DataFrame:
        """One row per site-interval: site_id, interval_start (UTC), interval_s and the five channels."""
        n_t, n_s = self.pv_kwh.shape
        out = pd.DataFrame(
            {
                "site_id": np.tile(self.site_ids, n_t),
                "interval_start": np.repeat(self.interval_start, n_s),
                "interval_s": np.full(n_t * n_s, self.interval_s, dtype=np.int64),
            }
        )
        for ch in CHANNELS:
            out[ch] = getattr(self, ch).ravel()
        return out

    def to_channels(self) -> pd.DataFrame:
        """Long rows site_id, interval_start, interval_s, channel, value (the canonical channel names)."""
        wide = self.to_frame()
        return wide.melt(
            id_vars=["site_id", "interval_start", "interval_s"], value_vars=CHANNELS, var_name="channel",
            value_name="value",
        )

    def lifetime_wh_by_interval(self) -> dict[str, np.ndarray]:
        """Counters (Wh) at the end of every interval, each (n_intervals, n_sites): start + cumulative sums."""
        start = {c: self.lifetime_wh_start[c].to_numpy() for c in COUNTER_COLUMNS}
        inc = _counter_increments(self.pv_kwh, self.load_kwh, self.grid_kwh, self.battery_kwh)
        return {c: start[c][None, :] + np.cumsum(inc[c], axis=0) for c in COUNTER_COLUMNS}

    def site_lifetime_wh(self, i: int) -> dict[str, np.ndarray]:
        """One site's counters (Wh) at the end of every interval: what a server answers for that site.

        Why not lifetime_wh_by_interval()[c][:, i]: that sums every site of the whole history, and a
        week of 200 sites made each request cost 50 ms.
        """
        inc = _counter_increments(self.pv_kwh[:, i], self.load_kwh[:, i], self.grid_kwh[:, i], self.battery_kwh[:, i])
        return {c: float(self.lifetime_wh_start[c].iloc[i]) + np.cumsum(inc[c]) for c in COUNTER_COLUMNS}

    @staticmethod
    def concat(results: list[FleetResult]) -> FleetResult:
        """Join consecutive windows of the same fleet."""
        first, last = results[0], results[-1]
        cat = lambda name: np.concatenate([getattr(r, name) for r in results], axis=0)  # noqa: E731
        return FleetResult(
            site_ids=first.site_ids,
            interval_start=pd.DatetimeIndex(np.concatenate([r.interval_start.asi8 for r in results])).tz_localize("UTC"),
            interval_s=first.interval_s,
            pv_kwh=cat("pv_kwh"), load_kwh=cat("load_kwh"), battery_kwh=cat("battery_kwh"),
            grid_kwh=cat("grid_kwh"), soc_pct=cat("soc_pct"),
            lifetime_wh_start=first.lifetime_wh_start, lifetime_wh_end=last.lifetime_wh_end,
        )


def _counter_increments(pv_kwh, load_kwh, grid_kwh, battery_kwh) -> dict[str, np.ndarray]:
    return {
        "pv_wh": pv_kwh * 1000.0,
        "load_wh": load_kwh * 1000.0,
        "grid_import_wh": np.maximum(grid_kwh, 0.0) * 1000.0,
        "grid_export_wh": np.maximum(-grid_kwh, 0.0) * 1000.0,
        "battery_charge_wh": np.maximum(-battery_kwh, 0.0) * 1000.0,
        "battery_discharge_wh": np.maximum(battery_kwh, 0.0) * 1000.0,
    }


# --------------------------------------------------------------------------- twin


def _to_utc_seconds(t) -> int:
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        raise ValueError(f"timestamp {t!r} must be timezone-aware (UTC inside)")
    return int(ts.tz_convert("UTC").value // 10**9)


def day_window_utc(day: dt.date, day_tz: str = "UTC") -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) in UTC of the calendar day ``day`` in ``day_tz`` (23/24/25 h long)."""
    zone = ZoneInfo(day_tz)
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


class FleetTwin:
    """Stateful fleet twin: steps forward in time, carrying SoC and lifetime counters.

    Use it for fast replay (:meth:`advance_to`, :meth:`replay_days`) or in real
    time (:meth:`sync` with the wall clock, or :meth:`run_realtime`). Commands
    (:meth:`command`) take effect after the site's latency and ramp.
    Deterministic: the same fleet, seed, start, commands and steps give the same
    numbers, and PV/load at an instant do not depend on how the time was stepped.
    """

    #: windows longer than this are computed exactly; shorter steps use a per-UTC-day cache
    _DIRECT_MIN_INTERVALS = 24

    def __init__(
        self,
        fleet: FleetSpec,
        start: dt.datetime | pd.Timestamp,
        *,
        interval_s: int = 300,
        seed: int = 0,
        initial_soc_pct: float | np.ndarray | None = None,
        initial_lifetime_wh: pd.DataFrame | None = None,
        tmy_path: str | Path = DEFAULT_TMY_PATH,
    ) -> None:
        if interval_s <= 0 or 86400 % interval_s:
            raise ValueError(f"interval_s must divide a day, got {interval_s}")
        start_s = _to_utc_seconds(start)
        if start_s % interval_s:
            raise ValueError(f"start {start} is not on the {interval_s} s UTC grid")
        self.fleet = fleet
        self.interval_s = int(interval_s)
        self.seed = int(seed)
        self._now_s = start_s
        self._tmy = load_tmy(tmy_path)
        self._site_key = _rng.site_keys(fleet.site_ids, seed)
        self._traits = household_traits(self._site_key)
        b = fleet.battery
        soc_pct = DEFAULT_INITIAL_SOC_PCT if initial_soc_pct is None else initial_soc_pct
        soc_pct = np.broadcast_to(np.asarray(soc_pct, dtype=float), (fleet.n_sites,))
        if np.any((soc_pct < 0) | (soc_pct > 100)):
            raise ValueError("initial_soc_pct must be within [0, 100]")
        soc_kwh = b.capacity_kwh * soc_pct / 100.0
        if initial_soc_pct is None:
            soc_kwh = np.maximum(soc_kwh, b.reserve_kwh)
        self._battery = BatteryState(soc_kwh=soc_kwh.copy(), power_kw=np.zeros(fleet.n_sites))
        if initial_lifetime_wh is None:
            self._counters = {c: np.zeros(fleet.n_sites) for c in COUNTER_COLUMNS}
        else:
            lt = initial_lifetime_wh.reindex(fleet.site_ids).fillna(0.0)
            self._counters = {c: lt[c].to_numpy(float).copy() if c in lt else np.zeros(fleet.n_sites) for c in COUNTER_COLUMNS}
        self._commands = empty_commands()
        self._seq = 0
        self._day_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.last_result: FleetResult | None = None

    # ---- state

    @property
    def now(self) -> pd.Timestamp:
        """The twin's clock: start of the next interval to simulate (UTC)."""
        return pd.Timestamp(self._now_s, unit="s", tz="UTC")

    @property
    def soc_kwh(self) -> np.ndarray:
        return self._battery.soc_kwh.copy()

    @property
    def soc_pct(self) -> np.ndarray:
        cap = self.fleet.battery.capacity_kwh
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(cap > 0, 100.0 * self._battery.soc_kwh / cap, np.nan)

    @property
    def battery_power_kw(self) -> np.ndarray:
        """Instantaneous battery power at :attr:`now` (+ discharge)."""
        return self._battery.power_kw.copy()

    def lifetime_wh(self) -> pd.DataFrame:
        """Lifetime counters (Wh) per site at :attr:`now`, as a protocol server would expose them."""
        return pd.DataFrame({c: v.copy() for c, v in self._counters.items()}, index=pd.Index(self.fleet.site_ids, name="site_id"))

    @property
    def commands(self) -> pd.DataFrame:
        """Normalized pending/active commands: site_id, start, end (UTC, effective), setpoint_kw."""
        c = self._commands
        return pd.DataFrame(
            {
                "site_id": self.fleet.site_ids[c["site_idx"].to_numpy(np.int64)],
                "start": pd.to_datetime(c["start_s"], unit="s", utc=True),
                "end": pd.to_datetime(c["end_s"].where(np.isfinite(c["end_s"])), unit="s", utc=True),
                "setpoint_kw": c["setpoint_kw"].to_numpy(),
            }
        )

    # ---- commands

    def command(self, site_id, setpoint_kw: float | None, duration_s: float, *, issued_at=None) -> None:
        """Send a setpoint (kW, + discharge / - charge) to one site for ``duration_s`` seconds.

        It takes effect at issued_at + the site's command_latency_s (issued_at defaults
        to :attr:`now`) and replaces any earlier command from then on. ``None`` releases
        the battery back to self-consumption. Limits (power, reserve, capacity,
        non-export) are enforced by the physics, not rejected here.
        """
        self.command_many(
            pd.DataFrame({"site_id": [site_id], "setpoint_kw": [np.nan if setpoint_kw is None else setpoint_kw],
                          "duration_s": [duration_s], "issued_at": [issued_at if issued_at is not None else self.now]})
        )

    def release(self, site_id, *, issued_at=None) -> None:
        """Return a site to self-consumption (after the latency)."""
        self.command(site_id, None, np.inf, issued_at=issued_at)

    def command_many(self, frame: pd.DataFrame) -> None:
        """Bulk commands: columns site_id, setpoint_kw (NaN = release), duration_s, issued_at (optional).

        Rows are applied in order; a later row for the same site and effective start wins.
        """
        if frame.empty:
            return
        idx = self.fleet.index_of(frame["site_id"].astype(str))
        if "issued_at" in frame.columns:
            issued = pd.to_datetime(frame["issued_at"], utc=True).astype("int64").to_numpy() / 1e9
        else:
            issued = np.full(len(frame), float(self._now_s))
        duration = frame["duration_s"].to_numpy(float)
        if np.any(duration <= 0) or np.any(np.isnan(duration)):
            raise ValueError("duration_s must be positive")
        start = issued + self.fleet.command_latency_s[idx]
        new = pd.DataFrame(
            {
                "site_idx": idx,
                "start_s": start,
                "end_s": start + duration,
                "setpoint_kw": frame["setpoint_kw"].to_numpy(float),
                "seq": self._seq + np.arange(len(frame), dtype=np.int64),
            }
        )
        self._seq += len(frame)
        merged = new if self._commands.empty else pd.concat([self._commands, new], ignore_index=True)
        self._commands = normalize(merged)

    # ---- stepping

    def _exogenous(self, start_s: int, n_t: int) -> tuple[np.ndarray, np.ndarray]:
        dt_s = self.interval_s
        starts = start_s + dt_s * np.arange(n_t, dtype=np.int64)
        if n_t >= self._DIRECT_MIN_INTERVALS:
            return fleet_exogenous(self.fleet, self._site_key, self._traits, starts, dt_s, self._tmy)
        per_day = 86400 // dt_s
        pv = np.empty((n_t, self.fleet.n_sites))
        load = np.empty((n_t, self.fleet.n_sites))
        days = starts // 86400
        for day in np.unique(days):
            if int(day) not in self._day_cache:
                if len(self._day_cache) >= 2:
                    self._day_cache.pop(min(self._day_cache))
                day_starts = int(day) * 86400 + dt_s * np.arange(per_day, dtype=np.int64)
                self._day_cache[int(day)] = fleet_exogenous(
                    self.fleet, self._site_key, self._traits, day_starts, dt_s, self._tmy
                )
            sel = days == day
            k = (starts[sel] - int(day) * 86400) // dt_s
            pv[sel], load[sel] = self._day_cache[int(day)][0][k], self._day_cache[int(day)][1][k]
        return pv, load

    def advance_to(self, until) -> FleetResult:
        """Simulate from :attr:`now` up to ``until`` (UTC-aware, on the interval grid); return the window."""
        until_s = _to_utc_seconds(until)
        if until_s % self.interval_s:
            raise ValueError(f"{until} is not on the {self.interval_s} s grid")
        if until_s < self._now_s:
            raise ValueError(f"cannot go back in time: now={self.now}, until={until}")
        return self.step((until_s - self._now_s) // self.interval_s)

    def step(self, n_intervals: int = 1) -> FleetResult:
        """Simulate the next ``n_intervals`` intervals (vectorized over sites in each step)."""
        n_t = int(n_intervals)
        n = self.fleet.n_sites
        dt_s = self.interval_s
        start_s = self._now_s
        pv_kw, load_kw = self._exogenous(start_s, n_t)
        raster = rasterize(self._commands, window_start_s=start_s, interval_s=dt_s, n_t=n_t, n_sites=n)
        params = self.fleet.battery
        cap = params.capacity_kwh
        has_batt = cap > 0
        battery_kwh = np.empty((n_t, n))
        soc_pct = np.empty((n_t, n))
        counters_start = self.lifetime_wh()
        for k in range(n_t):  # time loop; each step is vectorized over all sites
            target, length = raster.segments(k)
            battery_kwh[k] = step_batteries(
                params, self._battery, load_kw=load_kw[k], pv_kw=pv_kw[k], interval_s=dt_s,
                segment_target_kw=target, segment_length_s=length,
            )
            soc_pct[k] = np.where(has_batt, 100.0 * self._battery.soc_kwh / np.where(has_batt, cap, 1.0), np.nan)
        hours = dt_s / 3600.0
        pv_kwh = pv_kw * hours
        load_kwh = load_kw * hours
        grid_kwh = load_kwh - pv_kwh - battery_kwh  # the AMI meter closes the site balance
        for c, inc in _counter_increments(pv_kwh, load_kwh, grid_kwh, battery_kwh).items():
            self._counters[c] = self._counters[c] + inc.sum(axis=0)
        self._now_s = start_s + n_t * dt_s
        self._commands = prune(self._commands, self._now_s)
        result = FleetResult(
            site_ids=self.fleet.site_ids,
            interval_start=pd.DatetimeIndex(pd.to_datetime(start_s + dt_s * np.arange(n_t, dtype=np.int64), unit="s", utc=True)),
            interval_s=dt_s,
            pv_kwh=pv_kwh, load_kwh=load_kwh, battery_kwh=battery_kwh, grid_kwh=grid_kwh, soc_pct=soc_pct,
            lifetime_wh_start=counters_start, lifetime_wh_end=self.lifetime_wh(),
        )
        self.last_result = result
        return result

    def replay_days(self, first_day: dt.date, last_day: dt.date, *, day_tz: str = "UTC") -> Iterator[FleetResult]:
        """Fast replay: yield one result per calendar day in ``day_tz`` (inclusive range).

        If the twin's clock is before the first day, the gap is simulated (and discarded).
        """
        day = first_day
        while day <= last_day:
            start, end = day_window_utc(day, day_tz)
            if self.now < start:
                self.advance_to(start)
            elif self.now > start:
                raise ValueError(f"twin is at {self.now}, past the start of {day} ({start})")
            yield self.advance_to(end)
            day += dt.timedelta(days=1)

    def sync(self, wall_now: dt.datetime | None = None) -> FleetResult | None:
        """Real time: simulate every interval that has fully elapsed by ``wall_now`` (default: now)."""
        wall = pd.Timestamp.now(tz="UTC") if wall_now is None else pd.Timestamp(wall_now)
        target_s = (_to_utc_seconds(wall) // self.interval_s) * self.interval_s
        if target_s <= self._now_s:
            return None
        return self.advance_to(pd.Timestamp(target_s, unit="s", tz="UTC"))

    def run_realtime(
        self,
        *,
        stop: Callable[[], bool],
        clock: Callable[[], float] = _time.time,
        sleep: Callable[[float], None] = _time.sleep,
        on_result: Callable[[FleetResult], None] | None = None,
    ) -> None:
        """Follow the wall clock until ``stop()`` is true, calling ``on_result`` after each interval."""
        while not stop():
            res = self.sync(pd.Timestamp(clock(), unit="s", tz="UTC"))
            if res is not None and on_result is not None:
                on_result(res)
            next_s = self._now_s + self.interval_s
            sleep(max(0.0, min(1.0, next_s - clock())))


# --------------------------------------------------------------------------- one-shot


def _setpoints_to_commands(setpoints: pd.DataFrame, interval_s: int) -> pd.DataFrame:
    """Accept a dispatch plan (site_id, interval_start, setpoint_kw) or commands (site_id, issued_at, setpoint_kw, duration_s)."""
    if "interval_start" in setpoints.columns:
        out = pd.DataFrame(
            {
                "site_id": setpoints["site_id"].astype(str).to_numpy(),
                "issued_at": pd.to_datetime(setpoints["interval_start"], utc=True).reset_index(drop=True),
                "setpoint_kw": setpoints["setpoint_kw"].to_numpy(float),
                "duration_s": float(interval_s),
            }
        )
        return out
    need = {"site_id", "issued_at", "setpoint_kw", "duration_s"}
    if not need <= set(setpoints.columns):
        raise ValueError(f"setpoints need columns site_id, interval_start, setpoint_kw or {sorted(need)}")
    return setpoints


def simulate_fleet_day(
    fleet: FleetSpec,
    day: dt.date,
    *,
    interval_s: int = 300,
    seed: int = 0,
    setpoints: pd.DataFrame | None = None,
    initial_soc_pct: float | np.ndarray | None = None,
    day_tz: str = "UTC",
) -> FleetResult:
    """Simulate one calendar day of the fleet.

    day_tz: the day's time zone; "UTC" (default) gives 24 h, a local zone gives the
    local day (23/25 h on DST days). setpoints: a plan (site_id, interval_start,
    setpoint_kw; each row is sent at its interval start and lasts one interval)
    or commands (site_id, issued_at, setpoint_kw, duration_s). Either way they act
    after each site's command_latency_s and ramp. Without setpoints every battery
    runs self-consumption.
    """
    start, end = day_window_utc(day, day_tz)
    twin = FleetTwin(fleet, start, interval_s=interval_s, seed=seed, initial_soc_pct=initial_soc_pct)
    if setpoints is not None and len(setpoints):
        twin.command_many(_setpoints_to_commands(setpoints, interval_s))
    return twin.advance_to(end)
