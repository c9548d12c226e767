"""Metered performance per event interval, site and resource: what the meters say was delivered.

AMI is authoritative. Where a site's AMI is missing for an interval (or for the baseline days behind
it) and an inverter-based estimate is given, the estimate stands in and the row says `basis =
"estimated"`; a site with neither is `basis = "missing"` with NaN values, never a zero. A resource's
reduction is the sum of its sites' reductions (DESIGN.md, settlement contract), so it is NaN whenever
one of its counted sites is missing; `reduction_kwh_partial` sums what is there, for evidence only.

Public API (pure functions; the Dagster layer calls them with canonical frames):
- `site_table(registry) -> DataFrame[site_id, meter_id, resource_id, iso, site_status, plc_kw, enrolled]`:
  one row per site. The resource is the registry's `resource_id`, else `<ISO>-<zone>`; a site counts
  for an event ("enrolled") when its ISO is the event's and its status is active or suspended.
- `meter_frame_from_canonical(rows, registry)`: canonical AMI rows (meter_intervals: channel grid_kwh,
  source ami) -> the METER.csv frame `meter_id, interval_start, interval_s, grid_kwh`.
- `calibrated_estimate(reconciled, registry)`: reconciled_intervals rows -> an estimate in the METER.csv
  frame: the vendor (revision 0) grid_kwh of each site times its calibration, the least-squares slope
  through the origin of AMI (revision 1) on vendor grid_kwh over the intervals where both exist.
  A site without `MIN_CALIBRATION_INTERVALS` such intervals is left uncalibrated (slope 1) and says so in
  `calibration`.
- `event_baselines(meter, events, sites, params=None) -> (frame, warnings)`: compute_baseline (the
  baselines package) per event with its `method`, over the meters of the sites enrolled in it. pjm_fsl and
  pjm_gld take each site's PLC from the registry's plc_kw, and the event's plc_kw where that is blank.
- `metered_performance(meter, events, registry, *, estimate=None, grid_s=None, params=None) -> Performance`
  with `.sites` (event_id, resource_id, site_id, meter_id, interval_start, interval_s, baseline_kw,
  load_kw, reduction_kw, reduction_kwh, basis), `.resources` (event_id, resource_id, interval_start,
  interval_s, baseline_kw, load_kw, reduction_kwh, reduction_kwh_partial, n_sites, n_ami, n_estimated,
  n_missing, missing_sites) and `.warnings`. grid_s maps (event_id) -> the interval length to report at
  (a statement's); by default the baseline method's own resolution. Baseline rows finer than the grid
  are summed into it, coarser ones spread evenly over the grid intervals they cover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from der_assets.errors import UserError

ENROLLED_STATUSES = ("active", "suspended")
MIN_CALIBRATION_INTERVALS = 96  # one day of 15-minute overlap before a site's own slope is trusted
SITE_COLUMNS = ["event_id", "resource_id", "site_id", "meter_id", "interval_start", "interval_s", "baseline_kw",
                "load_kw", "reduction_kw", "reduction_kwh", "basis"]
RESOURCE_COLUMNS = ["event_id", "resource_id", "interval_start", "interval_s", "baseline_kw", "load_kw",
                    "reduction_kwh", "reduction_kwh_partial", "n_sites", "n_ami", "n_estimated", "n_missing",
                    "missing_sites"]
METER_COLUMNS = ["meter_id", "interval_start", "interval_s", "grid_kwh"]
PLC_METHODS = ("pjm_fsl", "pjm_gld")  # methods that read each customer's peak load contribution


def iso_key(name: object) -> str:
    """PJM, NYISO, ISONE: the registry's spelling, whatever the event file wrote (ISO-NE)."""
    return str(name).strip().upper().replace("-", "").replace(" ", "")


def _site_resource(registry: pd.DataFrame) -> pd.Series:
    try:
        from der_assets.registry.resources import site_resource
    except ImportError:  # pragma: no cover - older registry without the resource rule
        site_resource = None
    if site_resource is not None:
        return site_resource(registry)
    default = registry["iso"].astype(str) + "-" + registry["zone"].fillna("").astype(str)
    if "resource_id" not in registry.columns:
        return default.rename("resource_id")
    explicit = registry["resource_id"].astype("string").str.strip()
    return explicit.where(explicit.notna() & (explicit != ""), default).astype(str).rename("resource_id")


