"""A bad STATEMENT.csv: one stderr line naming row and column, exit 1, the raw bytes kept and quarantined,
and no output folder written."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.cli import main
from der_assets_tests.settlement import synthetic as syn

GOOD = ("statement_id,iso,resource_id,event_id,interval_start,interval_s,iso_baseline_kw,iso_load_kw,"
        "iso_reduction_kwh,rate_usd_per_mwh,amount_usd\n"
        "ST1,PJM,AGG-A,E1,2026-07-14T18:00:00Z,3600,9.0,5.0,4.0,3000,12.00\n"
        "ST1,PJM,PJM-BGE,E1,2026-07-14T18:00:00Z,3600,6.0,3.0,3.0,3000,9.00\n")
HEADER, ROW2, ROW3 = GOOD.splitlines()

CASES = {
    "unknown_column": (HEADER + ",note\n" + ROW2 + ",x\n", "row 1, column note: unknown column"),
    "missing_column": (HEADER.replace(",amount_usd", "") + "\n" + ROW2.rsplit(",", 1)[0] + "\n",
                       "row 1, column amount_usd: missing column"),
    "duplicate_line": (GOOD + ROW2 + "\n", "row 4, column interval_start: duplicate line"),
    "unknown_resource": (GOOD + ROW2.replace("AGG-A", "AGG-Q") + "\n", "row 4, column resource_id: unknown resource 'AGG-Q'"),
    "unknown_event": (GOOD + ROW2.replace(",E1,", ",E9,") + "\n", "row 4, column event_id: unknown event 'E9'"),
    "off_grid": (GOOD + ROW2.replace("18:00:00Z", "18:20:00Z") + "\n", "row 4, column interval_start:"),
    "outside_event": (GOOD + ROW2.replace("18:00:00Z", "21:00:00Z") + "\n", "row 4, column interval_start:"),
    "non_numeric_amount": (HEADER + "\n" + ROW2.replace("12.00", "12,00").replace(",12,00", ',"12,00"') + "\n",
                           "row 2, column amount_usd: '12,00' is not a number"),
    "non_numeric_kwh": (HEADER + "\n" + ROW2.replace(",4.0,", ",four,") + "\n", "row 2, column iso_reduction_kwh:"),
    "non_numeric_rate": (HEADER + "\n" + ROW2.replace(",3000,", ",n/a,") + "\n", "row 2, column rate_usd_per_mwh:"),
    "naive_time": (HEADER + "\n" + ROW2.replace("18:00:00Z", "18:00:00") + "\n", "row 2, column interval_start: "),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    meter = syn.meter_frame()
    return {"meter": syn.write_meter(meter, d / "METER.csv"), "events": syn.write_events(d / "EVENTS.json"),
            "registry": syn.write_registry(d / "REGISTRY.csv")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_statement_is_one_line_exit_1_and_quarantined(case, inputs, tmp_path, capsys, isolated_home):
    text, expected = CASES[case]
    statement = tmp_path / "STATEMENT.csv"
    statement.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        main(["settle", "--iso", "pjm", "--statement", str(statement), "--meter", str(inputs["meter"]),
              "--events", str(inputs["events"]), "--registry", str(inputs["registry"]), "--out", str(out)])
    captured = capsys.readouterr()
    assert info.value.code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert expected in lines[0] and "Traceback" not in captured.err
    assert captured.out == ""
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]
    sha = hashlib.sha256(text.encode()).hexdigest()
    engine = sa.create_engine(f"sqlite:///{isolated_home / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT sha256, source, status, error FROM raw_payloads")).mappings().all()
    assert [(r["sha256"], r["source"], r["status"]) for r in rows] == [(sha, "statement", "quarantined")]
    assert expected in rows[0]["error"]
    assert (isolated_home / "raw" / sha[:2] / sha).read_bytes() == text.encode()


def test_good_statement_is_landed_and_marked_parsed(inputs, tmp_path, capsys, isolated_home):
    statement = tmp_path / "STATEMENT.csv"
    statement.write_text(GOOD)
    with pytest.raises(SystemExit) as info:
        main(["settle", "--iso", "pjm", "--statement", str(statement), "--meter", str(inputs["meter"]),
              "--events", str(inputs["events"]), "--registry", str(inputs["registry"])])
    assert info.value.code == 0, capsys.readouterr().err
    engine = sa.create_engine(f"sqlite:///{isolated_home / 'warehouse.sqlite'}")
    with engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM raw_payloads")).scalar_one()
    assert status == "parsed"


def test_parser_names_the_first_problem_and_counts_the_rest():
    from der_assets.errors import ValidationFailed
    from der_assets.settlement.statements.template import parse_statement

    bad = HEADER + "\n" + ROW2.replace(",4.0,", ",x,") + "\n" + ROW3.replace(",3.0,", ",y,") + "\n"
    with pytest.raises(ValidationFailed) as info:
        parse_statement(bad.encode())
    assert str(info.value).startswith("STATEMENT.csv: row 2, column iso_reduction_kwh:")
    assert str(info.value).endswith("(and 1 more problem(s))") and info.value.problems == []
    frame = parse_statement(GOOD.encode())
    assert list(frame["row"]) == [2, 3] and str(frame["interval_start"].dt.tz) == "UTC"
    assert frame["interval_start"].iloc[0] == pd.Timestamp("2026-07-14T18:00:00Z")
