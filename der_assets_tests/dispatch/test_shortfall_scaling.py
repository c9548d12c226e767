"""The compressed max-flow (unbound and flat batteries merged) against hand values and scipy.

Min cut of source -> battery (E_b) -> interval (cap_bt) -> sink (D_t): pick the set A of
intervals whose sink arcs are cut; it costs sum_{t in A} D_t + sum_b min(E_b, sum_{t not in A} cap_bt).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.dispatch import check_hard_constraints, solve_fast
from der_assets.dispatch.maxflow import _kwh_flow, bipartite_max_flow, compress_fleet, csgraph_max_flow, max_flow_kwh, warm_max_flow
from der_assets.dispatch.synthetic import random_problem

PROPS = settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def min_cut(src, arc, sink) -> float:
    """The max-flow value by brute force over every set of cut sink arcs (tiny T only)."""
    m = arc.shape[1]
    best = np.inf
    for bits in itertools.product([False, True], repeat=m):
        cut = np.array(bits, dtype=bool)
        best = min(best, float(sink[cut].sum() + np.minimum(src, arc[:, ~cut].sum(axis=1)).sum()))
    return best


def assert_feasible(flow, src, arc, sink, tol=0):
    assert (flow >= -tol).all()
    assert (flow <= arc + tol).all()
    assert (flow.sum(axis=1) <= src + tol).all()
    assert (flow.sum(axis=0) <= sink + tol).all()


def test_hand_case_mixed_batteries():
    # A: 5 kWh, 2 kW flat; B: 3 kWh, 1 kW flat; C: 10 kWh >= its caps' sum 6, so power-bound only.
    # Cutting interval 1's sink arc (1 kWh): A gives min(5, 6) = 5, B min(3, 3) = 3, C 1+0+3 = 4,
    # so the cut is 1 + 12 = 13 of a 14 kWh target: 1 kWh short. Every other cut is >= 13.
    src = np.array([5, 3, 10])
    arc = np.array([[2, 2, 2, 2], [1, 1, 1, 1], [1, 2, 0, 3]])
    sink = np.array([4, 1, 3, 6])
    value, flow = bipartite_max_flow(src, arc, sink)
    assert value == 13 == min_cut(src, arc, sink)
    assert flow.sum() == 13
    assert_feasible(flow, src, arc, sink)
    assert flow[2, 2] == 0  # C has no cap in interval 2


def test_hand_case_flat_fleet_is_k_smallest_targets():
    # Six batteries, each one cap c_b in every interval and less energy than 4*c_b: a cut of k sink
    # arcs costs the k smallest targets plus G(4 - k), G(m) = sum_b min(E_b, c_b*m):
    # E = 5, 1, 7, 3, 2, 2 and c = 2, 2, 2, 1, 1, 1 give G = 0, 8, 15, 19, 20 for m = 0..4.
    # Targets 1, 2, 6, 9 (sorted prefix sums 0, 1, 3, 9, 18): k = 0..4 cost 20, 20, 18, 17, 18,
    # so the fleet delivers 17 of 18 kWh: 1 kWh short.
    src = np.array([5, 1, 7, 3, 2, 2])
    arc = np.repeat(np.array([2, 2, 2, 1, 1, 1])[:, None], 4, axis=1)
    sink = np.array([1, 2, 6, 9])
    comp = compress_fleet(src, arc, sink)
    assert comp.explicit.size == 0 and comp.unbound.size == 0
    assert comp.arc.shape[0] == 4  # one node per atom level j = 1..4 instead of six batteries
    value, flow = bipartite_max_flow(src, arc, sink)
    assert value == 17 == min_cut(src, arc, sink)
    assert_feasible(flow, src, arc, sink)
    # Floats: the same network in kWh, solved on the compressed network and expanded.
    f_kwh = max_flow_kwh(src * 0.1, arc * 0.1, sink * 0.1)
    assert f_kwh.sum() == pytest.approx(1.7, abs=1e-9)
    assert_feasible(f_kwh, src * 0.1, arc * 0.1, sink * 0.1, tol=1e-12)


@st.composite
def networks(draw, integer: bool = True):
    """Small fleets with repeated cap patterns, so every kind of battery appears."""
    n = draw(st.integers(1, 14))
    m = draw(st.integers(1, 5))
    kinds = draw(st.lists(st.sampled_from(["flat", "flat_window", "free"]), min_size=n, max_size=n))
    c = np.array(draw(st.lists(st.integers(0, 6), min_size=n, max_size=n)))
    window = np.array(draw(st.lists(st.integers(1, m), min_size=n, max_size=n)))
    free = np.array(draw(st.lists(st.integers(0, 6), min_size=n * m, max_size=n * m))).reshape(n, m)
    arc = np.repeat(c[:, None], m, axis=1)
    for i, kind in enumerate(kinds):
        if kind == "flat_window":
            arc[i, window[i] :] = 0
        elif kind == "free":
            arc[i] = free[i]
    src = np.array(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)))
    sink = np.array(draw(st.lists(st.integers(0, 20), min_size=m, max_size=m)))
    return src, arc, sink


@PROPS
@given(networks())
def test_compressed_max_flow_equals_scipy(net):
    src, arc, sink = net
    value, flow = bipartite_max_flow(src, arc, sink)
    plain, _ = csgraph_max_flow(src, arc, sink)
    assert value == plain == min_cut(src, arc, sink)
    assert flow.dtype == np.int64 and flow.sum() == value
    assert_feasible(flow, src, arc, sink)


@PROPS
@given(networks(), st.floats(1e-3, 10.0))
def test_max_flow_kwh_is_the_exact_min_cut(net, scale):
    src, arc, sink = (x * scale for x in net)
    flow = max_flow_kwh(src, arc, sink)
    tol = 1e-9 * max(1.0, float(sink.sum()))
    assert flow.sum() == pytest.approx(min_cut(src, arc, sink), abs=tol)
    assert_feasible(flow, src, arc, sink, tol=tol)


@pytest.mark.parametrize("fraction, seed", [(0.95, 0), (1.3, 7)])
def test_fast_path_on_a_mid_size_fleet_matches_scipy(fraction, seed):
    # 3,000 batteries: mostly flat or power-bound, the rest kept explicit. The shortfall must
    # be no more than the uncompressed integer max flow's (which loses up to a unit per cut arc).
    problem = random_problem(3000, 24, seed=seed, target_fraction=fraction)
    plan = solve_fast(problem)
    assert check_hard_constraints(problem, plan.setpoint_kw) == []
    k = plan.info["units_per_kwh"]
    dt = problem.dt_h
    plain, _ = csgraph_max_flow(
        np.floor(problem.usable_kwh * k).astype(np.int64),
        np.floor(problem.cap_kw * dt * k).astype(np.int64),
        np.floor(problem.target_kw * dt * k).astype(np.int64),
    )
    assert plan.shortfall_kwh <= problem.target_kwh - plain / k + 1e-9
    # info["max_flow_kwh"] is the integer max flow, or (a shortfall where every battery gives all
    # it can, solved straight in kWh) the exact one, which flooring can only undercut.
    assert plan.info["max_flow_kwh"] * k >= plain - 0.5
    assert plan.info["max_flow_kwh"] == pytest.approx(problem.target_kwh - plan.shortfall_kwh, abs=1e-6 * problem.target_kwh)


@PROPS
@given(networks(), st.integers(0, 14))
def test_warm_start_certificate_is_exact(net, n_greedy):
    # Greedy rows first, the rest by Dinic, kept only when it reaches a cut bound; else the whole
    # network by Dinic. Either way the value must be the brute-force min cut, and feasible.
    src, arc, sink = net
    n_greedy = min(n_greedy, arc.shape[0])
    calls = []

    def solve(s, a, d):
        calls.append(a.shape[0])
        return csgraph_max_flow(s, a, d)[1]

    flow = warm_max_flow(src, arc, sink, n_greedy, solve)
    assert flow.sum() == min_cut(src, arc, sink)
    assert_feasible(flow, src, arc, sink)
    # Floats, same network: certified to within tol, or solved whole.
    flow_f = warm_max_flow(src * 0.3, arc * 0.3, sink * 0.3, n_greedy, _kwh_flow, tol=1e-12)
    assert flow_f.sum() == pytest.approx(0.3 * min_cut(src, arc, sink), abs=1e-9 * max(1.0, float(sink.sum())))
    assert_feasible(flow_f, src * 0.3, arc * 0.3, sink * 0.3, tol=1e-9)