def site_table(registry: pd.DataFrame) -> pd.DataFrame:
    """One row per site: site_id, meter_id, resource_id, iso, site_status, plc_kw (NaN where blank), enrolled
    (with or without resource_id)."""
    sites = registry.drop_duplicates("site_id").reset_index(drop=True)
    out = pd.DataFrame({
        "site_id": sites["site_id"].astype(str),
        "meter_id": sites["meter_id"].where(sites["meter_id"].notna(), None).astype(object),
        "resource_id": _site_resource(sites).to_numpy(),
        "iso": sites["iso"].map(iso_key),
        "site_status": sites["site_status"].astype(str),
        "plc_kw": (pd.to_numeric(sites["plc_kw"], errors="coerce") if "plc_kw" in sites.columns
                   else pd.Series(np.nan, index=sites.index)).astype("float64"),
    })
    out["meter_id"] = out["meter_id"].map(lambda m: None if m is None or str(m).strip() == "" else str(m))
    out["enrolled"] = out["site_status"].isin(ENROLLED_STATUSES)
    return out


def enrolled_sites(sites: pd.DataFrame, event) -> pd.DataFrame:
    """The sites an event counts: enrolled in its ISO."""
    return sites[sites["enrolled"] & (sites["iso"] == iso_key(event.iso))]


