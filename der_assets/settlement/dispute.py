"""Dispute packages: for each discrepancy, the evidence an ISO settlement desk can check by hand.

`write_packages(reconciliation, out_dir)` writes, all or nothing (a temporary sibling folder, renamed
into place at the end; a run that fails leaves the previous `out_dir` untouched):
- `discrepancies.csv`: the contract's columns (statement_id, resource_id, event_id, interval_start,
  ours_kwh, iso_kwh, delta_kwh, usd_at_stake, class, evidence);
- `disputes/<nnnn-class-resource-event-interval>/evidence.csv`: one `statement_line` record (the ISO's
  figures against ours, the class, the reason, the method and its unverified parameters), then one
  `meter_interval` record per site meter interval on the event's local day(s): grid_kwh as metered,
  load_kw, our baseline_kw and reduction_kw where the method computes them, in_event and in_line;
- `disputes/<...>/report.html`: a self-contained page (no external files; plots as base64 PNG made
  with matplotlib's Agg backend), every text escaped.
Times are UTC in the CSVs; the report also shows the event's local time (local only at the edges).
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from der_assets.errors import UserError
from der_assets.settlement.reconcile import Reconciliation

EVIDENCE_COLUMNS = ["record", "statement_id", "resource_id", "event_id", "site_id", "meter_id", "interval_start",
                    "interval_s", "grid_kwh", "load_kw", "baseline_kw", "reduction_kw", "in_event", "in_line",
                    "class", "iso_baseline_kw", "iso_load_kw", "iso_kwh", "iso_rate_usd_per_mwh", "iso_amount_usd",
                    "ours_baseline_kw", "ours_load_kw", "ours_kwh", "event_rate_usd_per_mwh", "ours_usd",
                    "usd_at_stake", "reason"]


def _utc_text(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_days(event) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The event's local calendar day(s), as a UTC [start, end)."""
    local_start = event.start.tz_convert(event.timezone).normalize()
    local_end = (event.end - pd.Timedelta(seconds=1)).tz_convert(event.timezone).normalize() + pd.Timedelta(days=1)
    return local_start.tz_convert("UTC"), local_end.tz_convert("UTC")


def _with_baseline(rows: pd.DataFrame, base: pd.DataFrame) -> pd.DataFrame:
    """Each meter row with the baseline row (often hourly) that covers it; NaN outside the event."""
    rows = rows.sort_values("interval_start")
    base = base[["meter_id", "interval_start", "interval_s", "baseline_kw", "reduction_kw"]].rename(
        columns={"interval_start": "base_start", "interval_s": "base_s"}).sort_values("base_start")
    if base.empty or rows.empty:
        return rows.assign(baseline_kw=np.nan, reduction_kw=np.nan)
    out = pd.merge_asof(rows, base, left_on="interval_start", right_on="base_start", by="meter_id", direction="backward")
    inside = out["interval_start"] < out["base_start"] + pd.to_timedelta(out["base_s"].fillna(0), unit="s")
    out.loc[~inside, ["baseline_kw", "reduction_kw"]] = np.nan
    # a meter row's own reduction: the covering baseline minus this row's metered load
    out["reduction_kw"] = (out["baseline_kw"] - out["grid_kwh"] * 3600.0 / out["interval_s"]).where(inside)
    return out.drop(columns=["base_start", "base_s"]).sort_values(["meter_id", "interval_start"])


