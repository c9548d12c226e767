"""`der normalize` over several payload files: one CSV, each file's rows as alone; a bad file prints nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from der_assets.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "greenbutton_espi"
ESPI_A = FIXTURES / "GreenButtonAlliance_OpenESPI" / "test_usage_data.xml"
ESPI_B = FIXTURES / "vladistan_greenbutton_objects" / "TestGBDataHourlyNineDaysBinnedDaily.xml"
ARGS = ["normalize", "--source", "greenbutton", "--endpoint", "espi", "--site-id", "S-1",
        "--received-at", "2026-11-28T00:00:00Z"]


def _der(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_two_files_make_one_csv_of_both(capsys):
    code_a, out_a, _ = _der(capsys, *ARGS, str(ESPI_A))
    code_b, out_b, _ = _der(capsys, *ARGS, str(ESPI_B))
    code, out, err = _der(capsys, *ARGS, str(ESPI_A), str(ESPI_B))
    assert (code_a, code_b, code, err) == (0, 0, 0, "")
    header = out_a.splitlines()[0]
    assert out.splitlines().count(header) == 1
    assert out == out_a + "".join(line + "\n" for line in out_b.splitlines()[1:])
    frame = pd.read_csv(io.StringIO(out))
    assert len(frame) == len(out_a.splitlines()) - 1 + len(out_b.splitlines()) - 1


def test_a_bad_second_file_prints_no_rows(capsys, tmp_path):
    bad = tmp_path / "cut.xml"
    bad.write_text("<feed><entry>")
    code, out, err = _der(capsys, *ARGS, str(ESPI_A), str(bad))
    assert code == 1 and out == ""
    assert err.startswith(f"der: {bad}: ") and len(err.strip().splitlines()) == 1


def test_a_missing_file_is_named_before_any_is_read(capsys, tmp_path):
    code, out, err = _der(capsys, *ARGS, str(ESPI_A), str(tmp_path / "nope.xml"))
    assert (code, out) == (2, "")
    assert err == f"der: error: {tmp_path / 'nope.xml'}: no such file\n"