def meter_frame_from_canonical(rows: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Canonical AMI grid_kwh rows (latest revision per interval) as the METER.csv frame, keyed by meter_id."""
    grid = rows[(rows["channel"] == "grid_kwh") & (rows["source"] == "ami")]
    if "revision" in grid.columns:
        grid = grid.sort_values("revision").drop_duplicates(["site_id", "interval_start"], keep="last")
    meters = site_table(registry).dropna(subset=["meter_id"]).set_index("site_id")["meter_id"]
    out = pd.DataFrame({"meter_id": grid["site_id"].map(meters), "interval_start": pd.to_datetime(grid["interval_start"], utc=True),
                        "interval_s": grid["interval_s"].astype("int64"), "grid_kwh": grid["value"].astype("float64")})
    return out.dropna(subset=["meter_id"]).sort_values(["meter_id", "interval_start"]).reset_index(drop=True)


def calibrated_estimate(reconciled: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Vendor grid_kwh (revision 0) scaled by each site's AMI-vs-vendor slope, as a METER.csv frame plus
    `calibration` (the slope, NaN when there was too little overlap and the estimate is uncalibrated)."""
    grid = reconciled[reconciled["channel"] == "grid_kwh"]
    vendor = grid[grid["revision"] == 0][["site_id", "interval_start", "interval_s", "value"]]
    ami = grid[grid["revision"] >= 1].sort_values("revision").drop_duplicates(["site_id", "interval_start"], keep="last")
    pair = vendor.merge(ami[["site_id", "interval_start", "value"]], on=["site_id", "interval_start"],
                        suffixes=("_vendor", "_ami")).dropna(subset=["value_vendor", "value_ami"])
    pair = pair.assign(xy=pair["value_vendor"] * pair["value_ami"], xx=pair["value_vendor"] ** 2)
    stats = pair.groupby("site_id").agg(xy=("xy", "sum"), xx=("xx", "sum"), n=("xy", "size"))
    slope = (stats["xy"] / stats["xx"]).where((stats["n"] >= MIN_CALIBRATION_INTERVALS) & (stats["xx"] > 0))
    calibration = vendor["site_id"].map(slope)
    meters = site_table(registry).dropna(subset=["meter_id"]).set_index("site_id")["meter_id"]
    out = pd.DataFrame({"meter_id": vendor["site_id"].map(meters),
                        "interval_start": pd.to_datetime(vendor["interval_start"], utc=True),
                        "interval_s": vendor["interval_s"].astype("int64"),
                        "grid_kwh": vendor["value"].astype("float64") * calibration.fillna(1.0),
                        "calibration": calibration.astype("float64")})
    return out.dropna(subset=["meter_id"]).sort_values(["meter_id", "interval_start"]).reset_index(drop=True)


def event_baselines(meter: pd.DataFrame, events: Sequence, sites: pd.DataFrame,
                    params: Mapping | None = None) -> tuple[pd.DataFrame, list[str]]:
    """compute_baseline per event (its method) over its enrolled sites' meters: the baseline frame plus event_id."""
    from der_assets.settlement.baselines import compute_baseline, history_span, method_params, prepare_meter
    from der_assets.settlement.baselines.matrix import meter_codes

    frames, warnings = [], []
    ids = meter["meter_id"]
    coded = len(meter) > 0 and not isinstance(ids.dtype, pd.CategoricalDtype)  # a Categorical has its codes
    codes, uniques = meter_codes(ids) if coded else (None, None)  # one pass over the ids for every meter set
    all_meters = set(uniques) if coded else set(ids.unique())
    groups: dict[frozenset, list] = {}
    for event in events:
        if not event.method:
            raise UserError(f"event {event.event_id}: no baseline method")
        wanted = frozenset(enrolled_sites(sites, event)["meter_id"].dropna()) & all_meters
        groups.setdefault(wanted, []).append(event)
    for wanted, group in groups.items():
        if not wanted:
            continue
        frame, frame_codes = meter, (codes, uniques) if coded else None
        if len(wanted) < len(all_meters) and not coded:
            frame = meter[ids.isin(wanted)]
        elif len(wanted) < len(all_meters):  # this meter set's rows, their codes renumbered (ids stay sorted)
            member = np.fromiter((u in wanted for u in uniques), dtype=bool, count=len(uniques))
            rows = member[codes]
            frame, frame_codes = meter[rows], ((np.cumsum(member) - 1)[codes[rows]], uniques[member])
        spans = [history_span(e.method, e, method_params(e.method, params)) for e in group]
        matrix = prepare_meter(frame, min(a for a, _ in spans), max(b for _, b in spans),  # once per meter set
                               codes=frame_codes)
        for event in group:
            plc = None
            if event.method in PLC_METHODS:  # each site's own PLC from the registry; the event's where it is blank
                counted = enrolled_sites(sites, event).dropna(subset=["meter_id", "plc_kw"])
                plc = dict(zip(counted["meter_id"], counted["plc_kw"], strict=True))
                text = (f"{event.method}: event {event.event_id}: PLC per site from the registry's plc_kw"
                        + (f", else the event's plc_kw {event.plc_kw:g} kW" if event.plc_kw is not None else ""))
                if text not in warnings:
                    warnings.append(text)
            result = compute_baseline(event.method, matrix, event, params, plc_kw_by_meter=plc)
            frames.append(result.frame.assign(event_id=event.event_id))
            for warning in result.warnings:
                text = f"{event.method}: {warning}"
                if text not in warnings:
                    warnings.append(text)
    if not frames:
        return pd.DataFrame(columns=["event_id", "meter_id", "interval_start", "interval_s", "baseline_kw", "load_kw",
                                     "reduction_kw"]), warnings
    return pd.concat(frames, ignore_index=True), warnings


def _to_grid(base: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, grid_s: int) -> pd.DataFrame:
    """One event's baseline rows summed (or spread) into [start, end) at grid_s: per meter and grid interval,
    baseline/load/reduction kWh and the seconds covered by finite values."""
    s = base["interval_s"].to_numpy(dtype=np.int64)
    bad = (s % grid_s != 0) & (grid_s % s != 0)
    if bad.any():
        raise UserError(f"baseline interval {int(s[bad][0])} s and statement interval {grid_s} s do not nest")
    k = np.where(s > grid_s, s // grid_s, 1)
    if (k > 1).any():
        base = base.loc[base.index.repeat(k)]
        piece = base.groupby(level=0).cumcount().to_numpy()
        s = np.minimum(base["interval_s"].to_numpy(dtype=np.int64), grid_s)
        t = base["interval_start"] + pd.to_timedelta(piece * s, unit="s")
    else:
        t = base["interval_start"]
    offset_s = ((t - start).dt.total_seconds().to_numpy() // grid_s) * grid_s
    bucket = start + pd.to_timedelta(offset_s, unit="s")
    hours = s / 3600.0
    reduction = base["reduction_kw"].to_numpy(dtype=float)
    valid = np.isfinite(reduction)
    work = pd.DataFrame({"meter_id": base["meter_id"].to_numpy(), "interval_start": bucket,
                         "reduction_kwh": reduction * hours,
                         "baseline_kwh": base["baseline_kw"].to_numpy(dtype=float) * hours,
                         "load_kwh": base["load_kw"].to_numpy(dtype=float) * hours,
                         "covered_s": np.where(valid, s, 0)})
    work = work[(work["interval_start"] >= start) & (work["interval_start"] < end)]
    out = work.groupby(["meter_id", "interval_start"], sort=False).agg(
        reduction_kwh=("reduction_kwh", "sum"),
        baseline_kwh=("baseline_kwh", "sum"), load_kwh=("load_kwh", "sum"), covered_s=("covered_s", "sum"))
    complete = out["covered_s"] >= grid_s
    return out[complete].drop(columns="covered_s").reset_index()


@dataclass
class Performance:
    sites: pd.DataFrame
    resources: pd.DataFrame
    baselines: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def _grid_for(event, baselines: pd.DataFrame, grid_s: Mapping[str, int] | None) -> int:
    if grid_s and event.event_id in grid_s:
        return int(grid_s[event.event_id])
    rows = baselines[baselines["event_id"] == event.event_id]["interval_s"]
    return int(rows.max()) if len(rows) else 3600


def _site_grid(event, sites: pd.DataFrame, step_s: int) -> pd.DataFrame:
    starts = pd.date_range(event.start, event.end, freq=pd.Timedelta(seconds=step_s), inclusive="left")
    counted = enrolled_sites(sites, event)[["resource_id", "site_id", "meter_id"]]
    grid = counted.merge(pd.DataFrame({"interval_start": starts}), how="cross")
    return grid.assign(event_id=event.event_id, interval_s=step_s)


def metered_performance(meter: pd.DataFrame, events: Sequence, registry: pd.DataFrame, *,
                        estimate: pd.DataFrame | None = None, grid_s: Mapping[str, int] | None = None,
                        params: Mapping | None = None) -> Performance:
    """Per event interval, site and resource: reduction from AMI, else the estimate (flagged), else missing."""
    sites = site_table(registry)
    baselines, warnings = event_baselines(meter, events, sites, params)
    est_baselines = None
    if estimate is not None and len(estimate):
        est_baselines, est_warnings = event_baselines(estimate[METER_COLUMNS], events, sites, params)
        warnings += [w for w in est_warnings if w not in warnings]
        if estimate.get("calibration") is not None and estimate["calibration"].isna().any():
            n = estimate.loc[estimate["calibration"].isna(), "meter_id"].nunique()
            warnings.append(f"{n} meter(s) estimated without calibration (under {MIN_CALIBRATION_INTERVALS} "
                            "intervals of AMI and vendor overlap)")
    site_frames = []
    for event in events:
        step = _grid_for(event, baselines, grid_s)
        grid = _site_grid(event, sites, step)
        if grid.empty:
            continue
        ami = _to_grid(baselines[baselines["event_id"] == event.event_id], event.start, event.end, step)
        merged = grid.merge(ami, on=["meter_id", "interval_start"], how="left")
        merged["basis"] = np.where(merged["reduction_kwh"].notna(), "ami", "missing")
        if est_baselines is not None:
            est = _to_grid(est_baselines[est_baselines["event_id"] == event.event_id], event.start, event.end, step)
            est = grid.merge(est, on=["meter_id", "interval_start"], how="left")
            fill = (merged["basis"] == "missing").to_numpy() & est["reduction_kwh"].notna().to_numpy()
            for column in ("reduction_kwh", "baseline_kwh", "load_kwh"):
                merged.loc[fill, column] = est.loc[fill, column].to_numpy()
            merged.loc[fill, "basis"] = "estimated"
        hours = step / 3600.0
        merged["baseline_kw"] = merged["baseline_kwh"] / hours
        merged["load_kw"] = merged["load_kwh"] / hours
        merged["reduction_kw"] = merged["reduction_kwh"] / hours
        site_frames.append(merged[SITE_COLUMNS])
    site_perf = (pd.concat(site_frames, ignore_index=True) if site_frames
                 else _empty(SITE_COLUMNS))
    return Performance(sites=site_perf, resources=resource_performance(site_perf), baselines=baselines,
                       warnings=warnings)


def _empty(columns: list[str]) -> pd.DataFrame:
    """A typed empty frame, so merges on interval_start (UTC) still line up."""
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame["interval_start"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["interval_s"] = pd.Series(dtype="int64")
    return frame


def resource_performance(site_perf: pd.DataFrame) -> pd.DataFrame:
    """Sites summed into their resource per event interval; NaN (not a partial sum) when a site is missing."""
    if site_perf.empty:
        return _empty(RESOURCE_COLUMNS)
    keys = ["event_id", "resource_id", "interval_start", "interval_s"]
    frame = site_perf.assign(is_ami=site_perf["basis"] == "ami", is_est=site_perf["basis"] == "estimated",
                             is_missing=site_perf["basis"] == "missing")
    out = frame.groupby(keys, sort=True).agg(
        baseline_kw=("baseline_kw", "sum"), load_kw=("load_kw", "sum"), reduction_kwh_partial=("reduction_kwh", "sum"),
        n_sites=("site_id", "size"), n_ami=("is_ami", "sum"), n_estimated=("is_est", "sum"),
        n_missing=("is_missing", "sum")).reset_index()
    missing = frame[frame["is_missing"]].groupby(keys)["site_id"].agg(lambda v: ";".join(sorted(v)))
    out = out.merge(missing.rename("missing_sites").reset_index(), on=keys, how="left")
    out["missing_sites"] = out["missing_sites"].fillna("")
    gap = out["n_missing"] > 0
    for column in ("baseline_kw", "load_kw"):
        out[column] = out[column].where(~gap)
    out["reduction_kwh"] = out["reduction_kwh_partial"].where(~gap)
    for column in ("n_sites", "n_ami", "n_estimated", "n_missing"):
        out[column] = out[column].astype("int64")
    return out[RESOURCE_COLUMNS]
