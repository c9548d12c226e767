"""Dispatch benchmark: structured fast path vs the monolithic cvxpy formulation.

Prints ONE JSON object. Three measurements, all on synthetic fleets (der_assets.dispatch.synthetic):

- speed:   fast path vs the monolithic full formulation (Clarabel), same problem, same process;
           target >= 100x faster with the minimum shortfall exact.
- quality: full objective of the fast plan vs a reference Clarabel solve of the full formulation;
           target within 0.1%. Two cases: a reachable target (only the secondary terms differ) and
           a spiky unreachable one (exercises the decomposition).
- scale:   fast path at two sizes, each in its own subprocess so peak RSS is its own; target
           largest within 10x the time of the one 10x smaller, under 4 GB.

Usage: python benchmarks/dispatch.py [--quick] [--scale-only] [--speed-size 5000x48] [--quality-size 500x48]
       [--scale-sizes 10000x48,100000x48] [--seed 0]

``--scale-only`` skips the cvxpy solves (minutes) to iterate on the scaling pair; its targets
block only reports the scale targets.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from der_assets.dispatch.maxflow import bipartite_max_flow  # noqa: E402
from der_assets.dispatch.optimizer import check_hard_constraints, evaluate_plan, solve_fast, solve_reference  # noqa: E402
from der_assets.dispatch.synthetic import random_problem  # noqa: E402


def _size(text: str) -> tuple[int, int]:
    n, t = text.lower().split("x")
    return int(n), int(t)


def _peak_rss_mb() -> float:
    """This process's own peak RSS. ru_maxrss survives fork+exec on Linux (a child would report the
    parent's peak), so read VmHWM, which starts afresh with the new address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _spiky(problem, seed: int):
    rng = np.random.default_rng(seed + 1000)
    spikes = rng.random(problem.n_intervals) < 0.3
    problem.target_kw = np.where(spikes, problem.target_kw * rng.uniform(2, 5), problem.target_kw * rng.uniform(0.0, 0.6, problem.n_intervals))
    return problem


def _fast_timed(problem, repeats: int = 5):
    """Best of `repeats` solves: on a shared, noisy machine the minimum is the stable estimate of
    the work (noise only ever adds time); every size is timed the same way."""
    times, plan = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan = solve_fast(problem)
        times.append(time.perf_counter() - t0)
    return plan, min(times)


def speed(n: int, t_n: int, seed: int) -> dict:
    problem = random_problem(n, t_n, seed=seed, target_fraction=1.05)
    plan, fast_s = _fast_timed(problem)
    t0 = time.perf_counter()
    mono = solve_reference(problem, solver="CLARABEL")
    mono_s = time.perf_counter() - t0
    tol = max(1e-3, 1e-6 * problem.target_kwh)
    # Bracket the true minimum: a max-flow on capacities rounded *up* can only over-deliver, so
    # target minus it is a lower bound on any plan's shortfall.
    k = plan.info["units_per_kwh"]
    dt = problem.dt_h
    upper_u, _ = bipartite_max_flow(
        np.ceil(problem.usable_kwh * k).astype(np.int64), np.ceil(problem.cap_kw * dt * k).astype(np.int64), np.ceil(problem.target_kw * dt * k).astype(np.int64)
    )
    lower_bound = problem.target_kwh - upper_u / k
    ev_f, ev_m = evaluate_plan(problem, plan.setpoint_kw), evaluate_plan(problem, mono.setpoint_kw)
    return {
        "size": f"{n}x{t_n}",
        "fast_s": round(fast_s, 4),
        "monolithic_clarabel_s": round(mono_s, 2),
        "speedup": round(mono_s / fast_s, 1),
        "target_kwh": round(problem.target_kwh, 3),
        "fast_shortfall_kwh": round(plan.shortfall_kwh, 6),
        "monolithic_shortfall_kwh": round(mono.shortfall_kwh, 6),
        "shortfall_abs_diff_kwh": float(abs(plan.shortfall_kwh - mono.shortfall_kwh)),
        "shortfall_tolerance_kwh": tol,
        "shortfall_lower_bound_kwh": round(lower_bound, 6),
        "fast_minus_lower_bound_kwh": float(plan.shortfall_kwh - lower_bound),
        # Exact = no worse than the monolithic optimum beyond tol (the ceil bound above is looser).
        "shortfall_exact": bool(plan.shortfall_kwh - mono.shortfall_kwh <= tol),
        "fast_violations": len(check_hard_constraints(problem, plan.setpoint_kw)),
        "monolithic_violations_1e-6": len(check_hard_constraints(problem, mono.setpoint_kw)),
        "fast_objective_usd": round(ev_f["objective_usd"], 4),
        "monolithic_objective_usd": round(ev_m["objective_usd"], 4),
        "fast_info": {k: v for k, v in plan.info.items() if k in ("max_flows", "blocks", "fallback")},
    }


