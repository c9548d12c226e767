"""Bipartite max-flow for the minimum-shortfall core, on integer energy units.

Network: source -> battery i (capacity: energy it may give) -> interval t (capacity: its power cap
that interval times dt) -> sink (capacity: the fleet target that interval times dt). Without
charging, every plan is such a flow and vice versa, so the max flow is the most energy the fleet
can deliver towards the target, and the minimum shortfall is the target minus it.

``scipy.sparse.csgraph.maximum_flow`` needs int32 capacities and silently wraps on overflow, so
energies are scaled to integer units with ``choose_units_per_kwh`` and capacities are floored
(rounding down keeps every plan feasible; the loss is at most one unit per cut arc).

scipy's Dinic scales worse than linearly with the arc count (cache misses on a 4.8M-arc graph), so
the fleet is first compressed exactly (``compress_fleet``): most batteries are either not energy
bound or have one power cap over the intervals they serve, and those need no node of their own.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    Returns the flow value and the (n, m) battery-to-interval flows (int64). Solved on the exactly
    compressed network, so the cost grows with the batteries that are neither unbound nor flat.
    """
    src_u = np.asarray(src_u, dtype=np.int64)
    arc_u = np.asarray(arc_u, dtype=np.int64)
    sink_u = np.asarray(sink_u, dtype=np.int64)
    if arc_u.size == 0:
        return 0, np.zeros(arc_u.shape, dtype=np.int64)
    comp = compress_fleet(src_u, arc_u, sink_u)
    value, flow_c = csgraph_max_flow(comp.src, comp.arc, sink_u)
    flow = expand_flow(comp, flow_c)
    if int(flow.sum()) != value or (flow > arc_u).any() or (flow.sum(axis=1) > src_u).any():
        raise RuntimeError("expanding the compressed flow broke a capacity; this is a bug")
    return value, flow


