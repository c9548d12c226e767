"""`der registry import` semantics on SQLite and PostgreSQL: all or nothing, idempotent, versioned."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.errors import ValidationFailed
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import to_text_frame
from der_assets.registry.service import export_registry, import_registry_file
from der_assets.registry.store import current_registry, history
from der_assets.warehouse.schema import REGISTRY_TABLES, registry_imports

from .helpers import demo_text, write_demo, write_text


def _count(engine, table, current_only=False) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    if current_only:
        query = query.where(table.c.valid_to.is_(None))
    with engine.connect() as conn:
        return conn.execute(query).scalar_one()


def test_demo_import_counts_and_round_trip(engine, tmp_path):
    path = write_demo(tmp_path / "fleet.csv", n_sites=200)
    summary = import_registry_file(engine, path)
    assert summary.rows_read == 400
    assert summary.created == {"subscriber": 200, "site": 200, "meter": 200, "device": 400}
    assert summary.versions_created == 1000
    registry = current_registry(engine)
    assert len(registry) == 400
    # Export writes back exactly the text that was imported.
    exported = to_text_frame(registry)
    original = pd.read_csv(path, dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(
        exported.sort_values("device_id").reset_index(drop=True),
        original.sort_values("device_id").reset_index(drop=True),
    )


def test_reimport_changes_nothing(engine, tmp_path):
    path = write_demo(tmp_path / "fleet.csv")
    import_registry_file(engine, path)
    again = import_registry_file(engine, path)
    assert again.versions_created == 0
    assert again.import_id is None
    assert _count(engine, registry_imports) == 1
    assert _count(engine, REGISTRY_TABLES["device"]) == 40


def test_export_then_reimport_round_trips(engine, tmp_path):
    import_registry_file(engine, write_demo(tmp_path / "fleet.csv"))
    out = tmp_path / "exported.csv"
    export_registry(engine, out)
    assert import_registry_file(engine, out).versions_created == 0


def test_changed_row_creates_a_version_and_keeps_the_old(engine, tmp_path):
    text = demo_text(3)
    path = write_text(text, tmp_path / "v1.csv")
    t1 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    from der_assets.registry.reading import read_table
    from der_assets.registry.store import apply_import
    from der_assets.registry.validation import parse_registry

    table = read_table(path)
    apply_import(engine, parse_registry(table), file_name="v1.csv", content=table.content, changed_by="alice", now=t1)

    site = text.loc[0, "site_id"]
    text.loc[text["site_id"] == site, "plc_kw"] = "9.25"
    path2 = write_text(text, tmp_path / "v2.csv")
    t2 = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    table2 = read_table(path2)
    summary = apply_import(engine, parse_registry(table2), file_name="v2.csv", content=table2.content,
                           changed_by="bob", now=t2)
    assert summary.changed == {"subscriber": 0, "site": 1, "meter": 0, "device": 0}
    assert summary.versions_created == 1

    versions = history(engine, "site", site)
    assert len(versions) == 2
    old, new = versions.iloc[0], versions.iloc[1]
    assert pd.Timestamp(old["valid_to"]).tz_localize(None) == pd.Timestamp(t2).tz_localize(None)
    assert pd.isna(new["valid_to"])
    assert new["change_summary"] == "changed: plc_kw"
    assert (old["changed_by"], new["changed_by"]) == ("alice", "bob")
    assert new["plc_kw"] == 9.25

    # The registry as it stood in mid-January still has the old PLC.
    then = current_registry(engine, as_of=dt.datetime(2026, 1, 15, tzinfo=dt.UTC))
    now = current_registry(engine)
    assert then.loc[then["site_id"] == site, "plc_kw"].iloc[0] == float(demo_fleet(3).loc[0, "plc_kw"])
    assert now.loc[now["site_id"] == site, "plc_kw"].iloc[0] == 9.25


def test_invalid_file_writes_nothing(engine, tmp_path):
    text = demo_text(3)
    text.loc[1, "timezone"] = "Mars/Olympus_Mons"
    text.loc[4, "rated_kw"] = "-3"
    path = write_text(text, tmp_path / "bad.csv")
    with pytest.raises(ValidationFailed) as info:
        import_registry_file(engine, path)
    assert info.value.problems == [
        f"{path}: row 3, column timezone: 'Mars/Olympus_Mons' is not an IANA time zone (e.g. America/New_York)",
        f"{path}: row 6, column rated_kw: -3 is below the minimum 0",
    ]
    for table in REGISTRY_TABLES.values():
        assert _count(engine, table) == 0
    assert _count(engine, registry_imports) == 0


def test_dry_run_writes_nothing(engine, tmp_path):
    summary = import_registry_file(engine, write_demo(tmp_path / "fleet.csv"), dry_run=True)
    assert summary.versions_created == 100  # 20 subscribers, 20 sites, 20 meters, 40 devices
    assert _count(engine, REGISTRY_TABLES["device"]) == 0


def test_xlsx_import_matches_csv(engine, tmp_path):
    from der_assets.registry.files import write_registry_file

    fleet = demo_fleet(10)
    xlsx = write_registry_file(fleet, tmp_path / "fleet.xlsx")
    assert import_registry_file(engine, xlsx).versions_created == 50
    csv = write_registry_file(fleet, tmp_path / "fleet.csv")
    assert import_registry_file(engine, csv).versions_created == 0


def test_pjm_inventory_values(engine, tmp_path):
    import_registry_file(engine, write_demo(tmp_path / "fleet.csv", n_sites=200))
    inventory = export_registry(engine, tmp_path / "pjm.csv", iso="pjm")
    fleet = demo_fleet(200)
    assert len(inventory) == 200  # every demo site is PJM and none is retired
    assert set(inventory["edc"]) == {"PECO", "ComEd"}
    assert (inventory["battery_kwh"] == 20.0).all()
    first = inventory.iloc[0]
    devices = fleet[fleet["site_id"] == first["site_id"]]
    assert first["pv_ac_kw"] == devices.loc[devices.device_type == "pv_inverter", "rated_kw"].iloc[0]
    assert first["battery_duration_h"] == round(20.0 / devices.loc[devices.device_type == "battery", "rated_kw"].iloc[0], 2)
    assert export_registry(engine, None, iso="nyiso").empty


def test_a_file_reads_as_the_same_registry_without_a_warehouse(tmp_path):
    from der_assets.registry.reading import read_table
    from der_assets.registry.store import parsed_registry
    from der_assets.registry.validation import parse_registry

    fleet = demo_fleet(30)
    path = write_demo(tmp_path / "fleet.csv", n_sites=30)
    got = parsed_registry(parse_registry(read_table(path)))
    pd.testing.assert_frame_equal(to_text_frame(got), to_text_frame(fleet.sort_values(["site_id", "device_id"])
                                                                     .reset_index(drop=True)))


def test_a_fleet_with_no_battery_has_an_inventory(tmp_path):
    from der_assets.registry.iso_export import site_inventory
    from der_assets.registry.reading import read_table
    from der_assets.registry.store import parsed_registry
    from der_assets.registry.validation import parse_registry

    fleet = demo_fleet(12)
    pv_only = fleet[fleet["device_type"] != "battery"]
    path = tmp_path / "pv_only.csv"
    pv_only.to_csv(path, index=False)
    inv = site_inventory(parsed_registry(parse_registry(read_table(path))))
    assert len(inv) == 12
    assert inv["battery_make_model"].isna().all()
    assert inv["battery_kwh"].isna().all()
    assert set(inv["technology"]) == {"solar"}
    assert inv["pv_inverter_make_model"].notna().all()
