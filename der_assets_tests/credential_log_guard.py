"""A pytest plugin: no credential of the twin appears in any log of the test run (issue 17 item 4).

The twin's credentials are deterministic per seed (``simulator.service.make_credentials``), so the
values every test's vendor servers accept are known here. Checked:

- every log record created in the test process, as the handlers see it (after redaction): the
  plugin's record factory is the outermost, and httpx's request lines, which carry vendor keys in
  their URLs, are turned on at INFO so the check is not vacuous;
- every log file the run's processes wrote under the session's temporary folder (``der intake``,
  ``der dev``, Dagster compute logs: ``*.log``, ``*.err``, ``*.out``), read at the end.

A hit fails the session, naming the test (or the file) and which credential it was; the value
itself is never printed.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

SEEDS = range(4)
LOG_SUFFIXES = (".log", ".err", ".out")
MAX_FILE_BYTES = 50_000_000

_state: dict = {"hits": [], "test": "(collection)", "pattern": None, "names": {}}


def twin_credentials() -> dict[str, str]:
    """value -> "name (seed N)" for the twin's credentials at the seeds tests use."""
    from der_assets.simulator.service import make_credentials

    out = {}
    for seed in SEEDS:
        for name, value in make_credentials(seed).items():
            if len(value) >= 8:
                out[value] = f"{name} (seed {seed})"
    return out


def find_credentials(text: str) -> list[str]:
    """The names of the twin credentials that occur in ``text``."""
    pattern = _state["pattern"]
    if pattern is None or not text:
        return []
    return sorted({_state["names"][m.group(0)] for m in pattern.finditer(text)})


def _record_text(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:
        message = str(record.msg)
    return "\n".join(t for t in (message, record.exc_text, record.stack_info) if t)


def pytest_configure(config):
    from der_assets import redact

    names = twin_credentials()
    _state["names"] = names
    _state["pattern"] = re.compile("|".join(re.escape(v) for v in sorted(names, key=len, reverse=True)))
    redact.install()  # first, so the check below sees each record as every handler will
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        found = find_credentials(_record_text(record))
        if found:
            _state["hits"].append(f"{_state['test']}: log record {record.name}: {', '.join(found)}")
        return record

    logging.setLogRecordFactory(factory)
    logging.getLogger("httpx").setLevel(logging.INFO)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _state["test"] = item.nodeid
    yield
    _state["test"] = "(between tests)"


def _scan_files(root: Path) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.suffix not in LOG_SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_bytes()[:MAX_FILE_BYTES].decode("utf-8", "replace")
        except OSError:
            continue
        found = find_credentials(text)
        if found:
            hits.append(f"log file {path}: {', '.join(found)}")
    return hits


def pytest_sessionfinish(session, exitstatus):
    hits = list(_state["hits"])
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        try:
            hits += _scan_files(factory.getbasetemp())
        except (OSError, ValueError):
            pass
    if hits:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["a twin credential appeared in a log:", *hits[:50]]
        if reporter is not None:
            reporter.write_line("\n".join(lines), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
