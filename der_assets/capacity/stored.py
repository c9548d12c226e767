"""Site-day availability as warehouse rows and back, so the estimate can be re-priced from what was stored.

`site_availability` (the Dagster asset) writes one row per site and sample day; `capacity_estimate`
reads them back into an `Availability` and prices it. Each row carries the deliverable kW, the
reason a site fell short, and the kW lost to each loss category (they add up to nameplate).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from der_assets.capacity.availability import LOSS_CATEGORIES, REASONS, Availability

SITE_COLUMNS = ("site_id", "resource", "zone", "iso", "timezone", "nameplate_kw")


def availability_rows(av: Availability) -> pd.DataFrame:
    """One row per site and day: site_id, resource_id, zone, iso, timezone, nameplate_kw, day, deliverable_kw,
    reason, loss_<category>_kw."""
    n_s, n_d = av.deliverable_kw.shape
    sites = av.sites.reset_index(drop=True)
    rows = pd.DataFrame({
        "site_id": np.repeat(sites["site_id"].to_numpy(), n_d),
        "resource_id": np.repeat(sites["resource"].to_numpy(), n_d),
        "zone": np.repeat(sites["zone"].to_numpy(), n_d),
        "iso": np.repeat(sites["iso"].to_numpy(), n_d),
        "timezone": np.repeat(sites["timezone"].to_numpy(), n_d),
        "nameplate_kw": np.repeat(sites["nameplate_kw"].to_numpy(dtype=float), n_d),
        "day": np.tile(np.asarray(av.days, dtype=object), n_s),
        "deliverable_kw": av.deliverable_kw.ravel(),
        "reason": av.reasons_text().ravel(),
    })
    for c in LOSS_CATEGORIES:
        rows[f"loss_{c}_kw"] = av.losses_kw[c].ravel()
    return rows


def availability_from_rows(rows: pd.DataFrame, warnings: list[str] | None = None) -> Availability:
    """The `Availability` that `availability_rows` wrote (sites and days in sorted order)."""
    if rows.empty:
        raise ValueError("no stored site-days to rebuild availability from")
    rows = rows.assign(day=pd.to_datetime(rows["day"]).dt.date).sort_values(["site_id", "day"])
    sites = (rows.drop_duplicates("site_id").rename(columns={"resource_id": "resource"})[list(SITE_COLUMNS)]
             .reset_index(drop=True))
    days = np.array(sorted(rows["day"].unique()), dtype=object)
    s_idx = pd.Index(sites["site_id"]).get_indexer(rows["site_id"])
    d_idx = pd.Index(days).get_indexer(rows["day"])
    shape = (len(sites), len(days))

    def grid(values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full(shape, fill)
        out[s_idx, d_idx] = values
        return out

    if np.isnan(grid(np.zeros(len(rows)))).any():
        raise ValueError("stored site-days are not a full site x day grid")
    codes = {name: i for i, name in enumerate(REASONS)}
    reason = np.array([codes.get(r, -1) for r in rows["reason"]], dtype=np.int8)
    reason_grid = np.full(shape, -1, dtype=np.int8)
    reason_grid[s_idx, d_idx] = reason
    return Availability(
        sites=sites, days=days, deliverable_kw=grid(rows["deliverable_kw"].to_numpy(dtype=float)),
        reason=reason_grid, losses_kw={c: grid(rows[f"loss_{c}_kw"].to_numpy(dtype=float)) for c in LOSS_CATEGORIES},
        warnings=list(warnings or []))


def site_capacity_columns(rows: pd.DataFrame, summary: dict) -> pd.DataFrame:
    """Per site, for an ISO enrollment: deliverable P50/P90 kW over the sample days and accredited kW
    (P90 x the class rating), with the delivery year and class they were estimated for."""
    from der_assets.capacity.distribution import exceedance_quantile

    av = availability_from_rows(rows.assign(timezone=rows.get("timezone", "UTC")))
    p90 = exceedance_quantile(av.deliverable_kw, 0.9, axis=1)
    return pd.DataFrame({
        "site_id": av.sites["site_id"].to_numpy(),
        "capacity_delivery_year": summary["delivery_year"],
        "accreditation_class": summary["accreditation_class"],
        "deliverable_p50_kw": exceedance_quantile(av.deliverable_kw, 0.5, axis=1),
        "deliverable_p90_kw": p90,
        "accredited_kw": p90 * float(summary["class_rating"]),
    })
