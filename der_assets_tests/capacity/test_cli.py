"""`der capacity estimate` end to end with files, and every bad input as one line and exit 1."""

import json

import numpy as np
import pandas as pd
import pytest

from der_assets.cli import main
from der_assets.registry.files import write_registry_file
from der_assets.telemetry.parsers import to_csv

from .helpers import registry, site, soc_at, window

KEYS = ["iso", "delivery_year", "accreditation_class", "class_rating", "class_rating_source", "class_rating_verified",
        "n_sites", "n_days", "nameplate_kw", "deliverable_p50_kw", "deliverable_p90_kw", "accredited_p90_kw",
        "unavailable_site_days", "losses_kw", "commit_kw", "expected_revenue_usd", "expected_penalty_usd",
        "recommended_commit_kw", "warnings"]


@pytest.fixture()
def files(tmp_path):
    reg = registry(site("A", reserve_pct=0), site("B", export=False, reserve_pct=0), site("C"))
    frames = []
    for d, soc in zip(range(1, 11), np.linspace(10, 100, 10)):
        ws = f"2026-07-{d:02d}T19:00:00Z"
        frames += [soc_at("A", ws, soc), soc_at("B", ws, 100.0), soc_at("C", ws, np.nan if d == 3 else 50.0),
                   window("B", ws, "load_kwh", [1.0] * 4, device="B-M"), window("B", ws, "pv_kwh", [0.0] * 4, device="B-P")]
    reg_path, tel_path = tmp_path / "registry.csv", tmp_path / "telemetry.csv"
    write_registry_file(reg, reg_path)
    tel_path.write_text(to_csv(pd.concat(frames, ignore_index=True)))
    return reg_path, tel_path


def run(capsys, *args):
    with pytest.raises(SystemExit) as exc:
        main(["capacity", "estimate", *map(str, args)])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


BASE = ["--iso", "pjm", "--delivery-year", "2027/2028", "--class", "demand_resource", "--months", "7"]


def test_contract_output_and_files(files, tmp_path, capsys):
    reg, tel = files
    code, out, err = run(capsys, "--registry", reg, "--telemetry", tel, *BASE, "--out", tmp_path / "out")
    assert code == 0, err
    summary = json.loads(out)
    assert list(summary) == KEYS
    assert list(summary["losses_kw"]) == ["reserve", "soc", "power", "non_export", "offline", "opt_out"]
    assert summary["n_sites"] == 3 and summary["n_days"] == 10 and summary["nameplate_kw"] == 30.0
    assert summary["class_rating"] == 0.92 and summary["class_rating_verified"] is True
    assert any("penalty_rate" in w for w in summary["warnings"]) and "penalty_rate" in err
    sites = pd.read_csv(tmp_path / "out" / "sites.csv")
    assert list(sites.columns) == ["site_id", "zone", "day", "deliverable_kw", "reason"]
    assert len(sites) == 30
    assert sites.loc[sites["site_id"] == "B", "deliverable_kw"].eq(4.0).all()  # 1 kWh per 15 min = 4 kW net load
    assert (tmp_path / "out" / "distribution.png").read_bytes()[:4] == b"\x89PNG"


def test_commit_and_risk_flags(files, capsys):
    reg, tel = files
    code, out, _ = run(capsys, "--registry", reg, "--telemetry", tel, *BASE, "--commit-kw", "5",
                       "--capacity-price-usd-mw-day", "100", "--penalty-usd-mwh", "1000", "--event-hours", "10")
    s = json.loads(out)
    assert code == 0 and s["commit_kw"] == 5.0
    assert s["expected_revenue_usd"] == pytest.approx(5 * 0.92 * 100 * 366 / 1000, abs=0.01)


def _one_error_line(code, err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_bad_registry_value(files, tmp_path, capsys):
    reg, tel = files
    text = reg.read_text().splitlines()
    header = text[0].split(",")
    row = text[2].split(",")
    row[header.index("rated_kw")] = "ten"
    text[2] = ",".join(row)
    reg.write_text("\n".join(text) + "\n")
    line = _one_error_line(*run(capsys, "--registry", reg, "--telemetry", tel, *BASE)[::2])
    assert str(reg) in line and "row 3" in line and "column rated_kw" in line


@pytest.mark.parametrize("column,bad,expect", [
    ("interval_start", "2026-07-01 19:00", "column interval_start"),
    ("interval_start", "yesterday", "column interval_start"),
    ("value", "abc", "column value"),
    ("channel", "soc_percent", "column channel"),
])
def test_bad_telemetry_cell(files, capsys, column, bad, expect):
    reg, tel = files
    df = pd.read_csv(tel, dtype=str, keep_default_na=False)
    df.loc[4, column] = bad
    df.to_csv(tel, index=False)
    line = _one_error_line(*run(capsys, "--registry", reg, "--telemetry", tel, *BASE)[::2])
    assert str(tel) in line and "row 6" in line and expect in line


def test_missing_telemetry_column(files, capsys):
    reg, tel = files
    pd.read_csv(tel, dtype=str).drop(columns=["interval_s"]).to_csv(tel, index=False)
    line = _one_error_line(*run(capsys, "--registry", reg, "--telemetry", tel, *BASE)[::2])
    assert "row 1, column interval_s: missing required column" in line


def test_no_history_in_window(files, capsys):
    reg, tel = files
    line = _one_error_line(*run(capsys, "--registry", reg, "--telemetry", tel, *BASE[:-1], "1")[::2])
    assert "no history in the sample window" in line


def test_rating_not_published(files, capsys):
    reg, tel = files
    args = ["--iso", "pjm", "--delivery-year", "2028/2029", "--class", "demand_resource", "--months", "7"]
    line = _one_error_line(*run(capsys, "--registry", reg, "--telemetry", tel, *args)[::2])
    assert "--class-rating" in line
    line = _one_error_line(*run(capsys, "--registry", reg, "--telemetry", tel, *args, "--class-rating", "0.65")[::2])
    assert "--penalty-usd-mwh" in line  # no Net CONE for 2028/29 shipped: the operator gives the rate
    code, out, err = run(capsys, "--registry", reg, "--telemetry", tel, *args, "--class-rating", "0.65",
                         "--penalty-usd-mwh", "2300")
    assert code == 0 and json.loads(out)["class_rating_verified"] is False and "--class-rating" in err


def test_missing_file_is_exit_2(files, tmp_path, capsys):
    reg, _ = files
    code, _, err = run(capsys, "--registry", reg, "--telemetry", tmp_path / "nope.csv", *BASE)
    assert code == 2 and "no such file" in err and "Traceback" not in err