def evidence_frame(rec: Reconciliation, line: dict) -> pd.DataFrame:
    """The evidence records for one discrepancy (see the module docstring)."""
    event = rec.events[line["event_id"]]
    sites = rec.registry_sites
    counted = sites[(sites["resource_id"] == line["resource_id"])]
    day_start, day_end = _event_days(event)
    meters = counted.dropna(subset=["meter_id"])
    rows = rec.meter[rec.meter["meter_id"].isin(set(meters["meter_id"])) & (rec.meter["interval_start"] >= day_start)
                     & (rec.meter["interval_start"] < day_end)]
    base = rec.performance.baselines
    base = base[(base["event_id"] == event.event_id) & base["meter_id"].isin(set(meters["meter_id"]))]
    series = _with_baseline(rows, base)
    series = series.merge(meters[["meter_id", "site_id"]], on="meter_id", how="left")
    end = series["interval_start"] + pd.to_timedelta(series["interval_s"], unit="s")
    line_start = pd.Timestamp(line["interval_start"])
    line_end = line_start + pd.Timedelta(seconds=int(line["interval_s"]))
    series = series.assign(record="meter_interval", resource_id=line["resource_id"], event_id=event.event_id,
                           load_kw=series["grid_kwh"] * 3600.0 / series["interval_s"],
                           in_event=(series["interval_start"] < event.end) & (end > event.start),
                           in_line=(series["interval_start"] < line_end) & (end > line_start))
    head = {c: line.get(c) for c in EVIDENCE_COLUMNS if c in line}
    head.update(record="statement_line", iso_rate_usd_per_mwh=line.get("rate_usd_per_mwh"),
                iso_amount_usd=line.get("iso_amount_usd"), site_id=line.get("missing_sites") or "")
    out = pd.concat([pd.DataFrame([head]), series], ignore_index=True).reindex(columns=EVIDENCE_COLUMNS)
    out["interval_start"] = _utc_text(out["interval_start"])
    return out


