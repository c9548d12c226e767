"""The fleet-day panel: what the whole fleet did over one day, and where the telemetry has holes.

PV, load, battery and grid power are summed over the fleet on a 15-minute grid; the batteries' state of charge
is shown as the fleet mean with a min-max band; intervals where too many devices have no usable value are
shaded. A value nobody measured stays missing: an interval no device reported is a break in the line, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from der_assets.figures import figure_png, pyplot

STEP_S = 900  # the panel's grid: the ISO settlement interval, and the coarsest vendor interval
POWER_CHANNELS = {"pv_kwh": "pv_kw", "load_kwh": "load_kw", "battery_kwh": "battery_kw", "grid_kwh": "grid_kw"}
USABLE = ("measured", "estimated")  # suspect values (spikes above nameplate, stuck registers) are not drawn
GAP_SHARE = 0.05  # shade an interval when more than 5 % of the fleet's devices lack a usable value in it
SERIES_COLUMNS = ["interval_start", *POWER_CHANNELS.values(), "soc_mean_pct", "soc_min_pct", "soc_max_pct",
                  "devices", "devices_missing", "missing_pct", "judged", "shaded"]


@dataclass(frozen=True)
class FleetDayPlot:
    """A rendered fleet-day panel and the numbers drawn in it.

    Attributes
    ----------
    png : bytes
        The panel as a PNG image.
    series : pandas.DataFrame
        One row per 15-minute interval (columns ``SERIES_COLUMNS``): fleet kW per channel (NaN where no device
        reported the channel), SoC mean/min/max in %, devices expected and missing, and whether it is shaded.
    gaps : pandas.DataFrame
        The shaded spans, ``start`` and ``end`` (UTC, end exclusive) and ``max_missing_pct``.
    timezone : str
        The IANA zone of the time axis.
    """

    png: bytes
    series: pd.DataFrame
    gaps: pd.DataFrame
    timezone: str


def fleet_timezone(registry: pd.DataFrame) -> str:
    """The fleet's main time zone: the one most sites are in (ties: alphabetical), UTC for an empty registry."""
    if registry.empty or "timezone" not in registry:
        return "UTC"
    counts = registry.drop_duplicates("site_id")["timezone"].dropna().astype(str).value_counts()
    if counts.empty:
        return "UTC"
    return str(sorted(counts[counts == counts.max()].index)[0])


def _latest_revision(rows: pd.DataFrame) -> pd.DataFrame:
    if "revision" not in rows or not (rows["revision"] > 0).any():
        return rows
    return rows.sort_values("revision", kind="stable").drop_duplicates(
        ["device_id", "source", "channel", "interval_start"], keep="last")


