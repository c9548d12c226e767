"""A user's mistake gets one line naming the file, row and column; nothing is written; no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from der_assets.cli import main

from .helpers import demo_text, write_text


def run_der(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def _registry_rows(capsys) -> str:
    code, out, _ = run_der(capsys, "registry", "export")
    return out


def test_missing_file(capsys, tmp_path):
    code, _, err = run_der(capsys, "registry", "import", str(tmp_path / "nope.csv"))
    assert code == 2
    assert err == f"der: error: {tmp_path / 'nope.csv'}: no such file\n"


def test_directory_is_not_a_file(capsys, tmp_path):
    code, _, err = run_der(capsys, "registry", "import", str(tmp_path))
    assert code == 2
    assert "is a directory" in err and "Traceback" not in err


def test_wrong_encoding(capsys, tmp_path):
    text = demo_text(2)
    path = tmp_path / "latin1.csv"
    text.loc[2, "address"] = "12 Café St"
    path.write_bytes(text.to_csv(index=False, lineterminator="\n").encode("latin-1"))
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 2
    # the header is row 1, the third data row is row 4
    assert err.strip() == f"der: error: {path}: row 4: not UTF-8 text (byte 0xe9 at offset {path.read_bytes().index(b'Caf') + 3}); save the file as CSV UTF-8"


def test_missing_column(capsys, tmp_path):
    path = write_text(demo_text(2).drop(columns=["timezone"]), tmp_path / "f.csv")
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 1
    assert f"{path}: row 1, column timezone: missing required column" in err.splitlines()


def test_unknown_column_suggests_the_right_one(capsys, tmp_path):
    path = write_text(demo_text(2).rename(columns={"edc_account": "edc_acount"}), tmp_path / "f.csv")
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 1
    assert f"{path}: row 1, column edc_acount: unknown column (did you mean edc_account?)" in err.splitlines()


def test_bad_time_zone(capsys, tmp_path):
    text = demo_text(2)
    text.loc[3, "timezone"] = "Eastern"
    path = write_text(text, tmp_path / "f.csv")
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 1
    lines = err.splitlines()
    assert f"{path}: row 5, column timezone: 'Eastern' is not an IANA time zone (e.g. America/New_York)" in lines
    assert lines[-1] == f"der: {path}: 1 problem(s); nothing written"
    assert _registry_rows(capsys).count("\n") == 1  # header only: nothing was written


def test_duplicate_device_key(capsys, tmp_path):
    text = demo_text(2)
    text.loc[3, "device_id"] = text.loc[2, "device_id"]
    text.loc[3, "device_type"] = text.loc[2, "device_type"]
    path = write_text(text, tmp_path / "f.csv")
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 1
    assert f"{path}: row 5, column device_id: duplicate device_id {text.loc[2, 'device_id']!r} (first on row 4)" in err.splitlines()


def test_conflicting_site_attribute(capsys, tmp_path):
    text = demo_text(2)
    text.loc[1, "edc_account"] = "123"  # same site as row 0, different account
    path = write_text(text, tmp_path / "f.csv")
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 1
    assert (f"{path}: row 3, column edc_account: '123' conflicts with {text.loc[0, 'edc_account']!r} "
            f"on row 2 for site {text.loc[0, 'site_id']!r}") in err.splitlines()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("plc_kw", "four", "'four' is not a number"),
        ("reserve_floor_pct", "120", "120 is above the maximum 100"),
        ("max_events_per_month", "2.5", "'2.5' is not a whole number"),
        ("export_allowed", "maybe", "'maybe' is not true or false"),
        ("iso", "ERCOT", "'ERCOT' is not one of PJM, NYISO, ISONE"),
        ("site_id", "", "is empty but required"),
        ("commissioned_on", "03/04/2022", "'03/04/2022' is not a date in YYYY-MM-DD form"),
    ],
)
def test_bad_values(capsys, tmp_path, column, value, reason):
    text = demo_text(2)
    text.loc[0, column] = value
    path = write_text(text, tmp_path / "f.csv")
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 1
    assert f"{path}: row 2, column {column}: {reason}" in err.splitlines()


def test_not_an_xlsx(capsys, tmp_path):
    path = tmp_path / "f.xlsx"
    path.write_text("site_id\nS1\n")
    code, _, err = run_der(capsys, "registry", "import", str(path))
    assert code == 2
    assert err.startswith(f"der: error: {path}: not a readable XLSX workbook")


def test_dry_run_reports_but_writes_nothing(capsys, tmp_path):
    path = write_text(demo_text(2), tmp_path / "f.csv")
    code, out, _ = run_der(capsys, "registry", "import", "--dry-run", str(path))
    assert code == 0
    assert "would write 10 versions" in out
    assert _registry_rows(capsys).count("\n") == 1


def test_console_script_prints_no_traceback(tmp_path):
    text = demo_text(2)
    text.loc[0, "latitude"] = "north"
    path = write_text(text, tmp_path / "f.csv")
    der = [sys.executable, "-m", "der_assets.cli"]
    result = subprocess.run([*der, "registry", "import", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[0] == f"{path}: row 2, column latitude: 'north' is not a number"