def quality(n: int, t_n: int, seed: int) -> list[dict]:
    out = []
    for name, problem in (
        ("reachable", random_problem(n, t_n, seed=seed, target_fraction=0.8)),
        ("spiky_shortfall", _spiky(random_problem(n, t_n, seed=seed + 1, target_fraction=1.1), seed)),
    ):
        plan = solve_fast(problem)
        ref = solve_reference(problem, solver="CLARABEL", tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
        f = evaluate_plan(problem, plan.setpoint_kw)["objective_usd"]
        r = evaluate_plan(problem, ref.setpoint_kw)["objective_usd"]
        gap = (f - r) / abs(r)
        out.append(
            {
                "case": name,
                "size": f"{n}x{t_n}",
                "fast_objective_usd": round(f, 6),
                "reference_objective_usd": round(r, 6),
                "relative_gap": float(gap),
                "fast_shortfall_kwh": round(plan.shortfall_kwh, 6),
                "reference_shortfall_kwh": round(ref.shortfall_kwh, 6),
                "decomposition_blocks": plan.info["blocks"],
                "within_0.1pct": bool(gap <= 1e-3),
            }
        )
    return out


def child(size: str, seed: int) -> dict:
    n, t_n = _size(size)
    t0 = time.perf_counter()
    problem = random_problem(n, t_n, seed=seed, target_fraction=0.95)
    build_s = time.perf_counter() - t0
    plan, fast_s = _fast_timed(problem)
    shortfall_case = random_problem(n, t_n, seed=seed + 7, target_fraction=1.3)
    _, shortfall_s = _fast_timed(shortfall_case)
    return {
        "size": size,
        "fast_s": round(fast_s, 4),
        "fast_shortfall_case_s": round(shortfall_s, 4),
        "generate_s": round(build_s, 3),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "max_flows": plan.info["max_flows"],
    }


def scale(sizes: list[str], seed: int) -> dict:
    runs = []
    for size in sizes:
        proc = subprocess.run([sys.executable, __file__, "--_child", size, "--seed", str(seed)], capture_output=True, text=True, check=True)
        runs.append(json.loads(proc.stdout))
    small, large = runs[0], runs[-1]
    n_small, n_large = _size(small["size"])[0], _size(large["size"])[0]
    ratio = large["fast_s"] / small["fast_s"]
    ratio_sf = large["fast_shortfall_case_s"] / small["fast_shortfall_case_s"]
    return {
        "runs": runs,
        "size_ratio": n_large / n_small,
        "time_ratio": round(ratio, 2),
        "time_ratio_shortfall_case": round(ratio_sf, 2),
        "meets_10x_scaling": bool(max(ratio, ratio_sf) <= 10.0),
        "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "meets_4gb": bool(max(r["peak_rss_mb"] for r in runs) < 4096),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small smoke run (seconds)")
    ap.add_argument("--scale-only", action="store_true", help="only the scaling pair (no cvxpy solves)")
    ap.add_argument("--speed-size", default=None, help="NxT for fast vs monolithic (default 5000x48)")
    ap.add_argument("--quality-size", default=None, help="NxT for objective vs reference (default 500x48)")
    ap.add_argument("--scale-sizes", default=None, help="comma list NxT (default 10000x48,100000x48)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._child:
        print(json.dumps(child(args._child, args.seed)))
        return
    speed_size = args.speed_size or ("300x48" if args.quick else "5000x48")
    quality_size = args.quality_size or ("100x24" if args.quick else "500x48")
    scale_sizes = (args.scale_sizes or ("1000x48,10000x48" if args.quick else "10000x48,100000x48")).split(",")
    t0 = time.perf_counter()
    sp = None if args.scale_only else speed(*_size(speed_size), args.seed)
    q = None if args.scale_only else quality(*_size(quality_size), args.seed)
    sc = scale(scale_sizes, args.seed)
    targets = {"meets_10x_scaling": sc["meets_10x_scaling"], "meets_4gb": sc["meets_4gb"]}
    if not args.scale_only:
        targets = {
            "meets_100x": bool(sp["speedup"] >= 100),
            "shortfall_exact": sp["shortfall_exact"],
            "objective_within_0.1pct": all(c["within_0.1pct"] for c in q),
            **targets,
        }
    result = {
        "benchmark": "dispatch",
        "quick": bool(args.quick),
        "python": platform.python_version(),
        "machine": {"cpus": __import__("os").cpu_count(), "platform": platform.platform()},
        "speed": sp,
        "quality": q,
        "scale": sc,
        "targets": targets,
        "total_s": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