def _plot_png(rec: Reconciliation, line: dict, evidence: pd.DataFrame) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    event = rec.events[line["event_id"]]
    series = evidence[evidence["record"] == "meter_interval"].copy()
    series["t"] = pd.to_datetime(series["interval_start"], utc=True).dt.tz_convert(event.timezone)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), gridspec_kw={"height_ratios": [3, 1.4]})
    total = series.groupby("t")["load_kw"].sum(min_count=series["site_id"].nunique() or 1)
    top.plot(total.index, total.to_numpy(), color="#1f4e79", lw=1.4, label="metered load (resource sum), kW")
    base = series.dropna(subset=["baseline_kw"]).groupby("t")["baseline_kw"].sum()
    if len(base):
        top.step(base.index, base.to_numpy(), where="post", color="#c55a11", lw=1.6, label="our baseline, kW")
    for site, group in series.groupby("site_id"):
        if series["site_id"].nunique() <= 8:
            top.plot(group["t"], group["load_kw"], lw=0.6, alpha=0.5, label=f"site {site}")
    tz = event.timezone
    top.axvspan(event.start.tz_convert(tz), event.end.tz_convert(tz), color="#ffd966", alpha=0.35, label="event window")
    start = pd.Timestamp(line["interval_start"]).tz_convert(tz)
    top.axvspan(start, start + pd.Timedelta(seconds=int(line["interval_s"])), color="#ff0000", alpha=0.15,
                label="this line's interval")
    iso_base = line.get("iso_baseline_kw")
    if iso_base is not None and np.isfinite(iso_base):
        top.hlines(iso_base, start, start + pd.Timedelta(seconds=int(line["interval_s"])), colors="#7f7f7f",
                   linestyles="dashed", lw=1.6, label="ISO baseline (this line), kW")
    top.set_ylabel("kW")
    top.set_title(f"{line['resource_id']} / {line['event_id']} ({tz})", fontsize=10)
    top.legend(fontsize=7, loc="upper left")
    labels = ["baseline kW", "load kW", "reduction kWh"]
    iso = [line.get("iso_baseline_kw"), line.get("iso_load_kw"), line.get("iso_kwh")]
    ours = [line.get("ours_baseline_kw"), line.get("ours_load_kw"), line.get("ours_kwh")]
    x = np.arange(len(labels))
    to_num = lambda v: np.nan if v is None else float(v)  # noqa: E731
    bottom.bar(x - 0.2, [to_num(v) for v in iso], 0.4, label="ISO", color="#7f7f7f")
    bottom.bar(x + 0.2, [to_num(v) for v in ours], 0.4, label="ours", color="#2e75b6")
    bottom.set_xticks(x, labels)
    bottom.legend(fontsize=7)
    bottom.set_title("ISO figure vs ours for this line", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return str(value)


def report_html(rec: Reconciliation, line: dict, evidence: pd.DataFrame) -> str:
    """One self-contained page: the line, ours against the ISO's, why, and the plot."""
    event = rec.events[line["event_id"]]
    esc = lambda v: html.escape(_cell(v), quote=True)  # noqa: E731
    local = pd.Timestamp(line["interval_start"]).tz_convert(event.timezone)
    figures = [("baseline kW", line.get("iso_baseline_kw"), line.get("ours_baseline_kw")),
               ("load kW", line.get("iso_load_kw"), line.get("ours_load_kw")),
               ("reduction kWh", line.get("iso_kwh"), line.get("ours_kwh")),
               ("rate $/MWh", line.get("rate_usd_per_mwh"), line.get("event_rate_usd_per_mwh")),
               ("amount USD", line.get("iso_amount_usd"), line.get("ours_usd"))]
    rows = "".join(f"<tr><th>{html.escape(n)}</th><td>{esc(a)}</td><td>{esc(b)}</td></tr>" for n, a, b in figures)
    facts = [("class", line["class"]), ("also applies", line.get("also") or "none"), ("reason", line["reason"]),
             ("statement", line.get("statement_id")), ("resource", line["resource_id"]), ("event", line["event_id"]),
             ("method", event.method), ("interval (UTC)", pd.Timestamp(line["interval_start"]).isoformat()),
             ("interval (local)", local.isoformat()), ("interval_s", line["interval_s"]),
             ("sites counted", line.get("n_sites")), ("sites missing", line.get("missing_sites") or "none"),
             ("usd at stake (ours - ISO)", line.get("usd_at_stake"))]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    notes = "".join(f"<li>{html.escape(w)}</li>" for w in rec.warnings) or "<li>none</li>"
    png = _plot_png(rec, line, evidence)
    title = html.escape(f"Dispute: {line['class']} {line['resource_id']} {line['event_id']} {line['interval_start']}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{border:1px solid #bbb;padding:.25em .6em;text-align:left}}th{{background:#f2f2f2}}</style></head>
<body><h1>{title}</h1>
<table>{fact_rows}</table>
<h2>The ISO's figures against ours</h2>
<table><tr><th></th><th>ISO</th><th>ours (from the meters)</th></tr>{rows}</table>
<h2>Meter series, baseline and event window</h2>
<img alt="meter series, baseline and event window" src="data:image/png;base64,{png}">
<h2>Notes (unverified parameters and warnings)</h2><ul>{notes}</ul>
<p>Evidence rows: evidence.csv in this folder (UTC times).</p>
</body></html>
"""


def write_packages(rec: Reconciliation, out_dir: str | Path) -> Path:
    """discrepancies.csv and one package per discrepancy, written to a temporary folder and renamed into place."""
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot be written ({exc.strerror})") from None
    try:
        table = rec.discrepancies.copy()
        table["interval_start"] = _utc_text(table["interval_start"])
        table.to_csv(tmp / "discrepancies.csv", index=False, lineterminator="\n")
        lines = rec.lines[rec.lines["class"] != "matched"]
        for line in lines.to_dict("records"):
            folder = tmp / Path(line["evidence"]).parent
            folder.mkdir(parents=True)
            evidence = evidence_frame(rec, line)
            evidence.to_csv(folder / "evidence.csv", index=False, lineterminator="\n")
            (folder / "report.html").write_text(report_html(rec, line, evidence), encoding="utf-8")
        old = None
        if out_dir.exists():
            old = parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UserError(f"{out_dir}: cannot be written ({exc.strerror})") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
