"""The fleet map: sites placed by latitude/longitude, coloured by ISO zone, sized by battery kWh."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from der_assets.registry.demo import demo_fleet
from der_assets.registry.plot import MAX_MARKER_PT2, MIN_MARKER_PT2, iso_zone, plot_fleet_map
from der_assets_tests.plots.png import png_size


def _registry() -> pd.DataFrame:
    fleet = demo_fleet(6)
    sites = list(dict.fromkeys(fleet["site_id"]))
    # hand-set: two zones, one site without coordinates, one without a zone, batteries of 10 and 20 kWh
    site_rows = fleet["site_id"]
    fleet.loc[site_rows.isin(sites[:3]), ["iso", "zone"]] = ["PJM", "COMED"]
    fleet.loc[site_rows.isin(sites[3:5]), ["iso", "zone"]] = ["NYISO", "J"]
    fleet.loc[site_rows == sites[4], "zone"] = None
    fleet.loc[site_rows == sites[5], ["latitude", "longitude"]] = [None, None]
    battery = fleet["device_type"] == "battery"
    fleet.loc[battery, "capacity_kwh"] = 10.0
    fleet.loc[battery & (site_rows == sites[0]), "capacity_kwh"] = 20.0
    return fleet


def test_png_sites_zones_sizes():
    fleet = _registry()
    sites = list(dict.fromkeys(fleet["site_id"]))
    m = plot_fleet_map(fleet)
    assert png_size(m.png) == (900, 600)
    assert m.unplaced == [sites[5]] and len(m.sites) == 5
    by_site = m.sites.set_index("site_id")
    assert by_site.loc[sites[0], "iso_zone"] == "PJM COMED" and by_site.loc[sites[3], "iso_zone"] == "NYISO J"
    assert by_site.loc[sites[4], "iso_zone"] == "NYISO (no zone)"
    assert m.size_by == "battery_kwh"
    # marker area proportional to kWh: the 20 kWh battery gets the largest marker, a 10 kWh one half of it
    assert by_site.loc[sites[0], "marker_pt2"] == MAX_MARKER_PT2
    assert by_site.loc[sites[1], "marker_pt2"] == MAX_MARKER_PT2 / 2
    mean_lat = by_site["latitude"].mean()
    assert m.aspect == pytest.approx(1 / math.cos(math.radians(mean_lat)))


def test_pv_only_fleet_is_sized_by_pv():
    fleet = demo_fleet(4)
    fleet.loc[fleet["device_type"] == "battery", "capacity_kwh"] = None  # batteries of unknown energy
    m = plot_fleet_map(fleet)
    assert m.size_by == "pv_ac_kw" and (m.sites["marker_pt2"] >= MIN_MARKER_PT2).all()
    assert m.sites["marker_pt2"].max() == MAX_MARKER_PT2


def test_no_coordinates_at_all_still_draws():
    fleet = demo_fleet(3).assign(latitude=None, longitude=None)
    m = plot_fleet_map(fleet)
    assert m.sites.empty and len(m.unplaced) == 3 and png_size(m.png) == (900, 600)


def test_iso_zone_label():
    frame = pd.DataFrame({"iso": ["PJM", "ISONE", "NYISO"], "zone": ["PECO", " ", None]})
    assert iso_zone(frame).tolist() == ["PJM PECO", "ISONE (no zone)", "NYISO (no zone)"]


def test_200_sites_under_a_second():
    fleet = demo_fleet(200)
    plot_fleet_map(fleet)  # first call pays matplotlib's import and font cache
    t0 = time.process_time()  # CPU time: other processes on a shared machine do not count
    m = plot_fleet_map(fleet)
    assert time.process_time() - t0 < 1.0 and len(m.sites) == 200
