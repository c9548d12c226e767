"""Normalization and quality: a complete grid per device, channel and day, with flags, never repairs.

- `complete_grid`: every expected (site, device, source, channel) gets every interval of the
  day. An interval nobody reported is a null value with quality `missing`, never a zero, an
  interpolation or a dropped row. Overlapping pulls keep the latest belief (received_at). A
  series reported at two interval lengths (Enphase's 5-minute micro and 15-minute meter PV,
  Fronius' 5-minute archive and 15-minute PowerFlow estimate) takes one length by the rule
  cells follow: a length with a value beats one with none, one with a measured value beats one
  with only estimates, then the finer length (it says more), then the latest belief. So
  measured 5-minute rows are kept and a coarser estimate fills a series only where nothing
  finer was measured; a 15-minute value never fills a 5-minute cell (it is an
  other_interval_length review item).
- `flag_suspect`: energy above what the nameplate can make in the interval (a spike) and a
  non-zero value repeated for `stuck_intervals` in a row (a stuck register) become `suspect`;
  the value is kept so a person can see what was reported.
- `review_items`: what an operator should look at, one row per gap run or suspect run;
  `other_length_items`: one per series for reports at a length the series does not take.
- `lateness_s`: how long after an interval ended its value reached us.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.telemetry.schema import CANONICAL_COLUMNS, KEY_COLUMNS

SERIES_KEYS = ["site_id", "device_id", "source", "channel"]
SPIKE_MARGIN = 1.10  # 10 % above nameplate before a value is called a spike
STUCK_INTERVALS = 6  # the same non-zero value for 30 minutes at 5-minute resolution
STUCK_CHANNELS = ("pv_kwh", "load_kwh", "grid_kwh", "battery_kwh")


def day_grid(day_start: pd.Timestamp, day_end: pd.Timestamp, interval_s: int) -> pd.DatetimeIndex:
    """Interval starts (UTC) of [day_start, day_end) at `interval_s`."""
    return pd.date_range(day_start, day_end, freq=pd.Timedelta(seconds=interval_s), inclusive="left", tz="UTC")


def complete_grid(
    rows: pd.DataFrame,
    expected: pd.DataFrame,
    *,
    day_start: pd.Timestamp,
    day_end: pd.Timestamp,
    believed_at: pd.Timestamp,
) -> pd.DataFrame:
    """Canonical rows for [day_start, day_end): one per expected series and interval.

    rows: canonical rows from the parsers (any revision 0). expected: SERIES_KEYS + interval_s
    for every series that should exist (from the registry), so a device that sent nothing at
    all shows up as a full day of `missing`. believed_at: received_at given to missing rows.
    """
    rows = rows[(rows["interval_start"] >= day_start) & (rows["interval_start"] < day_end)]
    ranked = rows.assign(_has=rows["value"].notna(), _direct=rows["quality"].astype(str) != "estimated",
                         _finer=-rows["interval_s"].astype("int64"))
    # a series takes one length: a value beats none, a measured value beats an estimate, the finer
    # length beats the coarser, then the latest belief; only reports at that length fill its cells
    lengths = (ranked.sort_values(["_has", "_direct", "_finer", "received_at"], kind="stable")
               .drop_duplicates(SERIES_KEYS, keep="last"))
    # overlapping pulls of a cell: a reported value beats a reported gap, a measured value beats an
    # estimate (an Enphase gateway's counters differenced across two polls, say), then the latest belief
    rows = (ranked.sort_values(["_has", "_direct", "received_at"], kind="stable")
            .drop_duplicates(KEY_COLUMNS + ["interval_s"], keep="last")
            .drop(columns=["_has", "_direct", "_finer"]))
    series = pd.concat([expected[SERIES_KEYS + ["interval_s"]], lengths[SERIES_KEYS + ["interval_s"]]])
    series = series.drop_duplicates(SERIES_KEYS, keep="last").reset_index(drop=True)
    frames = []
    for interval_s, group in series.groupby("interval_s"):
        grid = day_grid(day_start, day_end, int(interval_s))
        frames.append(group.iloc[np.repeat(np.arange(len(group)), len(grid))]
                      .assign(interval_start=np.tile(grid, len(group))))
    if not frames:
        return rows.iloc[0:0][CANONICAL_COLUMNS]
    full = pd.concat(frames, ignore_index=True)
    full["interval_start"] = pd.to_datetime(full["interval_start"], utc=True)
    merged = full.merge(rows, on=SERIES_KEYS + ["interval_start", "interval_s"], how="left")
    missing = merged["value"].isna()
    merged.loc[missing, "quality"] = "missing"
    merged["received_at"] = pd.to_datetime(merged["received_at"], utc=True).fillna(believed_at).astype("datetime64[ns, UTC]")
    merged["interval_start"] = merged["interval_start"].astype("datetime64[ns, UTC]")
    merged["revision"] = merged["revision"].fillna(0).astype("int64")
    merged["interval_s"] = merged["interval_s"].astype("int64")
    return merged[CANONICAL_COLUMNS].sort_values(SERIES_KEYS + ["interval_start"]).reset_index(drop=True)


def flag_suspect(frame: pd.DataFrame, nameplate_kw: pd.Series, *, stuck_intervals: int = STUCK_INTERVALS) -> pd.DataFrame:
    """Mark spikes and stuck values `suspect`; returns a copy with a `flag` column (spike/stuck/None).

    nameplate_kw: indexed by device_id, the device's rated AC kW (PV inverter or battery).
    """
    out = frame.copy()
    out["flag"] = None
    energy = out["channel"].isin(["pv_kwh", "battery_kwh"])
    limit_kwh = out["device_id"].map(nameplate_kw) * out["interval_s"] / 3600.0 * SPIKE_MARGIN
    spike = energy & limit_kwh.notna() & (out["value"].abs() > limit_kwh)
    out.loc[spike, "flag"] = "spike"

    ordered = out.sort_values(SERIES_KEYS + ["interval_start"])
    value = ordered["value"]
    new_series = (ordered[SERIES_KEYS] != ordered[SERIES_KEYS].shift()).any(axis=1)
    changed = new_series | (value != value.shift()) | value.isna()
    run_id = changed.cumsum()
    run_len = run_id.map(run_id.value_counts())
    stuck = (ordered["channel"].isin(STUCK_CHANNELS) & value.notna() & (value != 0)
             & (run_len >= stuck_intervals))
    out.loc[stuck[stuck].index, "flag"] = out.loc[stuck[stuck].index, "flag"].fillna("stuck")
    out.loc[out["flag"].notna() & out["value"].notna(), "quality"] = "suspect"
    return out


def lateness_s(frame: pd.DataFrame) -> pd.Series:
    """Seconds between an interval's end and when its value was received (NaN for missing rows)."""
    end = frame["interval_start"] + pd.to_timedelta(frame["interval_s"], unit="s")
    late = (frame["received_at"] - end).dt.total_seconds()
    return late.where(frame["quality"] != "missing")


