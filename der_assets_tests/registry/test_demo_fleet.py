"""The demo fleet: the scenario's numbers, determinism, and 10,000 sites."""

from __future__ import annotations

import pandas as pd

from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.reading import read_table
from der_assets.registry.validation import parse_registry


def test_scenario_numbers():
    fleet = demo_fleet(200)
    sites = fleet.drop_duplicates("site_id")
    assert len(sites) == 200 and fleet["subscriber_id"].nunique() == 200
    assert set(sites["iso"]) == {"PJM"}
    assert set(sites["edc"]) == {"PECO", "ComEd"}
    assert set(sites["timezone"]) == {"America/New_York", "America/Chicago"}
    per_site = fleet.groupby("site_id")["device_type"].apply(sorted)
    assert (per_site.apply(tuple) == ("battery", "pv_inverter")).all()
    batteries = fleet[fleet.device_type == "battery"]
    assert (batteries["capacity_kwh"] == 20.0).all()
    assert set(batteries["make"]) == {"SolarEdge", "Enphase", "SMA", "Generac", "sonnen", "BYD", "ABB"}
    assert set(fleet["telemetry_source"]) == {"solaredge", "enphase", "sma", "generac", "sonnen", "fronius", "sunspec"}
    assert set(sites["interconnection_type"]) == {"nem", "non_nem", "shared_facility"}
    assert (sites["export_allowed"] == (sites["interconnection_type"] != "non_nem")).all()
    pv = fleet[fleet.device_type == "pv_inverter"]
    # DC/AC ratio: inverters are sized so the array is at most 1.3 times the AC rating
    assert (pv["pv_dc_kw"] / pv["rated_kw"]).between(0.5, 1.3).all()
    assert pv["rated_kw"].between(0.9, 11.5).all()


def test_same_seed_same_fleet_other_seed_other_fleet():
    pd.testing.assert_frame_equal(demo_fleet(50, seed=3), demo_fleet(50, seed=3))
    assert not demo_fleet(50, seed=3).equals(demo_fleet(50, seed=4))


def test_ten_thousand_sites_validate(tmp_path):
    fleet = demo_fleet(10_000)
    assert len(fleet) == 20_000
    assert fleet["device_id"].is_unique
    sites = fleet.drop_duplicates("site_id")
    assert sites["meter_id"].is_unique and sites["edc_account"].is_unique
    assert fleet["serial"].is_unique
    assert fleet["site_id"].str.fullmatch(r"S-\d{5}").all()
    path = write_registry_file(fleet, tmp_path / "big.csv")
    parsed = parse_registry(read_table(path))
    assert len(parsed.entities["site"]) == 10_000
    assert len(parsed.entities["device"]) == 20_000


def test_ten_thousand_sites_import_into_sqlite(tmp_path):
    from der_assets.registry.service import import_registry_file
    from der_assets.warehouse import connect_warehouse

    engine = connect_warehouse(f"sqlite:///{tmp_path / 'w.sqlite'}")
    path = write_registry_file(demo_fleet(10_000), tmp_path / "big.csv")
    assert import_registry_file(engine, path).versions_created == 50_000
    assert import_registry_file(engine, path).versions_created == 0
