"""Dispatch pictures: instructed, planned and delivered kW per interval, and the commanded batteries'
SoC band (min, median, max per interval), as one PNG (matplotlib, Agg backend: no display needed).

matplotlib is what the capacity plot already uses; a static PNG goes into Dagster metadata as an
inline Markdown image, where an interactive chart library would need a page of its own.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def soc_bands(soc_rows: pd.DataFrame, batteries: list[str]) -> pd.DataFrame:
    """Per interval_end (soc_pct is the state of charge at an interval's end): soc_min_pct, soc_median_pct,
    soc_max_pct and batteries_reporting across the given batteries' soc_pct values (a battery with no
    value at a time is left out, not counted as 0)."""
    rows = soc_rows[(soc_rows["channel"] == "soc_pct") & soc_rows["device_id"].isin(batteries)
                    & soc_rows["value"].notna()]
    columns = ["interval_end", "soc_min_pct", "soc_median_pct", "soc_max_pct", "batteries_reporting"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    ends = pd.to_datetime(rows["interval_start"], utc=True) + pd.to_timedelta(rows["interval_s"], unit="s")
    grouped = rows.assign(interval_end=ends).groupby("interval_end")["value"]
    out = pd.DataFrame({"soc_min_pct": grouped.min(), "soc_median_pct": grouped.median(),
                        "soc_max_pct": grouped.max(), "batteries_reporting": grouped.count()})
    return out.reset_index()[columns]


def plot_dispatch(kw: pd.DataFrame, soc: pd.DataFrame | None = None, *, title: str = "") -> bytes:
    """PNG bytes of the event.

    kw: interval_start, interval_minutes-long steps with instructed_kw and any of planned_kw and
    delivered_kw (NaN where not measured: drawn as a gap, never as 0).
    soc: soc_bands() output, or None (the lower panel is then left out).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if soc is not None and not soc.empty else 1
    fig, axes = plt.subplots(panels, 1, figsize=(9, 3.2 * panels + 0.6), dpi=100, sharex=True, squeeze=False)
    ax = axes[0][0]
    starts = pd.to_datetime(kw["interval_start"], utc=True)
    step = (starts.iloc[1] - starts.iloc[0]) if len(starts) > 1 else pd.Timedelta(minutes=5)
    edges = list(starts) + [starts.iloc[-1] + step] if len(starts) else []
    x = np.array([t.tz_convert(None).to_datetime64() for t in edges])
    styles = {"instructed_kw": ("instructed", "#333333", "--"), "planned_kw": ("planned", "#4c78a8", "-"),
              "delivered_kw": ("delivered (measured)", "#54a24b", "-")}
    for column, (label, color, line) in styles.items():
        if column in kw.columns and len(x):
            y = kw[column].to_numpy(dtype=float)
            ax.stairs(y, x, label=label, color=color, linestyle=line, linewidth=2 if column != "instructed_kw" else 1.5,
                      baseline=None)
    values = kw[[c for c in styles if c in kw.columns]].to_numpy(dtype=float)
    low = min(0.0, float(np.nanmin(values, initial=0.0)))
    high = float(np.nanmax(values, initial=0.0))
    ax.set_ylim(low, high * 1.1 if high > 0 else 1.0)  # from 0 (or below, if it charged): a shortfall looks its size
    ax.set_ylabel("fleet battery output, kW")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    if panels == 2:
        ax2 = axes[1][0]
        t = np.array([pd.Timestamp(v).tz_convert(None).to_datetime64()
                      for v in pd.to_datetime(soc["interval_end"], utc=True)])
        ax2.fill_between(t, soc["soc_min_pct"].astype(float), soc["soc_max_pct"].astype(float), color="#f58518",
                         alpha=0.25, label="min to max")
        ax2.plot(t, soc["soc_median_pct"].astype(float), color="#f58518", linewidth=2, label="median")
        ax2.set_ylabel("commanded batteries' SoC, %")
        ax2.set_ylim(0, 100)
        ax2.legend(fontsize=8, loc="best")
        ax2.grid(alpha=0.3)
    from matplotlib.dates import DateFormatter

    axes[-1][0].xaxis.set_major_formatter(DateFormatter("%H:%M"))
    first = starts.iloc[0] if len(starts) else None
    axes[-1][0].set_xlabel(f"UTC, {first:%Y-%m-%d}" if first is not None else "UTC")
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