def ended_by(frame: pd.DataFrame, as_of: pd.Timestamp | None) -> np.ndarray:
    """True for each row whose interval has ended at or before `as_of` (every row when as_of is None).

    Why: an interval still running or yet to come has no value because it has not happened. It is
    neither missing nor measured, so the gap check leaves it out instead of counting it a gap.
    """
    if as_of is None:
        return np.ones(len(frame), dtype=bool)
    end = frame["interval_start"] + pd.to_timedelta(frame["interval_s"].to_numpy(np.int64), unit="s")
    return (end <= pd.Timestamp(as_of).tz_convert("UTC")).to_numpy(dtype=bool)


def gap_summary(rows: pd.DataFrame, as_of: pd.Timestamp | None,
                not_collected: np.ndarray | None = None) -> pd.DataFrame:
    """Per source: series-intervals judged (ended by as_of), missing among them, still to end, and gap_pct.

    gap_pct is None where nothing has ended yet: no interval judged is not 0 % missing.
    not_collected: per row, missing before the platform first collected its device
    (daily.not_collected); given, those that have ended are not judged but counted in a
    not_collected_intervals column (one still to come is future, as any other).
    """
    ended = ended_by(rows, as_of)
    before = ended & (np.zeros(len(rows), dtype=bool) if not_collected is None else np.asarray(not_collected, bool))
    judged = ended & ~before
    frame = pd.DataFrame({"source": rows["source"].astype(str).to_numpy(), "judged": judged,
                          "missing": judged & (rows["quality"].astype(str) == "missing").to_numpy(),
                          "future": ~ended, "before": before})
    out = frame.groupby("source", sort=True).agg(judged_intervals=("judged", "sum"),
                                                 missing_intervals=("missing", "sum"),
                                                 future_intervals=("future", "sum"),
                                                 not_collected_intervals=("before", "sum"))
    if not_collected is None:
        out = out.drop(columns=["not_collected_intervals"])
    out = out.astype("int64").reset_index()
    pct = 100.0 * out["missing_intervals"] / out["judged_intervals"].where(out["judged_intervals"] > 0)
    out["gap_pct"] = pd.Series([None if np.isnan(v) else round(float(v), 3) for v in pct], dtype=object)  # None stays None
    return out


