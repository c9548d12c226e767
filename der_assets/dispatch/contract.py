"""The dispatch file contract: fleet.csv, forecast.csv, instruction.json in; plan.csv and a summary out.

Formats are in DESIGN.md "Dispatch contract" and docs/dispatch.md. Every check here turns a bad
file into a ``DispatchInputError`` naming the file, line and field, because an operator must be able
to fix the input without reading code. Nothing is repaired silently: a forecast gap stays a gap
(the non-export cap there is 0) and is reported in ``warnings``.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.problem import DispatchProblem, Prices

FLEET_COLUMNS = (
    "battery_id",
    "site_id",
    "capacity_kwh",
    "soc_kwh",
    "reserve_kwh",
    "max_discharge_kw",
    "max_charge_kw",
    "efficiency",
    "export_allowed",
    "available",
)
# Program agreements, optional per battery: events already called this month, the monthly
# allowance, and the longest event the subscriber signed up for.
AGREEMENT_COLUMNS = ("events_this_month", "max_events_per_month", "max_event_hours")
FORECAST_COLUMNS = ("site_id", "interval_start", "load_kw", "pv_kw")
INSTRUCTION_KEYS = ("instruction_id", "start", "end", "interval_minutes", "target_kw")
PLAN_COLUMNS = ("battery_id", "interval_start", "setpoint_kw", "soc_end_kwh")
SUMMARY_KEYS = ("instruction_id", "n_batteries", "target_kwh", "planned_kwh", "shortfall_kwh", "solve_s", "status")

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}
_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)
# Setpoints are written floored to this resolution so the written file never exceeds a cap.
SETPOINT_RESOLUTION_KW = 1e-6


@dataclass(frozen=True)
class Instruction:
    """A validated ISO instruction; ``target_kw`` has one value per interval."""

    instruction_id: str
    start: pd.Timestamp
    end: pd.Timestamp
    interval_minutes: int
    target_kw: np.ndarray
    iso: str = "PJM"
    resource_id: str | None = None
    modification: int = 0
    issued_at: pd.Timestamp | None = None

    @property
    def dt_h(self) -> float:
        return self.interval_minutes / 60.0

    @property
    def n_intervals(self) -> int:
        return len(self.target_kw)

    @property
    def interval_start(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, periods=self.n_intervals, freq=f"{self.interval_minutes}min")


# --------------------------------------------------------------------------------------------
# instruction.json


def _utc_timestamp(value, file: str, key: str) -> pd.Timestamp:
    if not isinstance(value, str) or not _TZ_SUFFIX.search(value.strip()):
        raise DispatchInputError(file, f"{value!r} is not an ISO 8601 time with a UTC offset (e.g. 2026-07-15T18:00:00Z)", field=key)
    try:
        return pd.Timestamp(value.strip()).tz_convert("UTC")
    except (ValueError, TypeError) as exc:
        raise DispatchInputError(file, f"{value!r} is not a valid time ({exc})", field=key) from None


def _finite_number(value, file: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DispatchInputError(file, f"{value!r} is not a finite number", field=key)
    return float(value)


def parse_instruction(data: dict, file: str = "instruction.json") -> Instruction:
    """Validate an instruction dict (the parsed JSON) into an ``Instruction``."""
    if not isinstance(data, dict):
        raise DispatchInputError(file, "top level must be a JSON object")
    missing = [k for k in INSTRUCTION_KEYS if k not in data]
    if missing:
        raise DispatchInputError(file, f"missing key(s): {', '.join(missing)}")
    instruction_id = data["instruction_id"]
    if not isinstance(instruction_id, str) or not instruction_id.strip():
        raise DispatchInputError(file, "must be a non-empty string", field="instruction_id")
    start = _utc_timestamp(data["start"], file, "start")
    end = _utc_timestamp(data["end"], file, "end")
    if end <= start:
        raise DispatchInputError(file, f"end {data['end']} is not after start {data['start']}", field="end")
    minutes = data["interval_minutes"]
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0 or float(minutes) != int(minutes):
        raise DispatchInputError(file, f"{minutes!r} is not a positive whole number of minutes", field="interval_minutes")
    minutes = int(minutes)
    span_s = (end - start).total_seconds()
    if span_s % (minutes * 60) != 0:
        raise DispatchInputError(
            file, f"the event ({span_s / 60:g} min) is not a whole number of {minutes}-minute intervals", field="interval_minutes"
        )
    n = int(span_s // (minutes * 60))
    raw = data["target_kw"]
    if isinstance(raw, list):
        if len(raw) != n:
            raise DispatchInputError(file, f"has {len(raw)} values but the event has {n} intervals", field="target_kw")
        target = np.array([_finite_number(v, file, f"target_kw[{k}]") for k, v in enumerate(raw)], dtype=float)
    else:
        target = np.full(n, _finite_number(raw, file, "target_kw"))
    if (target < 0).any():
        k = int(np.argmax(target < 0))
        raise DispatchInputError(file, f"{target[k]:g} is negative; a target is kW the fleet must deliver", field="target_kw")
    iso = data.get("iso", "PJM")
    if not isinstance(iso, str):
        raise DispatchInputError(file, f"{iso!r} is not a string", field="iso")
    resource_id = data.get("resource_id")
    if resource_id is not None and (not isinstance(resource_id, str) or not resource_id.strip()):
        raise DispatchInputError(file, f"{resource_id!r} is not a non-empty string", field="resource_id")
    modification = data.get("modification", 0)
    if isinstance(modification, bool) or not isinstance(modification, int) or modification < 0:
        raise DispatchInputError(file, f"{modification!r} is not a whole number >= 0", field="modification")
    issued_at = _utc_timestamp(data["issued_at"], file, "issued_at") if data.get("issued_at") is not None else None
    return Instruction(
        instruction_id=instruction_id.strip(),
        start=start,
        end=end,
        interval_minutes=minutes,
        target_kw=target,
        iso=iso,
        resource_id=resource_id,
        modification=modification,
        issued_at=issued_at,
    )


def read_instruction(path: str | Path) -> Instruction:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DispatchInputError(path.name, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DispatchInputError(path.name, f"not valid JSON ({exc})") from None
    return parse_instruction(data, path.name)


# --------------------------------------------------------------------------------------------
# CSV helpers


def _read_csv_text(path: str | Path) -> tuple[pd.DataFrame, str]:
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise DispatchInputError(path.name, "file not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DispatchInputError(path.name, f"not a readable CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [c.strip() for c in df.columns]
    return df, path.name


def _require_columns(df: pd.DataFrame, columns, file: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DispatchInputError(file, f"missing column(s): {', '.join(missing)}")


def _numeric(df: pd.DataFrame, col: str, file: str, *, allow_empty: bool = False) -> np.ndarray:
    """Column as float; empty cells are NaN only when ``allow_empty`` (a forecast gap)."""
    text = df[col].astype(str).str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=float)
    empty = text.eq("").to_numpy()
    bad = ~np.isfinite(values) & ~(empty & allow_empty)
    if bad.any():
        k = int(np.argmax(bad))
        shown = text.iloc[k] if text.iloc[k] else "an empty cell"
        raise DispatchInputError(file, f"{shown!r} is not a finite number", line=k + 2, field=col)
    return values


def _check(df: pd.DataFrame, mask: np.ndarray, file: str, col: str, message: str, ident: str | None = None) -> None:
    """Raise for the first row where ``mask`` is True."""
    if mask.any():
        k = int(np.argmax(mask))
        who = f" ({ident}={df[ident].iloc[k]})" if ident else ""
        raise DispatchInputError(file, f"{df[col].iloc[k]!s} {message}{who}", line=k + 2, field=col)


# --------------------------------------------------------------------------------------------
# fleet.csv


def validate_fleet(df: pd.DataFrame, file: str = "fleet.csv") -> pd.DataFrame:
    """Typed, checked copy of a fleet table whose cells are strings (or already typed)."""
    df = df.copy().reset_index(drop=True)
    df = df.astype({c: str for c in df.columns})
    _require_columns(df, FLEET_COLUMNS, file)
    if df.empty:
        raise DispatchInputError(file, "has no batteries")
    out = pd.DataFrame({"battery_id": df["battery_id"].str.strip(), "site_id": df["site_id"].str.strip()})
    for col in ("battery_id", "site_id"):
        empty = out[col].eq("").to_numpy()
        if empty.any():
            raise DispatchInputError(file, "is empty", line=int(np.argmax(empty)) + 2, field=col)
    dup = out["battery_id"].duplicated().to_numpy()
    if dup.any():
        k = int(np.argmax(dup))
        raise DispatchInputError(file, f"{out['battery_id'].iloc[k]!r} appears twice", line=k + 2, field="battery_id")
    for col in ("capacity_kwh", "soc_kwh", "reserve_kwh", "max_discharge_kw", "max_charge_kw", "efficiency"):
        out[col] = _numeric(df, col, file)
    for col in ("export_allowed", "available"):
        text = df[col].str.strip().str.lower()
        ok = text.isin(_TRUE | _FALSE).to_numpy()
        if not ok.all():
            k = int(np.argmax(~ok))
            raise DispatchInputError(file, f"{df[col].iloc[k]!r} is not true or false", line=k + 2, field=col)
        out[col] = text.isin(_TRUE).to_numpy()
    cap = out["capacity_kwh"].to_numpy()
    _check(out, cap <= 0, file, "capacity_kwh", "kWh: capacity must be > 0", "battery_id")
    _check(out, out["soc_kwh"].to_numpy() < 0, file, "soc_kwh", "kWh: state of charge is negative", "battery_id")
    _check(out, out["soc_kwh"].to_numpy() > cap, file, "soc_kwh", "kWh: state of charge exceeds capacity_kwh", "battery_id")
    _check(out, out["reserve_kwh"].to_numpy() < 0, file, "reserve_kwh", "kWh: reserve is negative", "battery_id")
    _check(out, out["reserve_kwh"].to_numpy() > cap, file, "reserve_kwh", "kWh: reserve exceeds capacity_kwh", "battery_id")
    _check(out, out["max_discharge_kw"].to_numpy() < 0, file, "max_discharge_kw", "kW: power limit is negative", "battery_id")
    _check(out, out["max_charge_kw"].to_numpy() < 0, file, "max_charge_kw", "kW: power limit is negative", "battery_id")
    eta = out["efficiency"].to_numpy()
    _check(out, (eta <= 0) | (eta > 1), file, "efficiency", "is outside (0, 1]: round-trip efficiency is a fraction", "battery_id")
    # Optional program agreements: blank cells mean "no limit".
    for col in AGREEMENT_COLUMNS:
        if col not in df.columns:
            continue
        values = _numeric(df, col, file, allow_empty=True)
        out[col] = values
        given = np.isfinite(values)
        if col == "max_event_hours":
            _check(df, given & (values <= 0), file, col, "hours: the longest event must be > 0", "battery_id")
        else:
            _check(df, given & ((values < 0) | (values != np.round(values))), file, col, "is not a whole number >= 0", "battery_id")
    if "resource_id" in df.columns:
        out["resource_id"] = df["resource_id"].str.strip()
    return out


def read_fleet(path: str | Path) -> pd.DataFrame:
    df, name = _read_csv_text(path)
    return validate_fleet(df, name)


# --------------------------------------------------------------------------------------------
# forecast.csv


def validate_forecast(df: pd.DataFrame, instruction: Instruction, file: str = "forecast.csv") -> pd.DataFrame:
    """Typed forecast rows on the instruction's interval grid, from ``start`` onward.

    Returns columns site_id, interval_start (UTC), k (interval index from start), load_kw, pv_kw.
    Empty load/pv cells stay NaN (a gap, reported later, never a zero).
    """
    df = df.copy().reset_index(drop=True)
    df = df.astype({c: str for c in df.columns})
    _require_columns(df, FORECAST_COLUMNS, file)
    site = df["site_id"].str.strip()
    empty = site.eq("").to_numpy()
    if empty.any():
        raise DispatchInputError(file, "is empty", line=int(np.argmax(empty)) + 2, field="site_id")
    text = df["interval_start"].str.strip()
    no_tz = ~text.str.contains(_TZ_SUFFIX).to_numpy()
    if no_tz.any():
        k = int(np.argmax(no_tz))
        raise DispatchInputError(file, f"{text.iloc[k]!r} has no UTC offset (write e.g. ...T18:00:00Z)", line=k + 2, field="interval_start")
    ts = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = ts.isna().to_numpy()
    if bad.any():
        k = int(np.argmax(bad))
        raise DispatchInputError(file, f"{text.iloc[k]!r} is not a valid time", line=k + 2, field="interval_start")
    step_ns = instruction.interval_minutes * 60 * 10**9
    offset_ns = (ts - instruction.start).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    off_grid = offset_ns % step_ns != 0
    if off_grid.any():
        k = int(np.argmax(off_grid))
        raise DispatchInputError(
            file,
            f"{text.iloc[k]!r} is not on the instruction's {instruction.interval_minutes}-minute grid from {instruction.start.isoformat()}",
            line=k + 2,
            field="interval_start",
        )
    load = _numeric(df, "load_kw", file, allow_empty=True)
    pv = _numeric(df, "pv_kw", file, allow_empty=True)
    for col, values in (("load_kw", load), ("pv_kw", pv)):
        neg = np.isfinite(values) & (values < 0)
        if neg.any():
            k = int(np.argmax(neg))
            raise DispatchInputError(file, f"{values[k]:g} is negative (kW >= 0 by the schema)", line=k + 2, field=col)
    out = pd.DataFrame({"site_id": site, "interval_start": ts, "k": offset_ns // step_ns, "load_kw": load, "pv_kw": pv, "line": np.arange(len(df)) + 2})
    dup = out.duplicated(["site_id", "k"]).to_numpy()
    if dup.any():
        k = int(np.argmax(dup))
        raise DispatchInputError(file, f"site {site.iloc[k]} interval {text.iloc[k]} appears twice", line=k + 2, field="interval_start")
    return out[out["k"] >= 0].reset_index(drop=True)


def read_forecast(path: str | Path, instruction: Instruction) -> pd.DataFrame:
    df, name = _read_csv_text(path)
    return validate_forecast(df, instruction, name)


# --------------------------------------------------------------------------------------------
# problem


def build_problem(
    fleet: pd.DataFrame,
    forecast: pd.DataFrame,
    instruction: Instruction,
    *,
    resource_ids=None,
    recovery_hours: float = 24.0,
    fleet_file: str = "fleet.csv",
    instruction_file: str = "instruction.json",
) -> DispatchProblem:
    """Turn validated inputs into per-battery, per-interval caps and post-event needs.

    - cap = max_discharge_kw, 0 when unavailable or out of program allowance, 0 after
      ``max_event_hours`` from the event start, and for non-export sites the site's net load
      max(0, load - pv) shared among the site's non-export batteries in proportion to their power
      (conservative, and keeps batteries coupled only through the fleet total).
    - need = the site's net load over the recovery window (forecast rows at or after ``end``, up
      to ``recovery_hours``), capped by battery power and split like the cap. A site whose forecast
      stops at ``end`` uses its event-window net load instead, and a warning says so.
    """
    warnings: list[str] = []
    if instruction.resource_id is not None and (resource_ids is not None or "resource_id" in fleet.columns):
        known = set(resource_ids) if resource_ids is not None else set(fleet["resource_id"])
        if instruction.resource_id not in known:
            raise DispatchInputError(
                instruction_file,
                f"unknown resource {instruction.resource_id!r} (known: {', '.join(sorted(map(str, known))) or 'none'})",
                field="resource_id",
            )
        if "resource_id" in fleet.columns:
            fleet = fleet[fleet["resource_id"] == instruction.resource_id].reset_index(drop=True)
            if fleet.empty:
                raise DispatchInputError(fleet_file, f"has no batteries in resource {instruction.resource_id!r}", field="resource_id")
    n, t_n, dt = len(fleet), instruction.n_intervals, instruction.dt_h
    site = fleet["site_id"].to_numpy()
    max_dis = fleet["max_discharge_kw"].to_numpy(dtype=float)
    available = fleet["available"].to_numpy(dtype=bool).copy()
    export_allowed = fleet["export_allowed"].to_numpy(dtype=bool)

    # Program agreements.
    if "max_events_per_month" in fleet.columns:
        allowance = fleet["max_events_per_month"].to_numpy(dtype=float)
        used = fleet["events_this_month"].to_numpy(dtype=float) if "events_this_month" in fleet.columns else np.zeros(n)
        used = np.nan_to_num(used, nan=0.0)
        # A modification of an event already counted does not use a new event.
        used_up = np.isfinite(allowance) & (used + (1 if instruction.modification == 0 else 0) > allowance)
        if used_up.any():
            warnings.append(f"{int(used_up.sum())} batteries have no events left this month and get 0 kW")
        available &= ~used_up
    hours_cap = np.full(n, np.inf)
    if "max_event_hours" in fleet.columns:
        hours_cap = np.nan_to_num(fleet["max_event_hours"].to_numpy(dtype=float), nan=np.inf)

    # Forecast onto (site, k) grids.
    sites, site_idx = np.unique(site, return_inverse=True)
    fc = forecast[forecast["site_id"].isin(sites)]
    s_of = pd.Index(sites).get_indexer(fc["site_id"])
    k = fc["k"].to_numpy()
    netload_all = np.maximum(fc["load_kw"].to_numpy() - fc["pv_kw"].to_numpy(), 0.0)  # NaN stays NaN
    in_event = k < t_n
    site_netload = np.full((len(sites), t_n), np.nan)
    site_netload[s_of[in_event], k[in_event]] = netload_all[in_event]
    netload = site_netload[site_idx]  # (N, T)

    cap = np.where(available, max_dis, 0.0)[:, None] * np.ones((1, t_n))
    k_grid = np.arange(t_n)
    cap[(k_grid[None, :] + 1) * dt > hours_cap[:, None] + 1e-9] = 0.0

    nonexport = ~export_allowed & available
    share = np.zeros(n)
    if nonexport.any():
        power_at_site = np.bincount(site_idx, weights=np.where(nonexport, max_dis, 0.0), minlength=len(sites))
        denom = power_at_site[site_idx]
        share = np.divide(max_dis, denom, out=np.zeros(n), where=denom > 0)
        gap = nonexport[:, None] & np.isnan(netload) & (cap > 0)
        if gap.any():
            warnings.append(
                f"{int(gap.any(axis=1).sum())} non-export batteries lack a forecast for {int(gap.sum())} battery-intervals; capped at 0 kW there"
            )
        cap = np.where(nonexport[:, None], np.minimum(cap, np.nan_to_num(netload, nan=0.0) * share[:, None]), cap)

    # Post-event need, split among a site's batteries by power.
    power_all = np.bincount(site_idx, weights=max_dis, minlength=len(sites))[site_idx]
    need_share = np.divide(max_dis, power_all, out=np.zeros(n), where=power_all > 0)
    site_max_dis = np.bincount(site_idx, weights=max_dis, minlength=len(sites))
    after = (k >= t_n) & ((k - t_n) * dt < recovery_hours - 1e-9)
    served = np.minimum(np.nan_to_num(netload_all, nan=0.0), site_max_dis[s_of])
    post_need = np.bincount(s_of[after], weights=served[after] * dt, minlength=len(sites))
    has_post = np.bincount(s_of[after], minlength=len(sites)) > 0
    event_need = np.bincount(s_of[in_event], weights=served[in_event] * dt, minlength=len(sites))
    site_need = np.where(has_post, post_need, event_need)
    if (~has_post[site_idx]).any():
        warnings.append(
            f"{int((~has_post).sum())} sites have no forecast after the event end; their event-window net load stands in for the post-event need"
        )
    missing_fc = np.isnan(fc["load_kw"].to_numpy()) | np.isnan(fc["pv_kw"].to_numpy())
    if missing_fc.any():
        warnings.append(f"{int(missing_fc.sum())} forecast rows have a missing load or PV value")

    return DispatchProblem(
        battery_id=fleet["battery_id"].to_numpy(dtype=object),
        site_id=site.astype(object),
        capacity_kwh=fleet["capacity_kwh"].to_numpy(dtype=float),
        soc_kwh=fleet["soc_kwh"].to_numpy(dtype=float),
        reserve_kwh=fleet["reserve_kwh"].to_numpy(dtype=float),
        max_discharge_kw=max_dis,
        max_charge_kw=fleet["max_charge_kw"].to_numpy(dtype=float),
        efficiency=fleet["efficiency"].to_numpy(dtype=float),
        export_allowed=export_allowed,
        available=available,
        cap_kw=cap,
        target_kw=instruction.target_kw.astype(float),
        dt_h=dt,
        need_kwh=site_need[site_idx] * need_share,
        netload_kw=netload,
        interval_start=instruction.interval_start,
        instruction_id=instruction.instruction_id,
        iso=instruction.iso,
        warnings=warnings,
    )


# --------------------------------------------------------------------------------------------
# outputs


def soc_trajectory_kwh(problem: DispatchProblem, setpoint_kw: np.ndarray) -> np.ndarray:
    """SoC at the end of each interval: discharge p lowers it by p*dt/sqrt(eta), charge raises it by |p|*dt*sqrt(eta)."""
    se = problem.sqrt_eta[:, None]
    delta = np.where(setpoint_kw >= 0, setpoint_kw / se, setpoint_kw * se) * problem.dt_h
    return problem.soc_kwh[:, None] - np.cumsum(delta, axis=1)


def plan_frame(problem: DispatchProblem, setpoint_kw: np.ndarray) -> pd.DataFrame:
    """plan.csv rows, battery-major. Setpoints are floored to 1e-6 kW so rounding never breaks a cap."""
    sp = np.floor(np.asarray(setpoint_kw, dtype=float) / SETPOINT_RESOLUTION_KW) * SETPOINT_RESOLUTION_KW
    sp = np.where(np.abs(sp) < SETPOINT_RESOLUTION_KW / 2, 0.0, sp)
    soc = soc_trajectory_kwh(problem, sp)
    n, t_n = sp.shape
    starts = problem.interval_start if problem.interval_start is not None else pd.RangeIndex(t_n)
    start_text = (
        np.asarray(starts.strftime("%Y-%m-%dT%H:%M:%SZ"), dtype=object)
        if isinstance(starts, pd.DatetimeIndex)
        else np.asarray(starts, dtype=object)
    )
    return pd.DataFrame(
        {
            "battery_id": np.repeat(problem.battery_id, t_n),
            "interval_start": np.tile(start_text, n),
            "setpoint_kw": sp.ravel().round(6),
            "soc_end_kwh": soc.ravel().round(6),
        }
    )


def summary_dict(problem: DispatchProblem, setpoint_kw: np.ndarray, solve_s: float, prices: Prices | None = None) -> dict:
    """The summary JSON: the contract's keys first, then the objective's parts and warnings."""
    from der_assets.dispatch.optimizer import evaluate_plan

    ev = evaluate_plan(problem, setpoint_kw, prices)
    shortfall = ev["shortfall_kwh"]
    return {
        "instruction_id": problem.instruction_id,
        "n_batteries": problem.n_batteries,
        "target_kwh": round(problem.target_kwh, 6),
        "planned_kwh": round(ev["delivered_kwh"], 6),
        "shortfall_kwh": round(shortfall, 6),
        "solve_s": round(solve_s, 6),
        "status": "met" if shortfall <= 1e-6 * max(1.0, problem.target_kwh) else "shortfall",
        "subscriber_impact_kwh": round(ev["subscriber_impact_kwh"], 6),
        "objective_usd": round(ev["objective_usd"], 6),
        "warnings": list(problem.warnings),
    }


def plan_from_files(fleet_path, forecast_path, instruction_path, out_path=None, *, prices: Prices | None = None, resource_ids=None) -> dict:
    """Read the three input files, plan, optionally write plan.csv, and return the summary dict.

    This is what ``der dispatch plan --fleet --forecast --instruction [--out]`` calls; the CLI prints
    the returned dict as JSON. Bad inputs raise ``DispatchInputError``; a target the fleet cannot
    meet returns status "shortfall" with the best plan.
    """
    from der_assets.dispatch.optimizer import solve_fast

    instruction = read_instruction(instruction_path)
    fleet = read_fleet(fleet_path)
    forecast = read_forecast(forecast_path, instruction)
    problem = build_problem(
        fleet, forecast, instruction, resource_ids=resource_ids, fleet_file=Path(fleet_path).name, instruction_file=Path(instruction_path).name
    )
    t0 = time.perf_counter()
    plan = solve_fast(problem, prices)
    solve_s = time.perf_counter() - t0
    frame = plan_frame(problem, plan.setpoint_kw)
    written = frame["setpoint_kw"].to_numpy().reshape(problem.n_batteries, problem.n_intervals)
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(out_path.name + ".tmp")
        frame.to_csv(tmp, index=False)
        tmp.replace(out_path)  # a killed run never leaves half a plan
    return summary_dict(problem, written, solve_s, prices)