def csgraph_max_flow(src_u: np.ndarray, arc_u: np.ndarray, sink_u: np.ndarray) -> tuple[int, np.ndarray]:
    """``bipartite_max_flow`` on the network as given, by scipy's Dinic (no compression).

    The CSR graph is built from numpy index arithmetic; Python lists would dominate the runtime
    at 100,000 batteries.
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


# --------------------------------------------------------------------------------------------
# exact compression of the battery side
#
# A min cut puts a set X of intervals on the sink side and costs sum_{t not in X} D_t plus, per
# battery, min(E_b, sum_{t in X} cap_bt). Two kinds of battery have a cut term that needs no node
# of its own, so a fleet of 100,000 shrinks to the few batteries that are neither:
#
# - "unbound": E_b >= sum_t cap_bt. Its term is the modular sum_{t in X} cap_bt, the same as arcs
#   straight to the intervals; all of them merge into one node with summed arcs.
# - "flat": cap_bt = c_b on a support S (0 elsewhere). With E_b = q*c_b + r (0 <= r < c_b), its term
#   min(E_b, c_b*|X & S|) equals that of two "atoms" with arcs (c_b - r) and r on S and energies
#   q*(c_b - r) and (q+1)*r. Atoms with the same (S, j) merge into one node with arcs sum(w) and
#   energy j*sum(w): the cut function, hence the max-flow value, is unchanged.
#
# Disaggregation is exact too: an atom's share of its node's flow stays within w per interval and
# j*w in total (proportional in floats, McNaughton's wrap-around rule in integers), and a battery's
# two atoms add up within c_b per interval and E_b in total.


@dataclass
class FleetCompression:
    """Index arrays that map a compressed network back to batteries (see the section comment)."""

    n: int
    explicit: np.ndarray  # battery indices kept as their own node (compressed rows 0..len-1)
    unbound: np.ndarray  # battery indices merged into the "unbound" node (row len(explicit))
    flat: np.ndarray  # battery indices split into two atoms each
    atom_node: np.ndarray  # (2, len(flat)) each atom's compressed row (lower, upper atom)
    atom_weight: np.ndarray  # (2, len(flat)) each atom's per-interval cap w (0: no atom)
    atom_lane: np.ndarray  # (2, len(flat)) offset of its lanes within its node (integer wrap-around)
    node_weight: np.ndarray  # per compressed row: sum of its atoms' w (0 for non-atom rows)
    src: np.ndarray  # compressed source capacities
    arc: np.ndarray  # compressed (rows, T) arc capacities
    unbound_arc: np.ndarray  # (len(unbound), T) the unbound batteries' own arcs


def _pattern_ids(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group rows of a boolean matrix: (id per row, one representative row index per id)."""
    packed = np.packbits(mask, axis=1)
    width = -(-packed.shape[1] // 8) * 8
    packed = np.pad(packed, ((0, 0), (0, width - packed.shape[1]))).view(np.uint64)
    if packed.shape[1] == 1:
        _, first, ids = np.unique(packed[:, 0], return_index=True, return_inverse=True)
    else:
        _, first, ids = np.unique(packed, axis=0, return_index=True, return_inverse=True)
    return ids.ravel(), first


def compress_fleet(src: np.ndarray, arc: np.ndarray, sink: np.ndarray) -> FleetCompression:
    """Merge unbound and flat batteries into few nodes; integer inputs stay integer (exact).

    Arcs are capped at their interval's sink capacity and sources at the total sink capacity: no
    flow can use more, and it keeps every capacity within int32 for scipy.
    """
    n, m = arc.shape
    integer = np.issubdtype(arc.dtype, np.integer)
    live = src > 0
    pos = arc > 0
    rowsum = arc.sum(axis=1)
    unbound = live & (src >= rowsum) & pos.any(axis=1)
    c = arc.max(axis=1, initial=0)
    flat = live & ~unbound & (c > 0) & ((arc == c[:, None]) | ~pos).all(axis=1)
    fb = np.flatnonzero(flat)
    support = np.zeros((0, m), dtype=bool)
    if fb.size:
        ids, first = _pattern_ids(pos[fb])
        size = pos[fb[first]].sum(axis=1)
        worth = np.bincount(ids, minlength=first.size) > size  # fewer nodes than batteries, else explicit
        renumber = np.cumsum(worth) - 1
        support = pos[fb[first[worth]]]
        fb, ids = fb[worth[ids]], renumber[ids[worth[ids]]]
    merged = np.zeros(n, dtype=bool)
    merged[fb] = True
    explicit = np.flatnonzero(live & ~unbound & ~merged & pos.any(axis=1))
    ub = np.flatnonzero(unbound)
    n_exp = explicit.size
    first_node = n_exp + (1 if ub.size else 0)
    size = support.sum(axis=1)
    n_nodes = first_node + int(size.sum())
    node_j = np.zeros(n_nodes, dtype=np.int64)
    node_support = np.zeros((n_nodes, m), dtype=bool)
    atom_node = np.zeros((2, fb.size), dtype=np.int64)
    atom_weight = np.zeros((2, fb.size), dtype=arc.dtype)
    if fb.size:
        base = first_node + np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64) - 1  # node of (p, j): base[p] + j
        for p in range(size.size):  # one slice per support pattern (a handful)
            node_j[base[p] + 1 : base[p] + 1 + size[p]] = np.arange(1, size[p] + 1)
            node_support[base[p] + 1 : base[p] + 1 + size[p]] = support[p]
        x, cb = src[fb], c[fb]
        q = x // cb if integer else np.floor(x / cb)
        r = np.clip(x - q * cb, 0, cb)
        q = np.minimum(q, size[ids] - 1).astype(np.int64)  # not unbound: x < c*|S|, so q < |S|
        # The lower atom (j = q) carries no energy when q = 0: give it weight 0 (on the upper node).
        atom_node[0] = base[ids] + np.maximum(q, 1)
        atom_node[1] = base[ids] + q + 1
        atom_weight[0] = np.where(q >= 1, cb - r, 0)
        atom_weight[1] = r
    weight_f = np.bincount(atom_node.ravel(), weights=atom_weight.ravel(), minlength=n_nodes)
    node_weight = np.rint(weight_f).astype(arc.dtype) if integer else weight_f
    nodes, weights = atom_node.ravel(), atom_weight.ravel()
    order = np.argsort(nodes, kind="stable")
    lanes = np.empty_like(weights)
    excl = np.cumsum(weights[order]) - weights[order]
    node_start = np.cumsum(node_weight) - node_weight
    lanes[order] = excl - node_start[nodes[order]]
    lanes = lanes.reshape(atom_node.shape)
    total = sink.sum()
    src_c = np.zeros(n_nodes, dtype=arc.dtype)
    arc_c = np.zeros((n_nodes, m), dtype=arc.dtype)
    src_c[:n_exp] = src[explicit]
    arc_c[:n_exp] = arc[explicit]
    unbound_arc = arc[ub]
    if ub.size:
        arc_c[n_exp] = unbound_arc.sum(axis=0)
        src_c[n_exp] = arc_c[n_exp].sum()
    arc_c[first_node:] = np.where(node_support[first_node:], node_weight[first_node:, None], 0)
    src_c[first_node:] = node_j[first_node:] * node_weight[first_node:]
    arc_c = np.minimum(arc_c, sink[None, :])
    src_c = np.minimum(src_c, total)
    return FleetCompression(n, explicit, ub, fb, atom_node, atom_weight, lanes, node_weight, src_c, arc_c, unbound_arc)


