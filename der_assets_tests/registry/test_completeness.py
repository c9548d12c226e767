"""`der registry validate` and the enrollment rules, on registries with known problems."""

from __future__ import annotations

import pytest

from der_assets.cli import main
from der_assets.registry.completeness import evaluate
from der_assets.registry.demo import demo_fleet

from .helpers import demo_text, write_text


def _problems(registry):
    return sorted((p.rule, p.key, p.column) for p in evaluate(registry).itertuples())


def test_demo_fleet_is_complete():
    assert evaluate(demo_fleet(200)).empty


def test_each_rule_finds_its_problem():
    fleet = demo_fleet(4)
    s1, s2, s3, s4 = sorted(fleet["site_id"].unique())
    fleet.loc[fleet.site_id == s1, "meter_id"] = None
    fleet.loc[fleet.site_id == s2, "edc_account"] = ""
    pv3 = (fleet.site_id == s3) & (fleet.device_type == "pv_inverter")
    pv4 = (fleet.site_id == s4) & (fleet.device_type == "pv_inverter")
    fleet.loc[pv4, "make"] = fleet.loc[pv3, "make"].iloc[0]
    fleet.loc[pv4, "serial"] = fleet.loc[pv3, "serial"].iloc[0].lower()  # same serial, other case
    bat2 = (fleet.site_id == s2) & (fleet.device_type == "battery")
    fleet.loc[bat2, "rated_kw"] = 20000.0  # W typed as kW: 1000 C
    fleet.loc[fleet.site_id == s4, "timezone"] = "America/Denver"  # not in PJM
    fleet.loc[fleet.site_id == s3, "pnode"] = None
    assert _problems(fleet) == sorted([
        ("meter_point_present", s1, "meter_id"),
        ("edc_account_present", s2, "edc_account"),
        ("unique_device_serials", f"{s3}-PV", "serial"),
        ("unique_device_serials", f"{s4}-PV", "serial"),
        ("plausible_battery_ratings", f"{s2}-BAT", "rated_kw"),
        ("valid_time_zones", s4, "timezone"),
        ("enrollment_fields_present", s3, "pnode"),
    ])


def test_retired_sites_are_not_held_to_enrollment_rules():
    fleet = demo_fleet(2)
    site = fleet["site_id"].iloc[0]
    fleet.loc[fleet.site_id == site, ["meter_id", "edc_account"]] = None
    fleet.loc[fleet.site_id == site, "site_status"] = "retired"
    assert evaluate(fleet).empty


def test_validate_command_exit_codes(capsys, tmp_path):
    text = demo_text(3)
    site = text.loc[0, "site_id"]
    text.loc[text.site_id == site, "meter_id"] = ""
    path = write_text(text, tmp_path / "f.csv")
    with pytest.raises(SystemExit) as info:
        main(["registry", "import", str(path)])
    assert info.value.code == 0
    with pytest.raises(SystemExit) as info:
        main(["registry", "validate"])
    _, err = capsys.readouterr()
    assert info.value.code == 1
    assert err.splitlines() == [
        f"site {site}, column meter_id: no utility meter point (MPID) [meter_point_present]",
        "der: registry has 1 enrollment problem(s)",
    ]
