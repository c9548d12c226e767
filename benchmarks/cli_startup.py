"""Benchmark: how long `der` takes to answer --help and a mistake, against a bare interpreter.

Prints ONE JSON object. Each case is run --runs times as a subprocess of this interpreter
(`python -m der_assets.cli ...`, which is what the `der` script runs), interleaved round by
round with two baselines run the same way: `python -c pass` (interpreter start) and
`python -c "import click"` (the floor for a click command). For each case: the median, min and
max wall seconds, its exit code (checked, so a broken command is not timed as a fast one), and
the median as a multiple of each baseline's median. The target is under 1 s on an error path.

    python benchmarks/cli_startup.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

BASELINES = {
    "python -c pass": ["-c", "pass"],
    "python -c 'import click'": ["-c", "import click"],
}
DER = ["-m", "der_assets.cli"]
CASES = {  # name -> (arguments after `der`, expected exit code)
    "der --help": (["--help"], 0),
    "der settle --help": (["settle", "--help"], 0),
    "der capacity estimate --bogus": (["capacity", "estimate", "--bogus"], 2),
    "der capacity estimate (missing registry file)": (
        ["capacity", "estimate", "--registry", "nofile.csv", "--telemetry", "t.csv", "--iso", "pjm",
         "--delivery-year", "2027/2028", "--class", "demand_resource"], 2),
    "der settle (missing statement file)": (
        ["settle", "--iso", "pjm", "--statement", "nofile.csv", "--meter", "m.csv", "--events", "e.json",
         "--registry", "r.csv"], 2),
    "der registry import nofile.csv": (["registry", "import", "nofile.csv"], 2),
    "der baseline (missing meter file)": (
        ["baseline", "--method", "pjm_same_day_3_2", "--meter", "nofile.csv", "--event", "e.json"], 2),
    "der normalize (missing payload file)": (
        ["normalize", "--source", "solaredge", "--endpoint", "energyDetails", "nofile.json"], 2),
    "der instruction submit nofile.json": (["instruction", "submit", "nofile.json"], 2),
}


def _time_once(argv: list[str], cwd: str, env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cwd:
        env = {**os.environ, "DER_HOME": os.path.join(cwd, "home"), "DER_NO_PROGRESS": "1"}
        env.pop("DER_WAREHOUSE_URL", None)
        runs: dict[str, list[float]] = {name: [] for name in [*BASELINES, *CASES]}
        codes: dict[str, set[int]] = {name: set() for name in CASES}
        for _ in range(args.runs):  # interleaved, so a busy moment on a shared machine hits every case alike
            for name, argv in BASELINES.items():
                runs[name].append(_time_once(argv, cwd, env)[0])
            for name, (der_args, _) in CASES.items():
                seconds, code = _time_once([*DER, *der_args], cwd, env)
                runs[name].append(seconds)
                codes[name].add(code)

    medians = {name: statistics.median(times) for name, times in runs.items()}
    python_s, click_s = medians["python -c pass"], medians["python -c 'import click'"]
    cases = {}
    for name, (der_args, expected) in CASES.items():
        times = runs[name]
        cases[name] = {
            "argv": ["der", *der_args],
            "exit_codes": sorted(codes[name]),
            "exit_code_ok": codes[name] == {expected},
            "median_s": round(medians[name], 4),
            "min_s": round(min(times), 4),
            "max_s": round(max(times), 4),
            "x_python": round(medians[name] / python_s, 2),
            "x_import_click": round(medians[name] / click_s, 2),
        }
    print(json.dumps({
        "benchmark": "cli_startup",
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "runs": args.runs,
        "baselines": {name: {"median_s": round(medians[name], 4), "min_s": round(min(runs[name]), 4)}
                      for name in BASELINES},
        "cases": cases,
        "slowest_median_s": round(max(medians[name] for name in CASES), 4),
        "all_under_1_s": all(medians[name] < 1.0 for name in CASES),
        "all_exit_codes_ok": all(c["exit_code_ok"] for c in cases.values()),
    }, indent=1))


if __name__ == "__main__":
    main()