def expand_flow(comp: FleetCompression, flow_c: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Per-battery flows from a flow on the compressed network (same dtype, same interval sums).

    Works in blocks of ``chunk`` batteries: the temporaries stay in cache, which keeps the time
    linear in the fleet size (full-size temporaries cost page faults at 100,000 batteries).
    """
    m = flow_c.shape[1]
    integer = np.issubdtype(flow_c.dtype, np.integer)
    flow = np.zeros((comp.n, m), dtype=flow_c.dtype)
    n_exp = comp.explicit.size
    flow[comp.explicit] = flow_c[:n_exp]
    if comp.unbound.size:
        g, a = flow_c[n_exp], comp.unbound_arc
        if integer:  # fill batteries in turn, interval by interval
            filled = np.zeros(m, dtype=a.dtype)
            for lo in range(0, a.shape[0], chunk):
                part = a[lo : lo + chunk]
                before = filled + np.cumsum(part, axis=0) - part
                flow[comp.unbound[lo : lo + chunk]] = np.clip(g[None, :] - before, 0, part)
                filled += part.sum(axis=0)
        else:
            total = a.sum(axis=0)
            flow[comp.unbound] = a * np.divide(g, total, out=np.zeros(m), where=total > 0)[None, :]
    big_w = np.maximum(comp.node_weight, 1) if integer else np.where(comp.node_weight > 0, comp.node_weight, 1.0)
    cum = np.zeros((flow_c.shape[0], m + 1), dtype=flow_c.dtype)
    np.cumsum(flow_c, axis=1, out=cum[:, 1:])
    for lo in range(0, comp.flat.size, chunk):
        share = 0
        for a in range(2):  # lower and upper atom
            node = comp.atom_node[a, lo : lo + chunk]
            w = comp.atom_weight[a, lo : lo + chunk, None]
            big = big_w[node][:, None]
            if integer:
                # McNaughton: the node's lanes are dealt out cyclically, interval after interval;
                # an atom owns lanes [lane, lane + w). No lane serves twice in one interval
                # (flow <= node weight), and lanes are dealt at most j times in all.
                turns, at = np.divmod(cum[node], big)
                at -= comp.atom_lane[a, lo : lo + chunk, None]
                owned = turns * w + np.clip(at, 0, w, out=at)
                share = share + np.diff(owned, axis=1)
            else:
                share = share + flow_c[node] * (w / big)
        flow[comp.flat[lo : lo + chunk]] = share
    return flow


def max_flow_kwh(source_kwh: np.ndarray, arc_kwh: np.ndarray, sink_kwh: np.ndarray) -> np.ndarray:
    """A maximum flow in kWh (battery x interval), exact up to the refinement's unit.

    Compresses in floats (so flooring to units happens on the few compressed capacities), solves
    in integer units, recovers the flooring loss with ``refine_flow`` on the compressed network,
    and expands proportionally. Cost grows with the batteries that are neither unbound nor flat.
    """
    n, m = arc_kwh.shape
    if n == 0 or m == 0:
        return np.zeros((n, m))
    comp = compress_fleet(np.asarray(source_kwh, dtype=float), np.asarray(arc_kwh, dtype=float), np.asarray(sink_kwh, dtype=float))
    k = choose_units_per_kwh(comp.src, sink_kwh, float(comp.arc.max(initial=0.0)))
    src_u, arc_u, snk_u = (np.floor(x * k).astype(np.int64) for x in (comp.src, comp.arc, sink_kwh))
    value_u, flow_u = csgraph_max_flow(src_u, arc_u, snk_u)
    flow_c = flow_u / k
    # Any augmenting path is bounded by the compressed network's trivial cut minus the flow, and by
    # the flooring loss (at most one unit per arc).
    bound = float(min(sink_kwh.sum(), np.minimum(comp.src, comp.arc.sum(axis=1)).sum()) - flow_c.sum())
    bound = min(bound, (np.count_nonzero(arc_u) + comp.src.size + m + 1) / k)
    if bound > 0:
        flow_c = refine_flow(flow_c, comp.src, comp.arc, sink_kwh, bound)
    flow = expand_flow(comp, flow_c)
    return np.clip(flow, 0.0, arc_kwh, out=flow)
