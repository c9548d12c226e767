"""A registry file still being written is refused, never imported as complete: one that ends
mid-row, and one whose size or modification time moves while it is read."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from der_assets.cli import main
from der_assets.errors import UserError
from der_assets.registry.reading import read_table
from der_assets.warehouse.schema import registry_imports

from .helpers import demo_text, write_demo, write_text

ADVICE = "it may still be being written: write it under another name and rename it into place"


def _der(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
    return info.value.code, capsys.readouterr().err


def _mid_row_cut(content: bytes, rows: int) -> bytes:
    """The first `rows` data rows and half of the next one: where a copy in progress stands."""
    lines = content.split(b"\n")
    head = b"\n".join(lines[: rows + 1]) + b"\n"
    return head + lines[rows + 1][: len(lines[rows + 1]) // 2]


@pytest.fixture(scope="module")
def full_file(tmp_path_factory):
    path = write_demo(tmp_path_factory.mktemp("fleet") / "fleet.csv", n_sites=4000)
    assert path.read_bytes().count(b"\n") == 8001  # 8,000 device rows and the header
    return path.read_bytes()


def test_a_file_cut_mid_row_is_refused_and_nothing_is_written(capsys, tmp_path, full_file):
    from der_assets import config
    from der_assets.warehouse import connect_warehouse

    for rows in (2000, 3200, 6000):  # where three half-copied files stood
        path = tmp_path / f"fleet_{rows}.csv"
        path.write_bytes(_mid_row_cut(full_file, rows))
        code, err = _der(capsys, "registry", "import", str(path))
        assert code == 2
        assert err == (f"der: error: {path}: row {rows + 2}: the file ends mid-row (no newline after the last row); "
                       f"{ADVICE}\n")
    with connect_warehouse(config.warehouse_url()).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(registry_imports)).scalar_one() == 0


def test_an_open_quoted_cell_or_a_short_last_row_is_mid_row(tmp_path):
    text = demo_text(2)
    text.loc[3, "address"] = "12 Main St\nUnit 4"  # a quoted cell over two lines
    whole = write_text(text, tmp_path / "whole.csv").read_bytes()
    cut = tmp_path / "open_quote.csv"
    cut.write_bytes(whole[: whole.index(b"Unit 4")])  # ends just after the newline inside the quotes
    with pytest.raises(UserError, match=r"row 5: the file ends mid-row \(a quoted cell is not closed\)"):
        read_table(cut)
    short = tmp_path / "short.csv"
    lines = write_text(demo_text(2), tmp_path / "plain.csv").read_text().splitlines(keepends=True)
    short.write_text("".join(lines[:-1]) + ",".join(lines[-1].split(",")[:5]) + "\n")
    with pytest.raises(UserError, match=r"row 5: the file ends mid-row \(5 cells where the header has 38\)"):
        read_table(short)
    blank_end = tmp_path / "blank_end.csv"
    blank_end.write_bytes(whole + b"\n,,,\n")  # blank lines after the last row are fine
    assert len(read_table(blank_end).rows) == 4
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(whole.replace(b"\n", b"\r\n").replace(b"St\r\nUnit", b"St\nUnit"))
    assert len(read_table(crlf).rows) == 4


def test_a_file_that_grows_while_it_is_read_is_refused(tmp_path, monkeypatch, full_file):
    """The writer's next chunk lands between the reader's start and end."""
    from der_assets import inputs

    path = tmp_path / "fleet.csv"
    half = len(full_file) // 2
    half = full_file.index(b"\n", half) + 1  # a whole-row prefix: only the size check can catch it
    path.write_bytes(full_file[:half])
    real_read = inputs._read_all

    def read_while_written(f):
        data = real_read(f)
        with path.open("ab") as writer:
            writer.write(full_file[half:half + 4096])
        return data

    monkeypatch.setattr(inputs, "_read_all", read_while_written)
    with pytest.raises(UserError) as info:
        read_table(path)
    assert str(info.value) == (f"{path}: changed while it was read ({half} bytes, then {half + 4096}); {ADVICE}")


WRITER = textwrap.dedent("""
    import sys, time
    src, dst = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    ends, at = [], 0
    while at < len(data):
        at = min(at + 65536, len(data))
        while at < len(data) and data[at - 1:at] == b"\\n":
            at += 1  # every pause falls mid-row, as a copy's blocks do
        ends.append(at)
    with open(dst, "wb") as f:
        start = 0
        for end in ends:
            f.write(data[start:end]); f.flush(); start = end
            time.sleep(0.02)
""")


def test_a_file_being_copied_in_is_refused_until_the_copy_ends(tmp_path, full_file):
    """A real writer process copies the file in blocks while the reader runs against it."""
    source = tmp_path / "source.csv"
    source.write_bytes(full_file)
    target = tmp_path / "fleet.csv"
    target.write_bytes(b"")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(source), str(target)])
    refused = 0
    try:
        while writer.poll() is None:
            try:
                table = read_table(target)
            except UserError as exc:
                assert ADVICE in str(exc) or "empty file" in str(exc), exc
                refused += 1
            else:
                assert len(table.rows) == 8000 and table.content == full_file  # whole, or not at all
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0 and refused >= 3
    assert len(read_table(target).rows) == 8000


def test_other_cli_inputs_that_grow_while_read_are_refused(capsys, tmp_path, monkeypatch):
    """The same check on a meter CSV (der settle, der baseline) and a vendor payload (der normalize)."""
    from der_assets import inputs
    from der_assets.settlement.meter_csv import read_meter_csv

    meter = tmp_path / "meter.csv"
    meter.write_text("meter_id,interval_start,interval_s,grid_kwh\nM1,2026-07-15T00:00:00Z,900,0.25\n")
    payload = tmp_path / "energy.json"
    payload.write_text('{"energyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh", "meters": []}}')
    real_read = inputs._read_all

    def read_while_written(f):
        data = real_read(f)
        with open(f.name, "ab") as writer:
            writer.write(b"M1,2026-07-15T00:15:00Z,900,0.5\n")
        return data

    monkeypatch.setattr(inputs, "_read_all", read_while_written)
    # 77 bytes: the header 44 and a row 33; the writer adds a row of 32
    with pytest.raises(UserError, match=rf"^{meter}: changed while it was read \(77 bytes, then 109\); "):
        read_meter_csv(meter)
    code, err = _der(capsys, "normalize", "--source", "solaredge", "--endpoint", "energyDetails", "--site-id", "S1",
                     str(payload))
    assert code == 2 and err.startswith(f"der: error: {payload}: changed while it was read (")
