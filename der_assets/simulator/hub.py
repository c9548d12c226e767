"""The twin as the protocol servers see it: the fleet, a clock, the history so far, and faults.

Every protocol server (SolarEdge, Enphase, SMA, sonnen, Fronius, SunSpec, Green Button) reads
from one TwinHub, so all of them tell the same story about the same homes. The hub advances
the FleetTwin to its clock on demand (`sync`) and keeps every simulated interval, so a server
can answer any window that has elapsed. The clock is the wall clock for the demo, or a
`ManualClock` that tests and backfills move at will (fast replay of any date range).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from der_assets.registry.rollup import site_nameplates
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.fleet import COUNTER_COLUMNS, FleetResult, FleetSpec, FleetTwin


class ManualClock:
    """A clock that only moves when told to: deterministic replay for tests and backfills."""

    def __init__(self, start: dt.datetime | pd.Timestamp):
        self._now = pd.Timestamp(start).tz_convert("UTC")

    def __call__(self) -> pd.Timestamp:
        return self._now

    def set(self, when: dt.datetime | pd.Timestamp) -> None:
        when = pd.Timestamp(when).tz_convert("UTC")
        if when < self._now:
            raise ValueError(f"the clock cannot go back from {self._now} to {when}")
        self._now = when

    def advance(self, **delta: float) -> pd.Timestamp:
        self.set(self._now + pd.Timedelta(**delta))
        return self._now


def wall_clock() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


class CommandRejected(ValueError):
    """A control write the real device would refuse (out of its limits, or no battery)."""


def fleet_frame_from_registry(registry: pd.DataFrame) -> pd.DataFrame:
    """One row per site in FleetSpec's columns, from the registry's device rows."""
    sites = registry.drop_duplicates("site_id").set_index("site_id")
    out = site_nameplates(registry)
    out["latitude"] = sites["latitude"]
    out["longitude"] = sites["longitude"]
    out["timezone"] = sites["timezone"]
    out["reserve_floor_pct"] = sites["reserve_floor_pct"]
    out["export_allowed"] = sites["export_allowed"].astype(bool)
    out = out.fillna({"pv_dc_kw": 0.0, "pv_ac_kw": 0.0, "tilt_deg": 25.0, "azimuth_deg": 180.0,
                      "battery_kwh": 0.0, "battery_kw": 0.0})
    return out.reset_index()


@dataclass(frozen=True)
class SiteWindow:
    """One site's intervals in a window, with lifetime counters at each interval end."""

    site_id: str
    frame: pd.DataFrame  # interval_start (UTC), interval_s, channels, counters (Wh) at interval end


