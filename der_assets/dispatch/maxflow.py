"""Bipartite max-flow for the minimum-shortfall core, on integer energy units.

Network: source -> battery i (capacity: energy it may give) -> interval t (capacity: its power cap
that interval times dt) -> sink (capacity: the fleet target that interval times dt). Without
charging, every plan is such a flow and vice versa, so the max flow is the most energy the fleet
can deliver towards the target, and the minimum shortfall is the target minus it.

``scipy.sparse.csgraph.maximum_flow`` needs int32 capacities and silently wraps on overflow, so
energies are scaled to integer units with ``choose_units_per_kwh`` and capacities are floored
(rounding down keeps every plan feasible; the loss is at most one unit per cut arc).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import maximum_flow

INT32_MAX = 2**31 - 1
MAX_UNITS_PER_KWH = 1e6  # 1 mWh resolution is plenty; coarser only when int32 demands it


def choose_units_per_kwh(source_kwh: np.ndarray, sink_kwh: np.ndarray, arc_kwh_max: float) -> float:
    """Largest scale (<= 1e6 units/kWh) at which every capacity and the total flow fit in int32."""
    total = min(float(np.sum(source_kwh)), float(np.sum(sink_kwh)))
    biggest = max(total, float(np.max(source_kwh, initial=0.0)), float(np.max(sink_kwh, initial=0.0)), arc_kwh_max, 1e-12)
    return float(min(MAX_UNITS_PER_KWH, 0.45 * INT32_MAX / biggest))


def bipartite_max_flow(src_u: np.ndarray, arc_u: np.ndarray, sink_u: np.ndarray) -> tuple[int, np.ndarray]:
    """Max flow through source -> n rows -> m columns -> sink, all capacities integer units.

    Returns the flow value and the (n, m) battery-to-interval flows. The CSR graph is built from
    numpy index arithmetic; Python lists would dominate the runtime at 100,000 batteries.
    """
    n, m = arc_u.shape
    src_u = np.asarray(src_u, dtype=np.int64)
    sink_u = np.asarray(sink_u, dtype=np.int64)
    if n == 0 or m == 0:
        return 0, np.zeros((n, m), dtype=np.int64)
    mask = arc_u > 0
    counts = mask.sum(axis=1)
    rows, cols = np.nonzero(mask)
    n_nodes = n + m + 2
    sink = n + m + 1
    # Row 0: source -> batteries; rows 1..n: battery -> intervals; rows n+1..n+m: interval -> sink.
    indptr = np.empty(n_nodes + 1, dtype=np.int64)
    indptr[0] = 0
    indptr[1] = n
    indptr[2 : n + 2] = n + np.cumsum(counts)
    indptr[n + 2 : n + m + 2] = indptr[n + 1] + np.arange(1, m + 1)
    indptr[n + m + 2] = indptr[n + m + 1]
    indices = np.concatenate([np.arange(1, n + 1), cols + n + 1, np.full(m, sink)]).astype(np.int32)
    data = np.concatenate([src_u, arc_u[rows, cols], sink_u])
    if data.size and (data.max() > INT32_MAX or data.min() < 0):
        raise OverflowError("flow capacities do not fit in int32; choose a smaller unit")
    graph = sp.csr_array((data.astype(np.int32), indices, indptr.astype(np.int32)), shape=(n_nodes, n_nodes))
    result = maximum_flow(graph, 0, sink, method="dinic")
    # The flow graph holds our arcs plus the reverse arcs scipy added; read battery -> interval
    # entries straight from its CSR arrays (slicing columns would convert to CSC, ~10x slower).
    flow = result.flow
    f_indptr, f_indices, f_data = flow.indptr, flow.indices, flow.data
    lo, hi = int(f_indptr[1]), int(f_indptr[n + 1])
    row_of = np.repeat(np.arange(n), np.diff(f_indptr[1 : n + 2]))
    col = f_indices[lo:hi].astype(np.int64) - (n + 1)
    val = f_data[lo:hi]
    keep = (col >= 0) & (col < m) & (val > 0)
    dense = np.zeros((n, m), dtype=np.int64)
    dense[row_of[keep], col[keep]] = val[keep]
    return int(result.flow_value), dense


def source_side(src_u: np.ndarray, arc_u: np.ndarray, sink_u: np.ndarray, flow: np.ndarray, max_rounds: int = 10_000):
    """Batteries and intervals reachable from the source in the residual graph of a max flow.

    They are the source side of a minimum cut: a set of batteries that cannot deliver what they
    were asked because the intervals they reach are full. The bipartite structure lets the search
    run as alternating vectorized sweeps instead of a generic BFS.
    """
    fwd = flow < arc_u  # battery -> interval has room
    rev = flow > 0  # interval -> battery can be undone
    batteries = flow.sum(axis=1) < src_u
    intervals = np.zeros(arc_u.shape[1], dtype=bool)
    for _ in range(max_rounds):
        new_intervals = intervals | (fwd & batteries[:, None]).any(axis=0)
        new_batteries = batteries | (rev & new_intervals[None, :]).any(axis=1)
        if new_intervals.sum() == intervals.sum() and new_batteries.sum() == batteries.sum():
            break
        intervals, batteries = new_intervals, new_batteries
    if (intervals & (flow.sum(axis=0) < sink_u)).any():
        raise RuntimeError("residual graph has an augmenting path; the flow was not maximum")
    return batteries, intervals


def refine_flow(flow_kwh: np.ndarray, source_kwh: np.ndarray, arc_kwh: np.ndarray, sink_kwh: np.ndarray, bound_kwh: float) -> np.ndarray:
    """Recover what flooring to integer units lost, by a max-flow on the residual network at a finer unit.

    Every augmenting path of the residual network (leftover source, arc and sink capacity, plus
    undoing existing arc flow) is at most ``bound_kwh`` in total, so capacities are capped there and
    the unit can be ~1000x finer without overflowing int32. Returns the corrected flows (kWh).
    """
    n, m = arc_kwh.shape
    bound_kwh = max(bound_kwh, 1e-12)
    k2 = 0.2 * INT32_MAX / bound_kwh  # every capacity and the total augmenting flow are <= bound

    def units(x):
        return np.floor(np.clip(x, 0.0, bound_kwh) * k2).astype(np.int64)

    src = units(source_kwh - flow_kwh.sum(axis=1))
    fwd = units(arc_kwh - flow_kwh)
    rev = units(flow_kwh)
    snk = units(sink_kwh - flow_kwh.sum(axis=0))
    sink = n + m + 1
    bi, ti = np.nonzero(fwd > 0)
    rb, rt = np.nonzero(rev > 0)
    rows = np.concatenate([np.zeros(n, dtype=np.int64), bi + 1, rt + n + 1, np.arange(m) + n + 1])
    cols = np.concatenate([np.arange(n) + 1, ti + n + 1, rb + 1, np.full(m, sink)])
    data = np.concatenate([src, fwd[bi, ti], rev[rb, rt], snk])
    keep = data > 0
    graph = sp.csr_array((data[keep].astype(np.int32), (rows[keep].astype(np.int32), cols[keep].astype(np.int32))), shape=(n + m + 2, n + m + 2))
    graph.sum_duplicates()
    result = maximum_flow(graph, 0, sink, method="dinic")
    if result.flow_value <= 0:
        return flow_kwh
    f = sp.coo_array(result.flow)
    sel = (f.row >= 1) & (f.row <= n) & (f.col >= n + 1) & (f.col <= n + m)
    delta = np.zeros((n, m))
    delta[f.row[sel] - 1, f.col[sel] - n - 1] = f.data[sel] / k2
    return np.clip(flow_kwh + delta, 0.0, arc_kwh)