def ended_gap_runs(review: pd.DataFrame, rows: pd.DataFrame, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """Review items with each gap run cut to its intervals that have ended by as_of (runs wholly in
    the future dropped); other items unchanged. rows: the day's canonical rows (each series' length)."""
    if as_of is None or review.empty or not (review["issue"] == "gap").any():
        return review
    as_of = pd.Timestamp(as_of).tz_convert("UTC")
    lengths = (pd.DataFrame({k: rows[k].astype(str).to_numpy() for k in SERIES_KEYS})
               .assign(interval_s=rows["interval_s"].to_numpy(np.int64)).drop_duplicates(SERIES_KEYS))
    keyed = review.reset_index(drop=True)
    step_s = (keyed[SERIES_KEYS].astype(str).merge(lengths, on=SERIES_KEYS, how="left")["interval_s"]
              .fillna(0).to_numpy(np.int64))
    gap = (keyed["issue"] == "gap").to_numpy() & (step_s > 0)
    first = pd.to_datetime(keyed["first_interval"], utc=True)
    elapsed_s = (as_of - first).dt.total_seconds().to_numpy()
    ended_n = np.clip(np.floor_divide(elapsed_s, np.where(step_s > 0, step_s, 1)), 0, None).astype(np.int64)
    n = np.where(gap, np.minimum(ended_n, keyed["n_intervals"].to_numpy(np.int64)), keyed["n_intervals"].to_numpy(np.int64))
    out = keyed.assign(n_intervals=n)
    cut = gap & (n > 0)
    last = first + pd.to_timedelta(np.where(cut, (n - 1) * step_s, 0), unit="s")
    out.loc[cut, "last_interval"] = last[cut].to_numpy()
    return out[~gap | (n > 0)].reset_index(drop=True)


def collected_gap_runs(review: pd.DataFrame, rows: pd.DataFrame, not_collected: np.ndarray) -> pd.DataFrame:
    """Review items with each gap run cut to the intervals after its device's collection began.

    not_collected: per row of `rows` (daily.not_collected), missing before the platform first
    polled a snapshot-only device; those are not gaps an operator can fix. They are the missing
    rows before a time, so in a run of missing intervals they are its head: the run starts after
    them, and a run wholly before collection is dropped. Other items are unchanged.
    """
    if review.empty or not np.any(not_collected) or not (review["issue"] == "gap").any():
        return review
    sel = np.asarray(not_collected, dtype=bool)
    before = pd.DataFrame({k: rows[k].astype(str).to_numpy()[sel] for k in SERIES_KEYS})
    before["until"] = pd.to_datetime(rows["interval_start"], utc=True).to_numpy()[sel]
    before["step_s"] = rows["interval_s"].to_numpy(np.int64)[sel]
    until = before.groupby(SERIES_KEYS, as_index=False).agg(until=("until", "max"), step_s=("step_s", "first"))
    keyed = review.reset_index(drop=True)
    found = keyed[SERIES_KEYS].astype(str).merge(until, on=SERIES_KEYS, how="left")
    first = pd.to_datetime(keyed["first_interval"], utc=True)
    last_before = pd.to_datetime(found["until"], utc=True)
    step_s = found["step_s"].fillna(0).to_numpy(np.int64)
    gap = (keyed["issue"] == "gap").to_numpy() & last_before.notna().to_numpy() & (step_s > 0)
    gap &= (first <= last_before).fillna(False).to_numpy(dtype=bool)
    skipped = np.where(gap, ((last_before - first).dt.total_seconds().fillna(0).to_numpy() // np.maximum(step_s, 1))
                       + 1, 0).astype(np.int64)
    n = keyed["n_intervals"].to_numpy(np.int64) - skipped
    out = keyed.assign(n_intervals=n)
    moved = gap & (n > 0)
    out.loc[moved, "first_interval"] = (first + pd.to_timedelta(skipped * step_s, unit="s"))[moved].to_numpy()
    return out[~gap | (n > 0)].reset_index(drop=True)


def review_items(flagged: pd.DataFrame) -> pd.DataFrame:
    """One row per run of consecutive missing or suspect intervals in a series."""
    columns = [*SERIES_KEYS, "issue", "first_interval", "last_interval", "n_intervals"]
    issue = np.where(flagged["quality"] == "missing", "gap",
                     np.where(flagged["quality"] == "suspect", "suspect_" + flagged["flag"].fillna("value").astype(str), ""))
    frame = flagged.assign(issue=issue).sort_values(SERIES_KEYS + ["interval_start"])
    frame = frame[frame["issue"] != ""]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    step = pd.to_timedelta(frame["interval_s"], unit="s")
    new_run = ((frame[SERIES_KEYS + ["issue"]] != frame[SERIES_KEYS + ["issue"]].shift()).any(axis=1)
               | (frame["interval_start"] != frame["interval_start"].shift() + step.shift()))
    frame = frame.assign(run=new_run.cumsum())
    items = frame.groupby("run").agg(
        site_id=("site_id", "first"), device_id=("device_id", "first"), source=("source", "first"),
        channel=("channel", "first"), issue=("issue", "first"), first_interval=("interval_start", "min"),
        last_interval=("interval_start", "max"), n_intervals=("interval_start", "size"))
    return items[columns].reset_index(drop=True)


OTHER_LENGTH = "other_interval_length"


def other_length_items(reports: pd.DataFrame) -> pd.DataFrame:
    """Review rows for reports at a length other than their series' (complete_grid places none of
    them), one per series: the first and last such interval and how many distinct ones.

    reports: SERIES_KEYS + interval_start of those reports, in the day.
    """
    columns = [*SERIES_KEYS, "issue", "first_interval", "last_interval", "n_intervals"]
    if reports.empty:
        return pd.DataFrame(columns=columns)
    items = reports.groupby(SERIES_KEYS, as_index=False).agg(
        first_interval=("interval_start", "min"), last_interval=("interval_start", "max"),
        n_intervals=("interval_start", "nunique"))
    return items.assign(issue=OTHER_LENGTH)[columns]


def other_length_reports(rows: pd.DataFrame, full: pd.DataFrame, *, day_start: pd.Timestamp,
                         day_end: pd.Timestamp) -> pd.DataFrame:
    """The day's reports (canonical rows) whose interval_s differs from their series' in `full`."""
    rows = rows[(rows["interval_start"] >= day_start) & (rows["interval_start"] < day_end)]
    series = full.drop_duplicates(SERIES_KEYS)[SERIES_KEYS + ["interval_s"]].rename(columns={"interval_s": "_series_s"})
    both = rows.merge(series, on=SERIES_KEYS)
    return both.loc[both["interval_s"] != both["_series_s"], SERIES_KEYS + ["interval_start"]]


def divergence(ami: pd.DataFrame, inverter: pd.DataFrame) -> pd.DataFrame:
    """Per site: AMI grid energy against the vendor-reported grid energy over the intervals both have.

    Both frames: canonical grid_kwh rows. Vendor rows are summed to the AMI interval first.
    Returns site_id, ami_kwh, inverter_kwh, abs_diff_kwh, rel_diff (|diff| / sum |ami|), n_intervals.
    """
    columns = ["site_id", "ami_kwh", "inverter_kwh", "abs_diff_kwh", "rel_diff", "n_intervals"]
    ami = ami[(ami["channel"] == "grid_kwh") & ami["value"].notna()]
    inv = inverter[(inverter["channel"] == "grid_kwh") & inverter["value"].notna()]
    if ami.empty or inv.empty:
        return pd.DataFrame(columns=columns)
    step_s = int(ami["interval_s"].max())
    inv = inv.assign(bucket=inv["interval_start"].dt.floor(f"{step_s}s"))
    full = inv.groupby(["site_id", "bucket"]).agg(inverter_kwh=("value", "sum"), covered_s=("interval_s", "sum"))
    full = full[full["covered_s"] >= step_s].reset_index().rename(columns={"bucket": "interval_start"})
    both = ami.groupby(["site_id", "interval_start"], as_index=False)["value"].sum().merge(full, on=["site_id", "interval_start"])
    if both.empty:
        return pd.DataFrame(columns=columns)
    per_site = both.groupby("site_id").agg(ami_kwh=("value", "sum"), inverter_kwh=("inverter_kwh", "sum"),
                                           abs_ami=("value", lambda v: v.abs().sum()), n_intervals=("value", "size"))
    per_site["abs_diff_kwh"] = (per_site["ami_kwh"] - per_site["inverter_kwh"]).abs()
    per_site["rel_diff"] = per_site["abs_diff_kwh"] / per_site["abs_ami"].where(per_site["abs_ami"] > 0)
    return per_site.reset_index()[columns]
