"""Which ISO registration (resource) each site is enrolled in.

A site belongs to the resource named in its `resource_id`; when that is blank, to
`<ISO>-<zone>` (DESIGN.md, baseline and settlement contract). Dispatch, capacity, settlement
and the ISO exports all resolve it here, so they agree on which sites make up a resource.
"""

from __future__ import annotations

import pandas as pd


def site_resource(registry: pd.DataFrame) -> pd.Series:
    """Per row of a registry frame, the resource id its site is enrolled in (str)."""
    default = registry["iso"].astype(str) + "-" + registry["zone"].fillna("").astype(str)
    if "resource_id" not in registry.columns:
        return default.rename("resource_id")
    explicit = registry["resource_id"].astype("string").str.strip()
    return explicit.where(explicit.notna() & (explicit != ""), default).astype(str).rename("resource_id")
