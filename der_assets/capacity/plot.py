"""The fleet's deliverable-kW distribution as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

from der_assets.atomic import write_atomic
from der_assets.figures import figure_png, pyplot


def plot_distribution(estimate, path: str | Path) -> Path:
    """`distribution_png` written to `path`, atomically."""
    png = distribution_png(estimate)
    return write_atomic(path, lambda tmp: tmp.write_bytes(png))


def distribution_png(estimate) -> bytes:
    """Histogram of daily fleet totals with P50, P90 and the recommended commitment marked, kW (800 x 450 px)."""
    plt = pyplot()
    s = estimate.summary
    daily = estimate.daily["fleet_kw"].to_numpy()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    ax.hist(daily, bins=min(40, max(5, daily.size // 3)), color="#4c78a8", edgecolor="white")
    for value, label, color in ((s["deliverable_p50_kw"], "P50", "#54a24b"), (s["deliverable_p90_kw"], "P90", "#e45756"),
                                (s["recommended_commit_kw"], "recommended", "#333333")):
        ax.axvline(value, color=color, linestyle="--", linewidth=1.5, label=f"{label} {value:,.0f} kW")
    ax.set_xlabel("fleet deliverable on a sample day, kW")
    ax.set_ylabel("days")
    ax.set_title(f"{s['iso']} {s['delivery_year']} {s['accreditation_class']}: {s['n_sites']} sites, "
                 f"{s['n_days']} days, nameplate {s['nameplate_kw']:,.0f} kW", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return figure_png(fig)
