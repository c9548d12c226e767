"""A folder or a missing path given for a file, and a statement that is not text: one line each, no traceback."""

from __future__ import annotations

import pytest

from der_assets.cli import main
from der_assets.errors import ValidationFailed
from der_assets.settlement.statements.isone_fcm import parse_fcm_report
from der_assets.settlement.statements.pjm_billing import parse_billing


@pytest.mark.parametrize("argv", [
    ["baseline", "--method", "pjm_same_day_3_2", "--meter", "{d}", "--event", "{d}"],
    ["settle", "--iso", "pjm", "--statement", "{d}", "--meter", "{d}", "--events", "{d}", "--registry", "{d}"],
    ["capacity", "estimate", "--registry", "{d}", "--telemetry", "{d}", "--iso", "pjm", "--delivery-year",
     "2027/2028", "--class", "demand_resource"],
])
def test_a_folder_given_as_a_file_is_named_as_one(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) as end:
        main([a.format(d=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert end.value.code == 2 and err == [f"der: error: {tmp_path}: is a directory, not a file"]


@pytest.mark.parametrize("parse", [parse_fcm_report, parse_billing])
def test_a_statement_that_is_not_utf8_names_its_row(parse):
    with pytest.raises(ValidationFailed, match=r"^s\.csv: row 2: not UTF-8 text$"):
        parse(b"C,header\nD,\xff\xfe\n", name="s.csv")