class TwinHub:
    """One fleet twin shared by all protocol servers; thread-safe."""

    def __init__(
        self,
        registry: pd.DataFrame,
        *,
        start: dt.datetime | pd.Timestamp,
        clock: Callable[[], pd.Timestamp] | None = None,
        interval_s: int = 300,
        seed: int = 0,
        faults: FaultPlan | None = None,
        initial_lifetime_wh: pd.DataFrame | None = None,
    ):
        self.registry = registry.copy()
        self.sites = registry.drop_duplicates("site_id").set_index("site_id")
        self.devices = registry.set_index("device_id")
        start = pd.Timestamp(start).tz_convert("UTC").floor(f"{interval_s}s")
        self.clock = clock or ManualClock(start)
        self.faults = faults or FaultPlan()
        self.fleet = FleetSpec.from_frame(fleet_frame_from_registry(registry))
        if initial_lifetime_wh is None:
            # a few years of service, so counters look like real meters (never a fresh 0)
            rng = np.random.default_rng(seed)
            years = rng.uniform(1.0, 5.0, self.fleet.n_sites)
            initial_lifetime_wh = pd.DataFrame(
                {c: years * scale for c, scale in zip(COUNTER_COLUMNS, (9.5e6, 1.1e7, 7.0e6, 5.5e6, 2.0e6, 1.8e6),
                                                        strict=True)},
                index=self.fleet.site_ids,
            ).round(0)
        self.twin = FleetTwin(self.fleet, start, interval_s=interval_s, seed=seed,
                              initial_lifetime_wh=initial_lifetime_wh)
        self.start = start
        self.interval_s = interval_s
        self._results: list[FleetResult] = []
        self._history: FleetResult | None = None
        self._lock = threading.RLock()

    # ---- time

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self.clock()).tz_convert("UTC")

    def sync(self) -> pd.Timestamp:
        """Simulate every interval that has fully elapsed by the clock; returns the twin's time."""
        with self._lock:
            target = self.now().floor(f"{self.interval_s}s")
            if target > self.twin.now:
                self._results.append(self.twin.advance_to(target))
                self._history = None
            return self.twin.now

    def history(self) -> FleetResult | None:
        with self._lock:
            if self._history is None and self._results:
                self._history = FleetResult.concat(self._results)
                self._results = [self._history]
            return self._history

    # ---- reads

    def site_index(self, site_id: str) -> int:
        return int(self.fleet.index_of([site_id])[0])

    def window(self, site_id: str, start: pd.Timestamp, end: pd.Timestamp, *, vendor: str = "*") -> pd.DataFrame:
        """Elapsed intervals of one site in [start, end), after the vendor's faults are applied."""
        self.sync()
        hist = self.history()
        columns = ["interval_start", "interval_s", "pv_kwh", "load_kwh", "battery_kwh", "grid_kwh", "soc_pct",
                   *COUNTER_COLUMNS]
        if hist is None:  # nothing elapsed yet: no rows, but the dtypes of rows (servers use .dt on them)
            empty = {c: np.empty(0) for c in columns}
            empty["interval_start"] = pd.DatetimeIndex([], tz="UTC")
            empty["interval_s"] = np.empty(0, dtype=np.int64)
            return pd.DataFrame(empty)
        i = self.site_index(site_id)
        starts = hist.interval_start
        mask = (starts >= pd.Timestamp(start)) & (starts < pd.Timestamp(end))
        counters = hist.site_lifetime_wh(i)
        frame = pd.DataFrame({
            "interval_start": starts[mask],
            "interval_s": hist.interval_s,
            **{ch: getattr(hist, ch)[mask, i] for ch in ("pv_kwh", "load_kwh", "battery_kwh", "grid_kwh", "soc_pct")},
            **{c: counters[c][mask] for c in COUNTER_COLUMNS},
        }).reset_index(drop=True)
        return self.faults.apply_to_window(frame, vendor=vendor, site_id=site_id, now=self.now())

    def latest(self, site_id: str, *, vendor: str = "*") -> dict[str, float]:
        """The last elapsed interval as instantaneous readings: average kW, SoC, lifetime Wh."""
        now = self.sync()
        frame = self.window(site_id, now - pd.Timedelta(seconds=self.interval_s), now, vendor=vendor)
        hours = self.interval_s / 3600.0
        if frame.empty:
            i = self.site_index(site_id)
            lifetime = self.twin.lifetime_wh().iloc[i]
            soc = float(self.twin.soc_pct[i])
            return {"pv_kw": 0.0, "load_kw": 0.0, "battery_kw": 0.0, "grid_kw": 0.0, "soc_pct": soc,
                    **{c: float(lifetime[c]) for c in COUNTER_COLUMNS}, "timestamp": now}
        row = frame.iloc[-1]
        return {"pv_kw": row["pv_kwh"] / hours, "load_kw": row["load_kwh"] / hours,
                "battery_kw": row["battery_kwh"] / hours, "grid_kw": row["grid_kwh"] / hours,
                "soc_pct": float(row["soc_pct"]), **{c: float(row[c]) for c in COUNTER_COLUMNS},
                "timestamp": row["interval_start"] + pd.Timedelta(seconds=self.interval_s)}

    # ---- control

    def command(self, site_id: str, setpoint_kw: float | None, duration_s: float) -> None:
        """A battery setpoint (+ discharge, - charge; None returns to self-consumption)."""
        i = self.site_index(site_id)
        limit_kw = float(self.fleet.battery.power_kw[i])
        if setpoint_kw is not None:
            if limit_kw <= 0:
                raise CommandRejected(f"site {site_id} has no battery")
            if not np.isfinite(setpoint_kw) or abs(setpoint_kw) > limit_kw + 1e-9:
                raise CommandRejected(f"setpoint {setpoint_kw} kW outside +/-{limit_kw:g} kW for site {site_id}")
        if duration_s <= 0:
            raise CommandRejected(f"duration {duration_s} s must be positive")
        with self._lock:
            self.sync()
            if setpoint_kw is None:
                self.twin.release(site_id, issued_at=self.now())
            else:
                self.twin.command(site_id, float(setpoint_kw), float(duration_s), issued_at=self.now())
