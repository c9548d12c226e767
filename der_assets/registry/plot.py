"""The fleet map: every site at its latitude and longitude, coloured by ISO zone, sized by its battery.

No basemap: tiles need the network, and the project ships no state-outline file, so this is a plain
longitude/latitude scatter whose aspect ratio is corrected for latitude (one degree of longitude is
cos(latitude) degrees of latitude long), so the fleet's shape is not stretched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from der_assets.figures import figure_png, pyplot
from der_assets.registry.iso_export import site_inventory

MAX_MARKER_PT2 = 120.0  # marker area of the largest site, points^2
MIN_MARKER_PT2 = 8.0  # a site with neither battery nor PV nameplate still shows


@dataclass(frozen=True)
class FleetMap:
    """A rendered fleet map and the sites in it.

    Attributes
    ----------
    png : bytes
        The map as a PNG image.
    sites : pandas.DataFrame
        The drawn sites: ``site_id, latitude, longitude, iso_zone, size_kw_or_kwh, marker_pt2``.
    unplaced : list of str
        Sites left off the map because the registry has no latitude or longitude for them.
    size_by : str
        ``battery_kwh`` or ``pv_ac_kw``: what the marker area is proportional to.
    aspect : float
        The axes' y/x scale, 1 / cos(mean latitude).
    """

    png: bytes
    sites: pd.DataFrame
    unplaced: list[str]
    size_by: str
    aspect: float


def iso_zone(sites: pd.DataFrame) -> pd.Series:
    """'PJM COMED'-style labels; a site with no zone is '<ISO> (no zone)'."""
    zone = sites["zone"].astype("string").str.strip().replace("", pd.NA)
    return (sites["iso"].astype(str) + " " + zone.fillna("(no zone)")).astype(str)


def plot_fleet_map(registry: pd.DataFrame, *, size_by: str | None = None, title: str | None = None) -> FleetMap:
    """Draw the fleet's sites by latitude/longitude, coloured by ISO zone and sized by nameplate.

    Parameters
    ----------
    registry : pandas.DataFrame
        The registry, one row per device (``current_registry``); retired devices are not counted.
    size_by : {"battery_kwh", "pv_ac_kw"}, optional
        What a marker's area is proportional to. Default: battery kWh when any site has a battery, else PV kW.
    title : str, optional
        Replaces the default title (site count, zones, total battery kWh and PV kW).

    Returns
    -------
    FleetMap
        The PNG (900 x 600 px), the drawn sites, the sites without coordinates, the size measure and aspect.
    """
    plt = pyplot()
    inv = site_inventory(registry) if len(registry) else pd.DataFrame(
        columns=["site_id", "latitude", "longitude", "iso", "zone", "battery_kwh", "pv_ac_kw"])
    if size_by is None:
        size_by = "battery_kwh" if inv["battery_kwh"].notna().any() else "pv_ac_kw"
    if size_by not in ("battery_kwh", "pv_ac_kw"):
        raise ValueError(f"size_by must be battery_kwh or pv_ac_kw, not {size_by!r}")
    lat = pd.to_numeric(inv["latitude"], errors="coerce")
    lon = pd.to_numeric(inv["longitude"], errors="coerce")
    placed = lat.notna() & lon.notna()
    unplaced = sorted(inv.loc[~placed, "site_id"].astype(str))
    sites = pd.DataFrame({"site_id": inv["site_id"].astype(str), "latitude": lat, "longitude": lon,
                          "iso_zone": iso_zone(inv) if len(inv) else pd.Series(dtype=str),
                          "size_kw_or_kwh": pd.to_numeric(inv[size_by], errors="coerce")})[placed.to_numpy()]
    biggest = sites["size_kw_or_kwh"].max() if sites["size_kw_or_kwh"].notna().any() else 0.0
    scale = MAX_MARKER_PT2 / biggest if biggest and biggest > 0 else 0.0
    sites["marker_pt2"] = np.maximum(MIN_MARKER_PT2, sites["size_kw_or_kwh"].fillna(0.0) * scale)
    sites = sites.sort_values(["iso_zone", "site_id"]).reset_index(drop=True)

    mean_lat = float(sites["latitude"].mean()) if len(sites) else 0.0
    aspect = 1.0 / max(0.05, math.cos(math.radians(mean_lat)))
    fig, ax = plt.subplots(figsize=(9, 6))
    zones = list(dict.fromkeys(sites["iso_zone"]))
    colors = plt.get_cmap("tab10" if len(zones) <= 10 else "tab20")
    unit = "kWh" if size_by == "battery_kwh" else "kW"
    for i, zone in enumerate(zones):
        z = sites[sites["iso_zone"] == zone]
        ax.scatter(z["longitude"], z["latitude"], s=z["marker_pt2"], color=colors(i % colors.N), alpha=0.65,
                   edgecolors="white", linewidths=0.4,
                   label=f"{zone}: {len(z)} sites, {z['size_kw_or_kwh'].sum():,.0f} {unit}")
    ax.set_aspect(aspect, adjustable="datalim")
    ax.set_xlabel("longitude, degrees east")
    ax.set_ylabel("latitude, degrees north")
    ax.grid(True, color="#dddddd", linewidth=0.6)
    if zones:
        ax.legend(fontsize=8, loc="best", markerscale=0.6, title=f"ISO zone (marker area ~ {'battery kWh' if size_by == 'battery_kwh' else 'PV kW'})",
                  title_fontsize=8)
    else:
        ax.text(0.5, 0.5, "no site has a latitude and longitude", transform=ax.transAxes, ha="center")
    if title is None:
        title = (f"Fleet: {len(sites)} sites in {len(zones)} zones, "
                 f"{inv['battery_kwh'].sum():,.0f} kWh battery, {inv['pv_ac_kw'].sum():,.0f} kW PV")
        if unplaced:
            title += f" ({len(unplaced)} sites without coordinates not drawn)"
    ax.set_title(title, fontsize=10)
    fig.subplots_adjust(left=0.09, right=0.97, top=0.94, bottom=0.09)  # fixed margins: tight_layout costs ~0.2 s
    return FleetMap(png=figure_png(fig), sites=sites, unplaced=unplaced, size_by=size_by, aspect=aspect)
