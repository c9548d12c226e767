"""`make audit`: pip-audit over the installed environment, and a verdict that cannot be a silent pass.

pip-audit asks an advisory database about every installed distribution: by default PyPI's JSON
API (https://pypi.org/pypi/<name>/<version>/json, its `vulnerabilities`), or OSV
(https://api.osv.dev) with AUDIT_SERVICE=osv. Where neither answers, pip-audit either raises a
connection error or, for PyPI, marks each package "not found on PyPI" and still reports "No known
vulnerabilities found" with exit 0. So the verdict here counts what was really audited:

    exit 0  every package was audited and none has a known vulnerability
    exit 1  vulnerabilities found: one line each, with the pin that fixes it
    exit 3  the database could not be reached, or only some packages could be audited: one line
            saying so (never a traceback, never a pass)

The project itself (an editable install) is not on PyPI and is left out (--skip-editable).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

UNREACHABLE = 3
WHERE = ("run `make audit` where the advisory database is reachable: https://pypi.org/pypi/<name>/<version>/json "
         "(AUDIT_SERVICE=pypi, the default) or https://api.osv.dev (AUDIT_SERVICE=osv)")


def verdict(report: dict, service: str) -> tuple[int, list[str]]:
    """(exit code, lines) for pip-audit's JSON report."""
    deps = [d for d in report.get("dependencies", []) if "editable" not in d.get("skip_reason", "")]  # the project
    skipped = [d for d in deps if d.get("skip_reason")]
    audited = [d for d in deps if not d.get("skip_reason")]
    vulnerable = [d for d in audited if d.get("vulns")]
    lines = []
    for dep in vulnerable:
        for vuln in dep["vulns"]:
            fixes = vuln.get("fix_versions") or []
            fix = f"pin {dep['name']}>={min(fixes, key=_version_key)}" if fixes else "no fixed release yet"
            lines.append(f"{dep['name']} {dep['version']}: {vuln['id']} ({fix})")
    if skipped:
        names = ", ".join(d["name"] for d in skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        lines.append(f"audit: could not reach the advisory database ({service}) for {len(skipped)} of {len(deps)} "
                     f"packages ({names}); {WHERE}")
        return UNREACHABLE, lines
    if vulnerable:
        lines.append(f"audit: {sum(len(d['vulns']) for d in vulnerable)} known vulnerabilities in "
                     f"{len(vulnerable)} of {len(deps)} packages ({service})")
        return 1, lines
    return 0, [f"audit: {len(deps)} packages audited against {service}: no known vulnerabilities"]


def _version_key(text: str) -> tuple:
    try:
        from packaging.version import Version

        return (0, Version(text))
    except Exception:  # an unparseable version sorts last, never crashes the verdict
        return (1, text)


def _reason(stderr: str) -> str:
    """The last line pip-audit wrote (a connection error's message), cut to one readable line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else "pip-audit failed without a message"
    return last if len(last) <= 300 else last[:297] + "..."


def run(service: str, timeout_s: int, python: str = sys.executable) -> tuple[int, list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [python, "-m", "pip_audit", "--skip-editable", "--progress-spinner", "off", "-s", service,
               "--timeout", str(timeout_s), "-f", "json", "-o", str(out)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(600, timeout_s * 40))
        except subprocess.TimeoutExpired:
            return UNREACHABLE, [f"audit: pip-audit did not finish against {service}; {WHERE}"]
        if "No module named pip_audit" in done.stderr:
            return 2, ["audit: pip-audit is not installed in this environment (pip install -e '.[dev]')"]
        if not out.exists():
            return UNREACHABLE, [f"audit: could not reach the advisory database ({service}): "
                                 f"{_reason(done.stderr)}; {WHERE}"]
        report = json.loads(out.read_text())
    return verdict(report, service)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", default=os.environ.get("AUDIT_SERVICE", "pypi"), choices=["pypi", "osv"])
    parser.add_argument("--timeout", type=int, default=int(os.environ.get("AUDIT_TIMEOUT_S", "15")),
                        help="socket timeout, seconds")
    args = parser.parse_args(argv)
    code, lines = run(args.service, args.timeout)
    for line in lines:
        print(line, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
