"""From registry + telemetry (+ optional dispatch history) to the capacity contract's summary.

`estimate_capacity` is the one entry point the CLI and the Dagster layer share.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from der_assets.capacity import accreditation as acc
from der_assets.capacity.availability import LOSS_CATEGORIES, Availability, Window, site_availability
from der_assets.capacity.distribution import by_group, exceedance_quantile
from der_assets.capacity.errors import CapacityInputError
from der_assets.capacity.risk import commit_at_risk_kw, penalty_usd, recommended_commit_kw, revenue_usd

DEFAULT_EFFICIENCY = 0.9  # round trip; the same project default as der_assets.dispatch.fleet_inputs


@dataclass(frozen=True)
class EstimateParams:
    """Everything `der capacity estimate` takes besides its files; None means "from the data files"."""

    iso: str
    delivery_year: str
    accreditation_class: str
    locality: str | None = None
    months: tuple[int, ...] = (6, 7, 8, 9)
    weekdays_only: bool = False
    window_start: dt.time = dt.time(15, 0)
    duration_h: float = 1.0
    efficiency: float = DEFAULT_EFFICIENCY
    commit_kw: float | None = None
    risk: float = 0.9
    capacity_price_usd_mw_day: float | None = None
    penalty_usd_mwh: float | None = None
    event_hours: float | None = None
    class_rating: float | None = None
    bootstrap_samples: int = 1000
    seed: int = 0


@dataclass
class CapacityEstimate:
    """The estimate: `summary` is the contract JSON; the frames back sites.csv, checks and plots."""

    summary: dict
    sites: pd.DataFrame       # site_id, zone, day, deliverable_kw, reason
    daily: pd.DataFrame       # day, fleet_kw
    losses: pd.DataFrame      # category, kw (mean over days), share of nameplate
    by_group: pd.DataFrame    # level, group, n_sites, nameplate_kw, deliverable_p50/p90 (+ _lo/_hi bootstrap)
    warnings: list[str] = field(default_factory=list)
    availability: Availability | None = None


def _round(x: float, nd: int = 3) -> float:
    return float(round(float(x), nd))


def estimate_capacity(registry: pd.DataFrame, telemetry: pd.DataFrame, params: EstimateParams,
                      commands: pd.DataFrame | None = None) -> CapacityEstimate:
    """Deliverable distribution, accreditation and screening risk for one ISO, class and delivery year."""
    _priced_inputs(params)  # a bad flag or a missing rating fails before the telemetry is read
    window = Window(months=params.months, weekdays_only=params.weekdays_only, window_start=params.window_start,
                    duration_h=params.duration_h, efficiency=params.efficiency)
    av = site_availability(registry, telemetry, acc.normalize_iso(params.iso), window, commands)
    return estimate_from_availability(av, params)


def _priced_inputs(params: EstimateParams):
    """The rating, price, penalty rate, event hours and period for the params, with their warnings."""
    iso = acc.normalize_iso(params.iso)
    if not 0.0 < params.risk < 1.0:
        raise CapacityInputError(f"--risk {params.risk:g} is not a share strictly between 0 and 1")
    if params.commit_kw is not None and (params.commit_kw < 0 or not math.isfinite(params.commit_kw)):
        raise CapacityInputError(f"--commit-kw {params.commit_kw:g} must be a finite kW >= 0")
    rating = acc.class_rating(iso, params.delivery_year, params.accreditation_class, params.locality,
                              params.class_rating)
    price = acc.rate(iso, params.delivery_year, "capacity_price", params.capacity_price_usd_mw_day,
                     "--capacity-price-usd-mw-day")
    penalty_rate = acc.rate(iso, params.delivery_year, "penalty_rate", params.penalty_usd_mwh, "--penalty-usd-mwh")
    hours = acc.rate(iso, params.delivery_year, "event_hours", params.event_hours, "--event-hours")
    start, end, period = acc.delivery_period(iso, params.delivery_year)
    days_in_period = (end - start).days + 1

    warnings: list[str] = []
    for number in (rating, price, penalty_rate, hours, period):
        w = number.warning()
        if w:
            warnings.append("unverified input used: " + w)
    warnings += acc.participation_warnings(iso, params.delivery_year, params.accreditation_class, params.duration_h)
    if params.efficiency == DEFAULT_EFFICIENCY:
        warnings.append(f"round-trip efficiency {DEFAULT_EFFICIENCY} is the project default (the registry has none); "
                        "pass --efficiency to use a measured value")

    return iso, rating, price, penalty_rate, hours, days_in_period, warnings


def estimate_from_availability(av: Availability, params: EstimateParams) -> CapacityEstimate:
    """Price site-day availability (computed now, or read back from the warehouse) for the params."""
    iso, rating, price, penalty_rate, hours, days_in_period, warnings = _priced_inputs(params)
    warnings = warnings + list(av.warnings)

    daily_kw = av.deliverable_kw.sum(axis=0)
    n_days = daily_kw.size
    nameplate = float(av.sites["nameplate_kw"].sum())
    p50 = float(exceedance_quantile(daily_kw, 0.5))
    p90 = float(exceedance_quantile(daily_kw, 0.9))
    losses_kw = {c: float(av.losses_kw[c].sum(axis=0).mean()) for c in LOSS_CATEGORIES}

    q = params.commit_kw if params.commit_kw is not None else commit_at_risk_kw(daily_kw, params.risk)
    rec = recommended_commit_kw(daily_kw, rating.value, price.value, days_in_period, penalty_rate.value, hours.value)
    revenue = float(revenue_usd(q, rating.value, price.value, days_in_period))
    penalty = float(penalty_usd(q, daily_kw, penalty_rate.value, hours.value))
    unavailable = int((av.deliverable_kw <= 0).sum())

    summary = {
        "iso": iso,
        "delivery_year": params.delivery_year,
        "accreditation_class": params.accreditation_class,
        "class_rating": rating.value,
        "class_rating_source": f"{rating.source} [{rating.tag}]",
        "class_rating_verified": rating.verified,
        "n_sites": int(len(av.sites)),
        "n_days": int(n_days),
        "nameplate_kw": _round(nameplate),
        "deliverable_p50_kw": _round(p50),
        "deliverable_p90_kw": _round(p90),
        "accredited_p90_kw": _round(p90 * rating.value),
        "unavailable_site_days": unavailable,
        "losses_kw": {c: _round(v) for c, v in losses_kw.items()},
        "commit_kw": _round(q),
        "expected_revenue_usd": _round(revenue, 2),
        "expected_penalty_usd": _round(penalty, 2),
        "recommended_commit_kw": _round(rec),
        "warnings": warnings,
    }
    n_s = len(av.sites)
    sites_frame = pd.DataFrame({
        "site_id": pd.Categorical(np.repeat(av.sites["site_id"].to_numpy(), n_days)),
        "zone": pd.Categorical(np.repeat(av.sites["zone"].to_numpy(), n_days)),
        "day": np.tile(np.array([d.isoformat() for d in av.days], dtype=object), n_s),
        "deliverable_kw": av.deliverable_kw.ravel(),
        "reason": pd.Categorical(av.reasons_text().ravel()),
    })
    daily = pd.DataFrame({"day": [d.isoformat() for d in av.days], "fleet_kw": daily_kw})
    losses = pd.DataFrame({"category": ["deliverable", *LOSS_CATEGORIES],
                           "kw": [float(daily_kw.mean()), *losses_kw.values()]})
    losses["share_of_nameplate"] = losses["kw"] / nameplate if nameplate > 0 else np.nan
    groups = by_group(av.deliverable_kw, av.sites, n_boot=params.bootstrap_samples, seed=params.seed)
    return CapacityEstimate(summary=summary, sites=sites_frame, daily=daily, losses=losses, by_group=groups,
                            warnings=warnings, availability=av)


def enrollment_capacity_columns(estimate: CapacityEstimate) -> pd.DataFrame:
    """Per site: deliverable P50/P90 kW over the sample days and accredited kW (P90 x class rating).

    A site's own quantiles are for the enrollment package only; the fleet's are from daily sums.
    """
    av = estimate.availability
    rating = estimate.summary["class_rating"]
    p90 = exceedance_quantile(av.deliverable_kw, 0.9, axis=1)
    return pd.DataFrame({
        "site_id": av.sites["site_id"].to_numpy(),
        "resource_id": av.sites["resource"].to_numpy(),
        "nameplate_kw": av.sites["nameplate_kw"].to_numpy(),
        "deliverable_p50_kw": exceedance_quantile(av.deliverable_kw, 0.5, axis=1),
        "deliverable_p90_kw": p90,
        "accredited_kw": p90 * rating,
        "accreditation_class": estimate.summary["accreditation_class"],
    })


def write_outputs(estimate: CapacityEstimate, out_dir: str | Path) -> list[Path]:
    """sites.csv and distribution.png into out_dir (created if missing), written whole or not at all."""
    from der_assets.capacity.plot import plot_distribution

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sites_path = out / "sites.csv"
    tmp = out / ".sites.csv.tmp"
    estimate.sites.to_csv(tmp, index=False, float_format="%.4f", lineterminator="\n")
    tmp.replace(sites_path)
    png = plot_distribution(estimate, out / "distribution.png")
    return [sites_path, png]
