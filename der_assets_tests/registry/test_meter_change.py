"""A site's meter change closes the old meter point and opens the new one: one current meter per
site, the old one kept in history, and the exports and the PJM inventory show the new id."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.errors import ValidationFailed
from der_assets.registry.reading import read_table
from der_assets.registry.service import export_registry
from der_assets.registry.store import apply_import, current_registry, history
from der_assets.registry.validation import parse_registry
from der_assets.warehouse.schema import REGISTRY_TABLES

from .helpers import demo_text, write_text

T1 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 4, 1, tzinfo=dt.UTC)


def _import(engine, path, now):
    table = read_table(path)
    return apply_import(engine, parse_registry(table), file_name=path.name, content=table.content,
                        changed_by="ops", now=now)


def _current_meters(engine, site):
    meters = REGISTRY_TABLES["meter"]
    with engine.connect() as conn:
        return sorted(conn.execute(sa.select(meters.c.meter_id).where(
            meters.c.site_id == site, meters.c.valid_to.is_(None))).scalars())


def test_a_new_meter_id_closes_the_old_meter(engine, tmp_path):
    text = demo_text(3)
    site = text.loc[0, "site_id"]
    old = text.loc[0, "meter_id"]
    _import(engine, write_text(text, tmp_path / "v1.csv"), T1)
    new = "ZZ-NEW-0001"  # sorts after the old id: the first-sorting id used to win in exports
    assert new > old
    text.loc[text["site_id"] == site, "meter_id"] = new
    summary = _import(engine, write_text(text, tmp_path / "v2.csv"), T2)

    assert _current_meters(engine, site) == [new]
    assert summary.created["meter"] == 1 and summary.closed == {"subscriber": 0, "site": 0, "meter": 1, "device": 0}
    assert summary.versions_created == 1
    old_versions = history(engine, "meter", old)
    assert len(old_versions) == 1
    assert pd.Timestamp(old_versions.iloc[0]["valid_to"]).tz_localize(None) == pd.Timestamp(T2).tz_localize(None)
    new_version = history(engine, "meter", new).iloc[0]
    assert new_version["change_summary"] == f"created, replacing meter {old}"

    registry = current_registry(engine)
    assert set(registry.loc[registry["site_id"] == site, "meter_id"]) == {new}
    assert len(registry) == 6  # one row per device still: the meter change added none
    inventory = export_registry(engine, tmp_path / "pjm.csv", iso="pjm")
    assert inventory.set_index("site_id").loc[site, "meter_id"] == new
    then = current_registry(engine, as_of=T1 + dt.timedelta(days=1))
    assert set(then.loc[then["site_id"] == site, "meter_id"]) == {old}  # the past keeps the old meter

    assert _import(engine, tmp_path / "v2.csv", T2 + dt.timedelta(days=1)).import_id is None  # nothing left to do
    other = text.loc[text["site_id"] != site, "site_id"].iloc[0]
    assert len(_current_meters(engine, other)) == 1  # other sites' meters are untouched


def test_a_meter_moves_a_blank_keeps_and_an_import_heals_two_current_meters(engine, tmp_path):
    text = demo_text(3)
    a, b, c = text["site_id"].unique()
    meter_a = text.loc[text["site_id"] == a, "meter_id"].iloc[0]
    meter_b = text.loc[text["site_id"] == b, "meter_id"].iloc[0]
    meter_c = text.loc[text["site_id"] == c, "meter_id"].iloc[0]
    _import(engine, write_text(text, tmp_path / "v1.csv"), T1)
    text.loc[text["site_id"] == a, "meter_id"] = ""
    text.loc[text["site_id"] == b, "meter_id"] = meter_a  # a's meter point re-assigned to b
    summary = _import(engine, write_text(text, tmp_path / "v2.csv"), T2)
    assert summary.changed["meter"] == 1 and summary.closed["meter"] == 1
    assert _current_meters(engine, b) == [meter_a]
    assert _current_meters(engine, a) == []  # a's meter moved away; its blank cell closed nothing else
    assert pd.notna(history(engine, "meter", meter_b).iloc[0]["valid_to"])

    # a registry written before the fix holds two current meters for a changed site
    meters = REGISTRY_TABLES["meter"]
    with engine.begin() as conn:
        row = dict(conn.execute(sa.select(meters).where(meters.c.meter_id == meter_c)).mappings().one())
        row.pop("version_id")
        conn.execute(meters.insert().values({**row, "meter_id": "AA-STRAY"}))
    assert len(_current_meters(engine, c)) == 2
    summary = _import(engine, tmp_path / "v2.csv", T2 + dt.timedelta(days=1))
    assert summary.versions_created == 0 and summary.closed["meter"] == 1 and summary.import_id is not None
    assert _current_meters(engine, c) == [meter_c]


def test_two_meter_ids_for_one_site_are_refused(tmp_path):
    text = demo_text(3)
    site = text.loc[0, "site_id"]
    rows = text.index[text["site_id"] == site]
    text.loc[rows[1], "meter_id"] = "OTHER-METER"
    path = write_text(text, tmp_path / "two.csv")
    with pytest.raises(ValidationFailed) as info:
        parse_registry(read_table(path))
    assert info.value.problems == [
        f"{path}: row {rows[1] + 2}, column meter_id: 'OTHER-METER' differs from {text.loc[rows[0], 'meter_id']!r} "
        f"on row {rows[0] + 2} for site {site!r}; a site has one meter point (a second meter is a device row of "
        "type meter)"]
