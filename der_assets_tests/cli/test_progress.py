"""Progress bars go to a terminal's stderr only; stdout and piped output are byte for byte the same."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

ESC = b"\x1b["


def _der(args: list[str], tmp_path: Path, *, tty: bool, env: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Run `der` with stdout to a file and stderr to a pseudo-terminal (tty) or a pipe."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "DER_NO_PROGRESS")}
    full_env.update({"TERM": "xterm", "COLUMNS": "100", **(env or {})})
    command = [sys.executable, "-m", "der_assets.cli", *args]
    out_path = tmp_path / f"stdout-{len(list(tmp_path.iterdir()))}.txt"
    with out_path.open("wb") as out:
        if not tty:
            done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, env=full_env, timeout=120)
            return done.returncode, out_path.read_bytes(), done.stderr
        master, slave = pty.openpty()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=slave, env=full_env)
        os.close(slave)
        err = b""
        while True:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        os.close(master)
        return proc.wait(timeout=120), out_path.read_bytes(), err


def test_demo_fleet_shows_progress_at_a_terminal_and_writes_the_same_file(tmp_path):
    code, out, err = _der(["demo", "fleet", "--sites", "40", "--out", str(tmp_path / "tty.csv")], tmp_path, tty=True)
    assert code == 0
    assert b"drawing 40 sites" in err and b"writing tty.csv" in err and ESC in err
    assert out == f"wrote 40 sites (80 devices) to {tmp_path / 'tty.csv'}\n".encode()

    code, _, piped_err = _der(["demo", "fleet", "--sites", "40", "--out", str(tmp_path / "pipe.csv")], tmp_path,
                              tty=False)
    assert code == 0 and piped_err == b""
    assert (tmp_path / "tty.csv").read_bytes() == (tmp_path / "pipe.csv").read_bytes()


@pytest.mark.parametrize("how", ["--quiet", "DER_NO_PROGRESS", "NO_COLOR"])
def test_progress_can_be_turned_off(tmp_path, how):
    args = ["demo", "fleet", "--sites", "5", "--out", str(tmp_path / "f.csv")]
    env = {}
    if how == "--quiet":
        args = ["--quiet", *args]
    else:
        env[how] = "1"
    code, out, err = _der(args, tmp_path, tty=True, env=env)
    assert code == 0 and out.startswith(b"wrote 5 sites")
    assert err == b""


def test_an_error_under_progress_is_still_one_line(tmp_path):
    bad = tmp_path / "fleet.txt"
    code, out, err = _der(["demo", "fleet", "--sites", "5", "--out", str(bad)], tmp_path, tty=True)
    assert code == 2 and out == b"" and not bad.exists()
    text = err.replace(b"\r\n", b"\n")
    last = [line for line in text.split(b"\n") if line.strip()][-1]
    assert last.endswith(f"der: error: {bad}: unsupported file type '.txt'; use .csv or .xlsx".encode())
    assert b"Traceback" not in err


def test_registry_import_shows_its_phases_and_prints_the_same_summary(tmp_path, isolated_home):
    fleet = tmp_path / "fleet.csv"
    assert _der(["demo", "fleet", "--sites", "30", "--out", str(fleet)], tmp_path, tty=False)[0] == 0
    code, out, err = _der(["registry", "import", "--dry-run", str(fleet)], tmp_path, tty=True)
    assert code == 0
    for phase in (b"reading fleet.csv", b"validating fleet.csv", b"checking fleet.csv"):
        assert phase in err
    code, piped_out, piped_err = _der(["registry", "import", "--dry-run", str(fleet)], tmp_path, tty=False)
    assert (code, piped_err) == (0, b"")
    assert out == piped_out == f"{fleet}: 60 rows valid; would write 150 versions (created 30 subscribers, 30 sites, " \
                               f"30 meters, 60 devices; changed nothing)\n".encode()