def fleet_day_series(rows: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp | None = None, *,
                     until: pd.Timestamp | None = None, gap_share: float = GAP_SHARE) -> pd.DataFrame:
    """Fleet totals on a 15-minute UTC grid over [start, end), from canonical interval rows.

    Parameters
    ----------
    rows : pandas.DataFrame
        Canonical rows (DESIGN.md "Canonical interval telemetry"); the latest revision of each value is used.
    start, end : pandas.Timestamp
        UTC bounds; `end` defaults to one day (24 h) after `start`. A local calendar day may be passed as its
        UTC bounds (23 or 25 hours on a DST change).
    until : pandas.Timestamp, optional
        "Now": an interval that ends after this instant has not ended yet and is not judged as a gap.
    gap_share : float
        Shade an interval when more than this share of the devices lack a usable value in it.

    Returns
    -------
    pandas.DataFrame
        Columns ``SERIES_COLUMNS``. kW = kWh / interval hours, averaged over a device's sub-intervals in a
        15-minute interval, then summed over devices. A device is *missing* in an interval when any of its
        channels has fewer usable (measured or estimated) values there than its interval length asks for
        (a missing, suspect or absent row); devices are those with any row in the window.
    """
    start = pd.Timestamp(start).tz_convert("UTC")
    end = start + pd.Timedelta(days=1) if end is None else pd.Timestamp(end).tz_convert("UTC")
    grid = pd.date_range(start, end, freq=pd.Timedelta(seconds=STEP_S), inclusive="left")
    nb = len(grid)
    r = rows[(rows["interval_start"] >= start) & (rows["interval_start"] < end)]
    r = _latest_revision(r)
    interval_s = r["interval_s"].to_numpy(dtype=np.int64)
    per = np.maximum(1, interval_s // STEP_S)  # a row longer than the grid covers several of its intervals
    idx = np.repeat(np.arange(len(r)), per)
    offset = np.arange(len(idx)) - np.repeat(np.cumsum(per) - per, per)
    t_ns = r["interval_start"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    b = (t_ns[idx] - start.value) // (STEP_S * 10**9) + offset
    keep = b < nb
    idx, b = idx[keep], b[keep]
    device, devices = pd.factorize(r["device_id"].astype(str).to_numpy()[idx])
    channel = r["channel"].astype(str).to_numpy()[idx]
    value = r["value"].to_numpy(dtype=float)[idx]
    step_s = np.minimum(interval_s[idx], STEP_S)
    usable = ~np.isnan(value) & r["quality"].astype(str).isin(USABLE).to_numpy()[idx]
    nd = len(devices)

    # a series (device, channel) needs one usable value per sub-interval of its own length
    channel_code, channels = pd.factorize(channel)
    series_id, series_keys = pd.factorize(device.astype(np.int64) * (len(channels) + 1) + channel_code)
    ns = len(series_keys)
    need = pd.Series(STEP_S // step_s).groupby(series_id).max().reindex(range(ns), fill_value=1).to_numpy()
    have = np.bincount(series_id[usable] * nb + b[usable], minlength=ns * nb).reshape(ns, nb)
    short = pd.DataFrame(have < need[:, None])
    owner = np.asarray(series_keys) // (len(channels) + 1)
    missing = short.groupby(owner).any().sum(axis=0).reindex(range(nb), fill_value=0).to_numpy()

    out = pd.DataFrame({"interval_start": grid})
    good = pd.DataFrame({"d": device, "b": b, "c": channel, "t": t_ns[idx], "v": value,
                         "h": interval_s[idx] / 3600.0})[usable]
    power = good[good["c"].isin(list(POWER_CHANNELS))]
    kw = power["v"] / power["h"]  # an hourly row's energy is spread evenly over its four 15-minute intervals
    by_device = kw.groupby([power["c"], power["d"], power["b"]]).mean()
    fleet = by_device.groupby(level=[0, 2]).sum().unstack(0)
    for ch, name in POWER_CHANNELS.items():
        out[name] = fleet[ch].reindex(range(nb)).to_numpy() if ch in fleet else np.nan
    soc = good[good["c"] == "soc_pct"].sort_values("t", kind="stable")
    last = soc.groupby(["d", "b"])["v"].last()  # SoC at the end of the 15-minute interval
    stats = last.groupby(level="b").agg(["mean", "min", "max"]).reindex(range(nb))
    out["soc_mean_pct"], out["soc_min_pct"], out["soc_max_pct"] = (stats[c].to_numpy() for c in ("mean", "min", "max"))
    out["devices"] = nd
    out["devices_missing"] = missing
    out["missing_pct"] = 100.0 * missing / nd if nd else 100.0
    step = pd.Timedelta(seconds=STEP_S)
    out["judged"] = True if until is None else (grid + step <= pd.Timestamp(until).tz_convert("UTC"))
    out["shaded"] = out["judged"] & (out["missing_pct"] > 100.0 * gap_share)
    return out[SERIES_COLUMNS]


def gap_spans(series: pd.DataFrame) -> pd.DataFrame:
    """Consecutive shaded intervals of `fleet_day_series` merged into [start, end) spans, UTC."""
    shaded = series["shaded"].to_numpy(dtype=bool)
    columns = ["start", "end", "max_missing_pct"]
    if not shaded.any():
        return pd.DataFrame({"start": pd.Series(dtype="datetime64[ns, UTC]"),
                             "end": pd.Series(dtype="datetime64[ns, UTC]"), "max_missing_pct": pd.Series(dtype=float)})
    edges = np.diff(np.concatenate([[0], shaded.astype(np.int8), [0]]))
    first, stop = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    starts = pd.DatetimeIndex(series["interval_start"])
    step = pd.Timedelta(seconds=STEP_S)
    pct = series["missing_pct"].to_numpy(dtype=float)
    return pd.DataFrame({"start": starts[first], "end": starts[stop - 1] + step,
                         "max_missing_pct": [float(pct[a:z].max()) for a, z in zip(first, stop, strict=True)]},
                        columns=columns)


def plot_fleet_day(rows: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp | None = None, *,
                   timezone: str = "UTC", until: pd.Timestamp | None = None, gap_share: float = GAP_SHARE,
                   sites: int | None = None) -> FleetDayPlot:
    """Draw the fleet-day panel: fleet kW per channel above, battery SoC below, gaps shaded on both.

    Parameters
    ----------
    rows, start, end, until, gap_share
        As for `fleet_day_series`.
    timezone : str
        IANA zone of the time axis (the fleet's main zone, see `fleet_timezone`); the title gives the UTC span.
    sites : int, optional
        Number of sites, for the title (default: the distinct site_id in `rows`).

    Returns
    -------
    FleetDayPlot
        The PNG (1100 x 600 px), the series drawn and the shaded spans.

    Notes
    -----
    An interval is shaded when more than `gap_share` of the devices lack a usable value in it (see
    `fleet_day_series`); the lines there show the devices that did report. An interval no device reported is
    NaN and the line breaks: a missing value is never drawn as 0. In a shaded interval the fleet lines are
    dotted: they sum only the devices that reported.
    """
    import matplotlib.dates as mdates
    from zoneinfo import ZoneInfo

    plt = pyplot()
    series = fleet_day_series(rows, start, end, until=until, gap_share=gap_share)
    gaps = gap_spans(series)
    tz = ZoneInfo(timezone)
    x = series["interval_start"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy() \
        + np.timedelta64(STEP_S // 2, "s")  # each value drawn at the middle of its interval
    x = mdates.date2num(x)
    fig, (ax_kw, ax_soc) = plt.subplots(2, 1, figsize=(11, 6), sharex=True, height_ratios=[2.2, 1])
    styles = {"pv_kw": ("PV", "#f2a900"), "load_kw": ("load", "#4c78a8"), "battery_kw": ("battery (+ discharge)",
              "#54a24b"), "grid_kw": ("grid (+ import)", "#7f7f7f")}
    shaded = series["shaded"].to_numpy(dtype=bool)
    for name, (label, color) in styles.items():
        y = series[name].to_numpy(dtype=float)
        ax_kw.plot(x, y, color=color, linewidth=1.0, linestyle=":")  # shows through only where shaded: partial
        ax_kw.plot(x, np.where(shaded, np.nan, y), label=label, color=color, linewidth=1.4)
    ax_kw.axhline(0, color="#333333", linewidth=0.6)
    ax_kw.set_ylabel("fleet kW")
    mean = series["soc_mean_pct"].to_numpy(dtype=float)
    ax_soc.fill_between(x, series["soc_min_pct"].to_numpy(dtype=float), series["soc_max_pct"].to_numpy(dtype=float),
                        color="#54a24b", alpha=0.25, linewidth=0, label="SoC min-max")
    ax_soc.plot(x, mean, color="#2d6a27", linewidth=1.4, label="SoC mean")
    ax_soc.set_ylim(0, 100)
    ax_soc.set_ylabel("battery SoC %")
    for span in gaps.itertuples():
        for ax in (ax_kw, ax_soc):
            ax.axvspan(mdates.date2num(span.start.tz_convert("UTC").tz_localize(None)),
                       mdates.date2num(span.end.tz_convert("UTC").tz_localize(None)),
                       color="#e45756", alpha=0.15, linewidth=0)
    if len(gaps):
        ax_kw.plot([], [], color="#e45756", alpha=0.3, linewidth=8,
                   label=f"> {gap_share:.0%} of devices missing")
    ax_kw.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax_soc.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    span_h = (series["interval_start"].iloc[-1] - series["interval_start"].iloc[0]).total_seconds() / 3600 + 0.25 \
        if len(series) else 0
    ax_soc.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3 if span_h <= 26 else 6), tz=tz))
    ax_soc.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax_soc.set_xlim(x[0] - (x[1] - x[0]) / 2, x[-1] + (x[1] - x[0]) / 2) if len(x) > 1 else None
    first = series["interval_start"].iloc[0] if len(series) else pd.Timestamp(start)
    local0 = first.tz_convert(timezone)
    ax_soc.set_xlabel(f"local time, {timezone} (from {local0:%Y-%m-%d %H:%M %Z})")
    n_sites = sites if sites is not None else int(rows["site_id"].nunique()) if len(rows) else 0
    last_end = first + pd.Timedelta(hours=span_h)
    ax_kw.set_title(f"Fleet {first:%Y-%m-%d %H:%M}-{last_end:%Y-%m-%d %H:%M} UTC: {n_sites} sites, "
                    f"{int(series['devices'].iloc[0]) if len(series) else 0} devices, "
                    f"{int(series['shaded'].sum())} of {len(series)} intervals shaded", fontsize=10)
    fig.subplots_adjust(left=0.09, right=0.80, top=0.94, bottom=0.10, hspace=0.08)  # fixed: tight_layout costs ~0.3 s
    return FleetDayPlot(png=figure_png(fig), series=series, gaps=gaps, timezone=timezone)
