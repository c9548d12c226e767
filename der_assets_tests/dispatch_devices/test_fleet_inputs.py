"""Optimizer inputs from the registry and history, checked by hand."""

from __future__ import annotations

import pandas as pd
import pytest

from der_assets.dispatch.contract import validate_fleet
from der_assets.dispatch.fleet_inputs import fleet_from_registry, forecast_from_history
from der_assets.registry.demo import demo_fleet


def test_fleet_rows_follow_the_registry():
    registry = demo_fleet(10)
    first = registry[registry.device_type == "battery"].iloc[0]
    fleet, warnings = fleet_from_registry(registry, pd.Series({first.device_id: 80.0}))
    row = fleet.set_index("battery_id").loc[first.device_id]
    assert row["soc_kwh"] == pytest.approx(16.0)  # 80 % of 20 kWh
    assert row["reserve_kwh"] == pytest.approx(20.0 * first.reserve_floor_pct / 100)
    assert row["max_discharge_kw"] == first.rated_kw
    # the nine batteries without a reading sit at their reserve and are named
    others = fleet[fleet.battery_id != first.device_id]
    assert (others["soc_kwh"] == others["reserve_kwh"]).all()
    assert warnings and warnings[0].startswith("9 batteries have no recent SoC")
    validate_fleet(fleet[[c for c in fleet.columns]])  # the file contract accepts it


def test_opted_out_site_is_unavailable():
    registry = demo_fleet(3)
    site = registry["site_id"].iloc[0]
    registry.loc[registry.site_id == site, "opt_out"] = True
    fleet, _ = fleet_from_registry(registry, pd.Series(dtype=float))
    assert fleet.set_index("site_id").loc[site, "available"] == False  # noqa: E712


def test_forecast_is_the_mean_of_the_same_time_of_day():
    registry = demo_fleet(2)
    site = registry["site_id"].iloc[0]
    rows = []
    for day, load_kwh in (("2026-07-13", 0.1), ("2026-07-14", 0.3)):
        for channel, value in (("load_kwh", load_kwh), ("pv_kwh", 0.2)):
            rows.append({"site_id": site, "device_id": site, "source": "solaredge", "channel": channel,
                         "interval_start": pd.Timestamp(f"{day}T18:00Z"), "interval_s": 300, "value": value})
    index = pd.date_range("2026-07-15T18:00Z", periods=2, freq="5min")
    forecast, warnings = forecast_from_history(pd.DataFrame(rows), registry, index,
                                               event_end=pd.Timestamp("2026-07-15T18:05Z"))
    mine = forecast[forecast.site_id == site].iloc[0]
    assert mine["load_kw"] == pytest.approx(2.4)  # mean 0.2 kWh in 5 minutes
    assert mine["pv_kw"] == pytest.approx(2.4)
    other = forecast[forecast.site_id != site]
    plc = registry.set_index("site_id").loc[other.site_id.iloc[0], "plc_kw"].iloc[0]
    assert (other["pv_kw"] == 0).all() and other["load_kw"].tolist() == [0.0, plc]  # 0 in the event, PLC after
    assert warnings == ["1 sites have no telemetry history; forecast PV 0, load 0 during the event and PLC after it"]


def test_an_instruction_reaches_only_the_sites_of_its_resource():
    """resource_id picks the registration; a blank one means <ISO>-<zone> (DESIGN.md)."""
    registry = demo_fleet(6)
    sites = sorted(registry["site_id"].unique())
    registry.loc[registry.site_id == sites[0], "resource_id"] = "AGG-2"
    registry.loc[registry.site_id == sites[1], "resource_id"] = None
    zone = registry.loc[registry.site_id == sites[1], "zone"].iloc[0]
    fleet, _ = fleet_from_registry(registry, pd.Series(dtype=float), resource_id="AGG-2")
    assert fleet["site_id"].tolist() == [sites[0]]
    fleet, _ = fleet_from_registry(registry, pd.Series(dtype=float), resource_id=f"PJM-{zone}")
    assert sites[1] in set(fleet["site_id"])
    assert set(fleet["site_id"]) <= set(registry.loc[registry.zone == zone, "site_id"])
    fleet, _ = fleet_from_registry(registry, pd.Series(dtype=float), resource_id="AGG-1")
    assert set(fleet["site_id"]) == set(sites[2:])
    fleet, warnings = fleet_from_registry(registry, pd.Series(dtype=float), resource_id="AGG-9")
    assert fleet.empty and warnings == ["no active battery is enrolled in resource 'AGG-9'"]
