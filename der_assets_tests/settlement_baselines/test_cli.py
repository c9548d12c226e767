"""`der baseline` end to end through der_assets.cli.main, with good and bad files."""

from __future__ import annotations

import datetime as dt
import io
import json

import pandas as pd
import pytest

from der_assets.cli import main
from der_assets.settlement.meter_csv import write_meter_csv

from .helpers import days_between, meter_rows

EVENT = {"event_id": "E1", "iso": "PJM", "start": "2026-07-15T18:00:00Z", "end": "2026-07-15T20:00:00Z",
         "timezone": "America/New_York", "notified_at": "2026-07-15T16:00:00Z", "other_event_days": ["2026-07-10"],
         "plc_kw": 6.1, "loss_factor": 1.05}


def run(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.fixture
def files(tmp_path):
    meter = meter_rows("A", days_between(dt.date(2026, 6, 1), dt.date(2026, 7, 15)),
                       lambda d, h: 1.0 if d == dt.date(2026, 7, 15) and 14 <= h < 16 else 3.0)
    write_meter_csv(meter, tmp_path / "METER.csv")
    (tmp_path / "EVENT.json").write_text(json.dumps(EVENT))
    return tmp_path


def test_baseline_csv_on_stdout_and_unverified_parameters_on_stderr(files, capsys):
    code, out, err = run(["baseline", "--method", "pjm_high_4_of_5", "--meter", str(files / "METER.csv"),
                          "--event", str(files / "EVENT.json")], capsys)
    assert code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["meter_id", "interval_start", "interval_s", "baseline_kw", "load_kw", "reduction_kw"]
    assert frame["interval_start"].tolist() == ["2026-07-15T18:00:00Z", "2026-07-15T19:00:00Z"]
    assert frame["baseline_kw"].tolist() == pytest.approx([3.0, 3.0])
    assert frame["reduction_kw"].tolist() == pytest.approx([2.0, 2.0])
    assert "unverified: pjm_high_4_of_5.lookback_days=45 (source: " in err
    assert all(line.startswith("unverified: ") for line in err.splitlines())


def test_params_override_silences_its_warning_and_a_verified_method_is_quiet_about_it(files, capsys):
    (files / "PARAMS.json").write_text(json.dumps({"lookback_days": 40, "pjm_high_4_of_5.adjustment": "none"}))
    code, out, err = run(["baseline", "--method", "pjm_high_4_of_5", "--meter", str(files / "METER.csv"),
                          "--event", str(files / "EVENT.json"), "--params", str(files / "PARAMS.json")], capsys)
    assert code == 0 and "lookback_days" not in err and "adjustment=" not in err
    code, out, err = run(["baseline", "--method", "pjm_same_day_3_2", "--meter", str(files / "METER.csv"),
                          "--event", str(files / "EVENT.json")], capsys)
    assert code == 0 and "pre_window_h" not in err  # verified-secondary: no warning


def test_missing_meter_values_are_empty_cells_not_zeros(files, capsys):
    text = (files / "METER.csv").read_text().splitlines()
    kept = [line for line in text if "2026-07-15T18:15:00Z" not in line]
    (files / "METER.csv").write_text("\n".join(kept) + "\n")
    code, out, err = run(["baseline", "--method", "pjm_fsl", "--meter", str(files / "METER.csv"),
                          "--event", str(files / "EVENT.json")], capsys)
    assert code == 0
    first = out.splitlines()[1].split(",")
    assert first[4] == "" and first[5] == ""  # load and reduction unknown for 18:00Z


@pytest.mark.parametrize("bad_line, where", [
    ("A,2026-07-15T18:07:00Z,900,0.5", "row 2, column interval_start"),
    ("A,yesterday,900,0.5", "row 2, column interval_start"),
    ("A,2026-07-15T18:00:00Z,900,lots", "row 2, column grid_kwh"),
    ("A,2026-07-15T18:00:00Z,7,0.5", "row 2, column interval_s"),
])
def test_bad_meter_row_is_one_line_naming_file_row_and_column(files, capsys, bad_line, where):
    (files / "BAD.csv").write_text("meter_id,interval_start,interval_s,grid_kwh\n" + bad_line + "\n")
    code, out, err = run(["baseline", "--method", "pjm_fsl", "--meter", str(files / "BAD.csv"),
                          "--event", str(files / "EVENT.json")], capsys)
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "BAD.csv" in err and where in err
    assert "Traceback" not in err


def test_duplicate_and_unknown_column(files, capsys):
    (files / "DUP.csv").write_text("meter_id,interval_start,interval_s,grid_kwh\nA,2026-07-15T18:00:00Z,900,1\n"
                                   "A,2026-07-15T18:00:00Z,900,2\n")
    code, _, err = run(["baseline", "--method", "pjm_fsl", "--meter", str(files / "DUP.csv"),
                        "--event", str(files / "EVENT.json")], capsys)
    assert code == 1 and "row 3, column interval_start: duplicate" in err and "first at row 2" in err
    (files / "COL.csv").write_text("meter_id,interval_start,interval_s,grid_kwh,site\n")
    code, _, err = run(["baseline", "--method", "pjm_fsl", "--meter", str(files / "COL.csv"),
                        "--event", str(files / "EVENT.json")], capsys)
    assert code == 1 and "row 1, column 'site': unknown column" in err


def test_bad_event_and_params_are_one_line(files, capsys):
    (files / "E2.json").write_text(json.dumps({**EVENT, "start": "2026-07-15 18:00"}))
    code, _, err = run(["baseline", "--method", "pjm_fsl", "--meter", str(files / "METER.csv"),
                        "--event", str(files / "E2.json")], capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and "E2.json: key 'start'" in err
    (files / "P.json").write_text(json.dumps({"lookbak_days": 3}))
    code, _, err = run(["baseline", "--method", "pjm_high_4_of_5", "--meter", str(files / "METER.csv"),
                        "--event", str(files / "EVENT.json"), "--params", str(files / "P.json")], capsys)
    assert code == 1 and "P.json: key 'pjm_high_4_of_5.lookbak_days': unknown parameter" in err
    code, _, err = run(["baseline", "--method", "pjm_fsl", "--meter", str(files / "NOPE.csv"),
                        "--event", str(files / "EVENT.json")], capsys)
    assert code == 2 and "no such file" in err


def test_events_json_errors_name_the_event_index(tmp_path):
    from der_assets.errors import ValidationFailed
    from der_assets.settlement.events import read_events

    (tmp_path / "EVENTS.json").write_text(json.dumps([{**EVENT, "method": "pjm_fsl"}, {**EVENT, "event_id": "E2"}]))
    with pytest.raises(ValidationFailed, match=r"EVENTS.json: event 1: key 'method': missing"):
        read_events(tmp_path / "EVENTS.json")
    (tmp_path / "EVENTS.json").write_text(json.dumps([{**EVENT, "method": "pjm_fsl", "other_event_days": ["x"]}]))
    with pytest.raises(ValidationFailed, match=r"event 0: key 'other_event_days'"):
        read_events(tmp_path / "EVENTS.json")
    (tmp_path / "EVENTS.json").write_text(json.dumps([{**EVENT, "method": "pjm_fsl"}]))
    [e] = read_events(tmp_path / "EVENTS.json")
    assert e.start == pd.Timestamp("2026-07-15T18:00Z") and e.other_event_days == (dt.date(2026, 7, 10),)


def test_baseline_accuracy_command(tmp_path, capsys):
    meter = meter_rows("A", days_between(dt.date(2026, 4, 1), dt.date(2026, 7, 15)),
                       lambda d, h: 2.0 + (d.toordinal() % 3) * 0.1)
    write_meter_csv(meter, tmp_path / "METER.csv")
    code, out, err = run(["baseline-accuracy", "--meter", str(tmp_path / "METER.csv"), "--timezone",
                          "America/New_York", "--window", "14-18", "--recommend"], capsys)
    assert code == 0
    rec = pd.read_csv(io.StringIO(out))
    assert rec["method"].iloc[0] in ("pjm_high_4_of_5", "pjm_same_day_3_2", "pjm_match_day")
    code, _, err = run(["baseline-accuracy", "--meter", str(tmp_path / "METER.csv"), "--timezone", "Mars/Base"], capsys)
    assert code == 2 and "timezone" in err


def test_params_forms_and_type_checks():
    from der_assets.errors import ValidationFailed
    from der_assets.settlement.baselines import method_params

    flat = method_params("pjm_gld", {"plc_cap": False, "pjm_high_4_of_5.lookback_days": 30})
    nested = method_params("pjm_gld", {"pjm_gld": {"plc_cap": False}, "pjm_high_4_of_5": {"lookback_days": 30}})
    assert flat == nested
    assert flat["plc_cap"].value is False and flat["pjm_high_4_of_5.lookback_days"].value == 30
    assert flat["plc_cap"].tag == "override"
    with pytest.raises(ValidationFailed, match="expected int"):
        method_params("pjm_high_4_of_5", {"lookback_days": "45"})
    with pytest.raises(ValidationFailed, match="unknown method"):
        method_params("pjm_high_4_of_5", {"pjm_bogus.x": 1})
