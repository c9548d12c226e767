"""`make audit` never passes silently: a report is a pass only when every package was audited; an
unreachable advisory database is one line and exit 3, never a traceback or a "no vulnerabilities"."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "audit.py"
spec = importlib.util.spec_from_file_location("audit_tool", SCRIPT)
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

EDITABLE = {"name": "der-assets", "skip_reason": "distribution marked as editable"}


def test_every_package_audited_and_clean_passes():
    report = {"dependencies": [EDITABLE, {"name": "requests", "version": "2.34.2", "vulns": []},
                               {"name": "lxml", "version": "6.2.1", "vulns": []}]}
    assert audit.verdict(report, "pypi") == (0, ["audit: 2 packages audited against pypi: no known vulnerabilities"])


def test_a_vulnerability_names_the_lowest_fixed_release_to_pin():
    report = {"dependencies": [
        {"name": "starlette", "version": "0.40.0", "vulns": [
            {"id": "GHSA-xxxx", "fix_versions": ["0.47.2", "0.9.9", "0.10.1"]},  # 0.9.9 < 0.10.1 < 0.47.2
            {"id": "PYSEC-2", "fix_versions": []}]},
        {"name": "orjson", "version": "3.13.0", "vulns": []}]}
    code, lines = audit.verdict(report, "osv")
    assert code == 1
    assert lines == ["starlette 0.40.0: GHSA-xxxx (pin starlette>=0.9.9)", "starlette 0.40.0: PYSEC-2 (no fixed release yet)",
                     "audit: 2 known vulnerabilities in 1 of 2 packages (osv)"]


@pytest.mark.parametrize("audited", [0, 1])
def test_packages_the_database_did_not_answer_for_are_not_a_pass(audited):
    """What pip-audit reports (exit 0, "No known vulnerabilities found") when PyPI's JSON API is not reachable."""
    skipped = [{"name": n, "skip_reason": f"Dependency not found on PyPI and could not be audited: {n} (1.0)"}
               for n in ("aiohttp", "anyio", "dagster", "lxml", "numpy", "pandas")]
    clean = [{"name": "six", "version": "1.17.0", "vulns": []}][:audited]
    code, lines = audit.verdict({"dependencies": [EDITABLE, *skipped, *clean]}, "pypi")
    assert code == 3 and len(lines) == 1
    assert lines[0].startswith(f"audit: could not reach the advisory database (pypi) for 6 of {6 + audited} packages "
                               "(aiohttp, anyio, dagster, lxml, numpy, ...); run `make audit` where")


def test_offline_is_one_line_and_exit_3(tmp_path):
    """The real pip-audit, every request sent to a loopback port nothing listens on."""
    pytest.importorskip("pip_audit")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proxy = f"http://127.0.0.1:{port}"
    env = {**os.environ, "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy, "NO_PROXY": "", "PIP_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(SCRIPT), "--timeout", "5"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 3, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("audit: could not reach the advisory database (pypi): ")
    assert "run `make audit` where the advisory database is reachable" in done.stderr
