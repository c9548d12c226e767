"""The fuzz run behind `make fuzz`: hypothesis-generated mutations of every seed, judged by properties.check.

    .venv/bin/python -m der_assets_tests.fuzz.run --cases 20000 [--seed 17] [--agree-every 10]
        [--time-limit 10] [--memory-limit-mb 2048] [--save-failures DIR]

Prints one JSON object: cases, per-outcome counts (rows, parse errors, unhandled exceptions,
hangs, memory), non-finite values, invented rows, fast/one-body disagreements, agreement checks
made, the slowest case, peak RSS and seconds. Exit 1 when any case failed a property. Each
failing case is written to --save-failures as a corpus file (fuzz/corpus/ keeps them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import sys
import time
import warnings
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed

from .mutations import apply, cases
from .properties import Verdict, check, corpus_entry, dumps, has_fast_path
from .seeds import all_seeds


def _vm_size_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def cap_memory(limit_mb: int) -> None:
    """Cap the address space at what the process maps now plus limit_mb: a case that would blow up
    gets a MemoryError (recorded as `memory`) instead of taking the machine."""
    cap = _vm_size_bytes() + limit_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, resource.getrlimit(resource.RLIMIT_AS)[1]))


def run(n_cases: int, *, seed: int = 17, agree_every: int = 10, time_limit_s: float = 10.0,
        save_failures: Path | None = None, seeds=None) -> dict:
    seeds = tuple(seeds) if seeds is not None else all_seeds()
    by_name = {s.name: s for s in seeds}
    stats = {"cases": 0, "rows": 0, "parse_errors": 0, "unhandled_exceptions": 0, "hangs": 0, "memory": 0,
             "non_finite_values": 0, "invented_rows": 0, "disagreements": 0, "agreement_checks": 0,
             "slowest_case_s": 0.0, "failures": []}
    key = {"rows": "rows", "parse_error": "parse_errors", "unhandled": "unhandled_exceptions", "hang": "hangs",
           "memory": "memory"}
    started = time.perf_counter()

    @settings(max_examples=n_cases, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @hypothesis_seed(seed)
    @given(cases(seeds))
    def one(case):
        name, ops, raw_ops = case
        s = by_name[name]
        payload = apply(s, ops, raw_ops)
        agree = agree_every > 0 and has_fast_path(s) and stats["cases"] % agree_every == 0
        try:
            verdict = check(s, payload, time_limit_s=time_limit_s, agree=agree)
        except Exception as exc:  # noqa: BLE001 - a bug in the judge must not cost the run its figures
            verdict = Verdict("unhandled", 0.0, error=f"oracle: {type(exc).__name__}: {exc}"[:300])
        stats["cases"] += 1
        stats[key[verdict.outcome]] += 1
        stats["non_finite_values"] += verdict.non_finite
        stats["invented_rows"] += verdict.invented
        stats["agreement_checks"] += int(agree)
        stats["disagreements"] += int(verdict.disagreement is not None)
        stats["slowest_case_s"] = max(stats["slowest_case_s"], round(verdict.seconds, 3))
        if verdict.failed:
            why = verdict.why()
            stats["failures"].append({"seed": name, "ops": ops, "raw_ops": raw_ops, "why": why[:300]})
            if save_failures is not None:
                save_failures.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256(payload).hexdigest()[:12]
                (save_failures / f"{s.source}__{digest}.json").write_text(dumps(corpus_entry(s, payload, why)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one()
    stats["seconds"] = round(time.perf_counter() - started, 1)
    stats["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    stats["seeds"] = len(seeds)
    return stats


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--agree-every", type=int, default=10,
                    help="compare normalize_day with normalize_day_reference on every Nth case that has a fast path")
    ap.add_argument("--time-limit", type=float, default=10.0, help="seconds one case may take (a hang beyond)")
    ap.add_argument("--memory-limit-mb", type=int, default=2048, help="address space a case may add (0: no cap)")
    ap.add_argument("--save-failures", type=Path, default=None)
    ap.add_argument("--show-failures", type=int, default=20)
    args = ap.parse_args(argv)
    all_seeds()  # read the fixtures before the cap
    if args.memory_limit_mb:
        cap_memory(args.memory_limit_mb)
    stats = run(args.cases, seed=args.seed, agree_every=args.agree_every, time_limit_s=args.time_limit,
                save_failures=args.save_failures)
    failures = stats.pop("failures")
    stats["failed_cases"] = len(failures)
    stats["first_failures"] = failures[: args.show_failures]
    print(json.dumps(stats, indent=1, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
