"""Fault injection for the twin: the ways real fleets fail, configurable per vendor and site.

Data faults change what a vendor reports for a window (the physics is untouched, so the
AMI meter still tells the truth): `dropout` (intervals never arrive), `late` (intervals
appear only `delay_s` after they end, e.g. Enphase over cellular, 6 h), `stuck` (a channel
repeats one value), `spike` (a channel multiplied by `factor`), `clock_skew` (timestamps
shifted by `skew_s`), `counter_reset` (lifetime counters restart from zero at `start`).

Transport faults are decided per request by the protocol servers: `http_429`, `http_5xx`,
`timeout` (the server stalls `delay_s`), `truncate` (half the body is sent). A request hits
a transport fault with `probability`, decided by a hash of (seed, vendor, site, request
number), so a run is reproducible.

A plan is JSON: {"seed": 0, "rules": [{"kind": "late", "vendor": "enphase", "delay_s": 21600}]}.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

DATA_KINDS = ("dropout", "late", "stuck", "spike", "clock_skew", "counter_reset")
TRANSPORT_KINDS = ("http_429", "http_5xx", "timeout", "truncate")
CHANNELS = ("pv_kwh", "load_kwh", "battery_kwh", "grid_kwh", "soc_pct")
COUNTERS = ("pv_wh", "load_wh", "grid_import_wh", "grid_export_wh", "battery_charge_wh", "battery_discharge_wh")


@dataclass(frozen=True)
class FaultRule:
    kind: str
    vendor: str = "*"
    sites: tuple[str, ...] = ()
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    probability: float = 1.0
    delay_s: float = 0.0
    factor: float = 10.0
    skew_s: float = 0.0
    channel: str | None = None

    def __post_init__(self):
        if self.kind not in DATA_KINDS + TRANSPORT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(DATA_KINDS + TRANSPORT_KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault probability {self.probability} must be within [0, 1]")
        if self.channel is not None and self.channel not in CHANNELS:
            raise ValueError(f"fault channel {self.channel!r} is not one of {', '.join(CHANNELS)}")

    def matches(self, vendor: str, site_id: str) -> bool:
        return self.vendor in ("*", vendor) and (not self.sites or site_id in self.sites)

    def in_window(self, times: pd.Series) -> pd.Series:
        ok = pd.Series(True, index=times.index)
        if self.start is not None:
            ok &= times >= self.start
        if self.end is not None:
            ok &= times < self.end
        return ok


@dataclass(frozen=True)
class FaultPlan:
    rules: tuple[FaultRule, ...] = ()
    seed: int = 0
    _requests: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: dict) -> FaultPlan:
        rules = []
        for number, raw in enumerate(data.get("rules", []), start=1):
            raw = dict(raw)
            try:
                for key in ("start", "end"):
                    if raw.get(key) is not None:
                        raw[key] = pd.Timestamp(raw[key]).tz_convert("UTC")
                if "sites" in raw:
                    raw["sites"] = tuple(raw["sites"])
                rules.append(FaultRule(**raw))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"fault rule {number}: {exc}") from None
        return cls(rules=tuple(rules), seed=int(data.get("seed", 0)))

    @classmethod
    def from_file(cls, path: str | Path) -> FaultPlan:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the fault plan ({exc})") from None

    # ---- data faults

    def apply_to_window(self, frame: pd.DataFrame, *, vendor: str, site_id: str, now: pd.Timestamp) -> pd.DataFrame:
        out = frame.copy()
        for rule in self.rules:
            if rule.kind not in DATA_KINDS or not rule.matches(vendor, site_id) or out.empty:
                continue
            hit = rule.in_window(out["interval_start"])
            channels = [rule.channel] if rule.channel else ["pv_kwh", "load_kwh", "battery_kwh", "grid_kwh"]
            if rule.kind == "dropout":
                out = out[~hit]
            elif rule.kind == "late":
                ends = out["interval_start"] + pd.to_timedelta(out["interval_s"], unit="s")
                out = out[~(hit & (ends + pd.Timedelta(seconds=rule.delay_s) > now))]
            elif rule.kind == "stuck" and hit.any():
                first = out.index[hit.to_numpy()][0]
                for ch in channels:
                    out.loc[hit, ch] = out.loc[first, ch]
            elif rule.kind == "spike":
                for ch in channels:
                    out.loc[hit, ch] = out.loc[hit, ch] * rule.factor
            elif rule.kind == "clock_skew":
                out.loc[hit, "interval_start"] = out.loc[hit, "interval_start"] + pd.Timedelta(seconds=rule.skew_s)
            elif rule.kind == "counter_reset" and hit.any():
                first = out.index[hit.to_numpy()][0]
                position = out.index.get_loc(first)
                for c in COUNTERS:
                    if c in out:
                        # the counter restarts at zero at the start of the first faulted interval
                        before = out[c].iloc[position] - _increment(out, c, position)
                        out.loc[out.index[position]:, c] = out.loc[out.index[position]:, c] - before
        return out.reset_index(drop=True)

    # ---- transport faults

    def transport_fault(self, vendor: str, site_id: str = "*", now: pd.Timestamp | None = None) -> FaultRule | None:
        """The transport fault this request hits, if any (each call is one request)."""
        key = (vendor, site_id)
        count = self._requests.get(key, 0) + 1
        self._requests[key] = count
        for rule in self.rules:
            if rule.kind not in TRANSPORT_KINDS or not rule.matches(vendor, site_id):
                continue
            if now is not None and ((rule.start is not None and now < rule.start) or
                                    (rule.end is not None and now >= rule.end)):
                continue
            digest = hashlib.sha256(f"{self.seed}|{vendor}|{site_id}|{count}|{rule.kind}".encode()).digest()
            if int.from_bytes(digest[:8], "big") / 2**64 < rule.probability:
                return rule
        return None


def _increment(frame: pd.DataFrame, counter: str, position: int) -> float:
    """Energy (Wh) a counter gained during the interval at `position`."""
    channel = {"pv_wh": "pv_kwh", "load_wh": "load_kwh"}.get(counter)
    if channel is not None:
        return float(frame[channel].iloc[position]) * 1000.0
    if position > 0:
        return float(frame[counter].iloc[position] - frame[counter].iloc[position - 1])
    grid, battery = float(frame["grid_kwh"].iloc[position]), float(frame["battery_kwh"].iloc[position])
    return 1000.0 * {"grid_import_wh": max(grid, 0.0), "grid_export_wh": max(-grid, 0.0),
                     "battery_charge_wh": max(-battery, 0.0), "battery_discharge_wh": max(battery, 0.0)}[counter]
