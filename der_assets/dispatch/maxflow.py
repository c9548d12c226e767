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


def bipartite_max_flow(
    src_u: np.ndarray, arc_u: np.ndarray, sink_u: np.ndarray, *, stats: ArcStats | None = None, out_scale: float | None = None
) -> tuple[int, np.ndarray]:
    """Max flow through source -> n rows -> m columns -> sink, all capacities integer units.

    Returns the flow value and the (n, m) battery-to-interval flows (int64; or, with
    ``out_scale``, flow * out_scale as floats). Solved on the exactly compressed network, so the
    cost grows with the batteries that are neither unbound nor flat. ``arc_u`` may be int32;
    ``stats`` (``arc_row_stats(arc_u)``) saves a pass over it when several sources share it.
    """
    src_u = np.asarray(src_u, dtype=np.int64)
    arc_u = np.asarray(arc_u)
    if not np.issubdtype(arc_u.dtype, np.integer):
        arc_u = arc_u.astype(np.int64)
    sink_u = np.asarray(sink_u, dtype=np.int64)
    if arc_u.size == 0:
        return 0, np.zeros(arc_u.shape, dtype=np.int64 if out_scale is None else float)
    comp = compress_fleet(src_u, arc_u, sink_u, stats=stats)
    value, flow_c = compressed_max_flow(comp, sink_u)
    flow = expand_flow(comp, flow_c, out_scale=out_scale, check=(src_u, arc_u))
    if int(flow_c.sum()) != value:
        raise RuntimeError("compressed flow does not add up to its value; this is a bug")
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


#
# The per-battery work runs over blocks of ``BLOCK`` batteries: at 100,000 x 48 a full-size
# temporary is 19-38 MB, past the cache and (above 32 MB) a fresh mmap whose pages fault on first
# touch, so full-size passes cost several times more per element than at 10,000 batteries.

BLOCK = 4096


def _arc_rows(arc: np.ndarray, idx, scale: float | None) -> np.ndarray:
    """Rows of an arc matrix (slice or index array); with ``scale``, max(arc, 0) * scale (floats)."""
    rows = arc[idx]
    if scale is None:
        return rows
    rows = np.maximum(rows, 0.0)
    rows *= scale
    return rows


@dataclass
class ArcStats:
    """What compression needs from each battery's arc row; independent of the source capacities,
    so one pass serves every max-flow on the same arcs."""

    rowsum: np.ndarray  # sum of the row (int64 for integer arcs)
    peak: np.ndarray  # row max, 0 when no arc is positive
    flat: np.ndarray  # every positive arc equals the peak (and the peak is positive)
    key: np.ndarray | None  # the positive-arc pattern as a uint64 bit set (None when T > 64)

    @staticmethod
    def empty(n: int, m: int, dtype) -> "ArcStats":
        return ArcStats(np.empty(n, dtype=dtype), np.empty(n, dtype=dtype), np.empty(n, dtype=bool),
                        np.zeros(n, dtype=np.uint64) if m <= 64 else None)

    def fill(self, a: np.ndarray, lo: int, hi: int) -> None:
        """Rows lo:hi from their arcs ``a`` (one block)."""
        pos = a > 0
        self.rowsum[lo:hi] = a.sum(axis=1)
        c = a.max(axis=1, initial=0)
        self.peak[lo:hi] = c
        self.flat[lo:hi] = (c > 0) & ((a == c[:, None]) | ~pos).all(axis=1)
        if self.key is not None:
            bits = np.zeros((hi - lo, 8), dtype=np.uint8)
            bits[:, : -(-a.shape[1] // 8)] = np.packbits(pos, axis=1, bitorder="little")
            self.key[lo:hi] = bits.view(np.uint64).ravel()


def arc_row_stats(arc: np.ndarray, scale: float | None = None, block: int = BLOCK) -> ArcStats:
    """``ArcStats`` in one blocked pass (arcs are max(arc, 0) * scale when ``scale`` is given)."""
    n, m = arc.shape
    integer = scale is None and np.issubdtype(arc.dtype, np.integer)
    stats = ArcStats.empty(n, m, np.int64 if integer else float)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        stats.fill(_arc_rows(arc, slice(lo, hi), scale), lo, hi)
    return stats


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
    flat_peak: np.ndarray  # (len(flat),) each flat battery's one arc value c_b (0 off its support)


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


def compress_fleet(
    src: np.ndarray, arc: np.ndarray, sink: np.ndarray, stats: ArcStats | None = None, scale: float | None = None
) -> FleetCompression:
    """Merge unbound and flat batteries into few nodes; integer inputs stay integer (exact).

    Arcs are capped at their interval's sink capacity and sources at the total sink capacity: no
    flow can use more, and it keeps every capacity within int32 for scipy. ``stats`` (from
    ``arc_row_stats``) may be passed in to reuse one pass over the arcs for several sources; with
    ``scale``, the arcs are max(arc, 0) * scale, built only for the rows that need them.
    """
    n, m = arc.shape
    integer = scale is None and np.issubdtype(arc.dtype, np.integer)
    dtype = np.int64 if integer else float
    if stats is None:
        stats = arc_row_stats(arc, scale)
    live = src > 0
    has_arc = stats.peak > 0
    unbound = live & (src >= stats.rowsum) & has_arc
    c = stats.peak
    flat = live & ~unbound & stats.flat
    fb = np.flatnonzero(flat)
    support = np.zeros((0, m), dtype=bool)
    if fb.size:
        if stats.key is not None:
            _, first, ids = np.unique(stats.key[fb], return_index=True, return_inverse=True)
            ids = ids.ravel()
        else:
            ids, first = _pattern_ids(_arc_rows(arc, fb, scale) > 0)
        support = _arc_rows(arc, fb[first], scale) > 0
        size = support.sum(axis=1)
        worth = np.bincount(ids, minlength=first.size) > size  # fewer nodes than batteries, else explicit
        renumber = np.cumsum(worth) - 1
        support = support[worth]
        fb, ids = fb[worth[ids]], renumber[ids[worth[ids]]]
    merged = np.zeros(n, dtype=bool)
    merged[fb] = True
    explicit = np.flatnonzero(live & ~unbound & ~merged & has_arc)
    ub = np.flatnonzero(unbound)
    n_exp = explicit.size
    first_node = n_exp + (1 if ub.size else 0)
    size = support.sum(axis=1)
    n_nodes = first_node + int(size.sum())
    node_j = np.zeros(n_nodes, dtype=np.int64)
    node_support = np.zeros((n_nodes, m), dtype=bool)
    atom_node = np.zeros((2, fb.size), dtype=np.int64)
    atom_weight = np.zeros((2, fb.size), dtype=dtype)
    if fb.size:
        base = first_node + np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64) - 1  # node of (p, j): base[p] + j
        for p in range(size.size):  # one slice per support pattern (a handful)
            node_j[base[p] + 1 : base[p] + 1 + size[p]] = np.arange(1, size[p] + 1)
            node_support[base[p] + 1 : base[p] + 1 + size[p]] = support[p]
        x, cb = src[fb].astype(dtype), c[fb].astype(dtype)
        q = x // cb if integer else np.floor(x / cb)
        r = np.clip(x - q * cb, 0, cb)
        q = np.minimum(q, size[ids] - 1).astype(np.int64)  # not unbound: x < c*|S|, so q < |S|
        # The lower atom (j = q) carries no energy when q = 0: give it weight 0 (on the upper node).
        atom_node[0] = base[ids] + np.maximum(q, 1)
        atom_node[1] = base[ids] + q + 1
        atom_weight[0] = np.where(q >= 1, cb - r, 0)
        atom_weight[1] = r
    weight_f = np.bincount(atom_node.ravel(), weights=atom_weight.ravel(), minlength=n_nodes)
    node_weight = np.rint(weight_f).astype(dtype) if integer else weight_f
    nodes, weights = atom_node.ravel(), atom_weight.ravel()
    span = nodes - first_node  # atom nodes are >= first_node (or 0 with weight 0 when none)
    small = nodes.size and 0 <= span.min() and span.max() < 2**15
    order = np.argsort(span.astype(np.int16) if small else nodes, kind="stable")  # int16: radix sort, O(N)
    lanes = np.empty_like(weights)
    excl = np.cumsum(weights[order]) - weights[order]
    node_start = np.cumsum(node_weight) - node_weight
    lanes[order] = excl - node_start[nodes[order]]
    lanes = lanes.reshape(atom_node.shape)
    total = sink.sum()
    src_c = np.zeros(n_nodes, dtype=dtype)
    arc_c = np.zeros((n_nodes, m), dtype=dtype)
    src_c[:n_exp] = src[explicit]
    arc_c[:n_exp] = _arc_rows(arc, explicit, scale)
    unbound_arc = _arc_rows(arc, ub, scale)
    if ub.size:
        arc_c[n_exp] = unbound_arc.sum(axis=0)
        src_c[n_exp] = arc_c[n_exp].sum()
    arc_c[first_node:] = np.where(node_support[first_node:], node_weight[first_node:, None], 0)
    src_c[first_node:] = node_j[first_node:] * node_weight[first_node:]
    np.minimum(arc_c, sink[None, :], out=arc_c)
    np.minimum(src_c, total, out=src_c)
    return FleetCompression(n, explicit, ub, fb, atom_node, atom_weight, lanes, node_weight, src_c, arc_c, unbound_arc, c[fb].astype(dtype))


def expand_flow(
    comp: FleetCompression,
    flow_c: np.ndarray,
    chunk: int = BLOCK,
    *,
    out_scale: float | None = None,
    clip: bool = False,
    check: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Per-battery flows from a flow on the compressed network (same dtype, same interval sums).

    Fills the output a block of ``chunk`` consecutive batteries at a time, each block's explicit,
    unbound and flat batteries in turn (each kind's index array is sorted, so a block holds a
    contiguous run of each), so every output row is written once while its block is in cache:
    scattering each kind over the whole (N, T) array costs several times more at 100,000
    batteries. Options: ``out_scale`` returns flow * out_scale as floats instead of the flow
    itself (saves a full-size pass and array); ``clip`` (float flows) clips each battery's flows
    to its arcs against rounding, using only what the compression holds (explicit rows: their
    compressed arcs; flat batteries: their one cap c_b; unbound ones are scaled by a ratio <= 1,
    which cannot exceed them), so the full arc matrix is never read again; ``check`` = (src, arc)
    verifies integer capacities as it goes.
    """
    m = flow_c.shape[1]
    n = comp.n
    integer = np.issubdtype(flow_c.dtype, np.integer)
    out = np.zeros((n, m), dtype=flow_c.dtype if out_scale is None else float)
    # Float flows: scale the (small) compressed flow once instead of every battery row.
    fold = out_scale is not None and not integer
    s_out = out_scale if fold else 1.0
    src_flow = flow_c * out_scale if fold else flow_c
    n_exp = comp.explicit.size
    starts = np.arange(0, n + chunk, chunk)
    at_exp, at_ub, at_flat = (np.searchsorted(idx, starts) for idx in (comp.explicit, comp.unbound, comp.flat))

    def put(block: np.ndarray, lo: int, rows: np.ndarray, vals: np.ndarray, bound=None) -> None:
        if check is not None:
            src, arc = check
            if (vals > arc[rows]).any() or (vals.sum(axis=1) > src[rows]).any() or (vals < 0).any():
                raise RuntimeError("expanding the compressed flow broke a capacity; this is a bug")
        if clip and bound is not None:
            vals = np.minimum(vals, bound, out=vals)  # flows are >= 0 already
        if out_scale is not None and not fold:
            vals = vals * out_scale
        block[rows - lo] = vals

    if comp.unbound.size:
        g, ua = src_flow[n_exp], comp.unbound_arc
        if integer:  # fill batteries in turn, interval by interval
            filled = np.zeros(m, dtype=np.int64)
        else:
            total = ua.sum(axis=0)
            ratio = np.divide(g, total * s_out, out=np.zeros(m), where=total > 0)
            ratio = np.clip(ratio, 0.0, 1.0) * s_out  # a * ratio <= a * s_out: multiplication is monotone
    big_w = np.maximum(comp.node_weight, 1) if integer else np.where(comp.node_weight > 0, comp.node_weight, 1.0)
    if integer:
        cum = np.zeros((flow_c.shape[0], m + 1), dtype=flow_c.dtype)
        np.cumsum(flow_c, axis=1, out=cum[:, 1:])
    for b in range(starts.size - 1):
        lo = int(starts[b])
        if lo >= n:
            break
        block = out[lo : lo + chunk]
        e0, e1 = at_exp[b], at_exp[b + 1]
        if e1 > e0:
            put(block, lo, comp.explicit[e0:e1], src_flow[e0:e1].copy(), comp.arc[e0:e1] * s_out if clip else None)
        u0, u1 = at_ub[b], at_ub[b + 1]
        if u1 > u0:
            part = ua[u0:u1]
            if integer:
                before = np.cumsum(part, axis=0)
                before -= part
                before += filled
                put(block, lo, comp.unbound[u0:u1], np.clip(g[None, :] - before, 0, part))
                filled += part.sum(axis=0)
            else:
                put(block, lo, comp.unbound[u0:u1], part * ratio)
        f0, f1 = at_flat[b], at_flat[b + 1]
        if f1 > f0:
            share = 0
            for a in range(2):  # lower and upper atom
                node = comp.atom_node[a, f0:f1]
                w = comp.atom_weight[a, f0:f1, None]
                big = big_w[node][:, None]
                if integer:
                    # McNaughton: the node's lanes are dealt out cyclically, interval after
                    # interval; an atom owns lanes [lane, lane + w). No lane serves twice in one
                    # interval (flow <= node weight), and lanes are dealt at most j times in all.
                    turns, at = np.divmod(cum[node], big)
                    at -= comp.atom_lane[a, f0:f1, None]
                    owned = turns * w + np.clip(at, 0, w, out=at)
                    share = share + np.diff(owned, axis=1)
                else:
                    part = src_flow[node]
                    part *= w / big
                    share = part if a == 0 else np.add(share, part, out=share)
            bound = (comp.flat_peak[f0:f1] * s_out)[:, None] if clip else None
            put(block, lo, comp.flat[f0:f1], share, bound)
    return out


# --------------------------------------------------------------------------------------------
# warm start with a certificate
#
# The compressed network is a few merged nodes plus the "explicit" batteries (energy bound, caps
# that differ by interval), and Dinic's cost is theirs. Route each explicit battery greedily
# instead: all it can give, min(E_b, sum_t cap_bt), in proportion to its caps, scaled down in any
# interval it would overfill. Then solve the merged nodes exactly on what is left of each sink.
# The sum is a feasible flow. If its value reaches min(sum_t D_t, sum_b min(E_b, sum_t cap_bt)),
# it is maximum: both are cut capacities (every sink arc cut; every battery cut on its cheaper
# side). Otherwise nothing is claimed and the whole network is solved as usual. Either way the
# result is a maximum flow; the greedy only saves the Dinic on the explicit rows when it works.


def _greedy_rows(src: np.ndarray, arc: np.ndarray, sink: np.ndarray) -> np.ndarray:
    """A feasible flow of the rows alone: each row sends min(src, row sum) in proportion to its
    arcs (integer arcs: floors plus the remainder filled arc by arc), columns over their sink
    scaled down. Integer in, integer out."""
    integer = np.issubdtype(arc.dtype, np.integer)
    rowsum = arc.sum(axis=1)
    give = np.minimum(src, rowsum)
    ratio = np.divide(give, rowsum, out=np.zeros(rowsum.shape), where=rowsum > 0)
    flow = arc * ratio[:, None]  # <= arc: ratio <= 1 and rounding is monotone
    if integer:
        flow = np.floor(flow, out=flow).astype(np.int64)
        np.minimum(flow, arc, out=flow)
        room = arc - flow
        short = give - flow.sum(axis=1)  # < number of positive arcs
        before = np.cumsum(room, axis=1)
        before -= room
        flow += np.clip(short[:, None] - before, 0, room)
    load = flow.sum(axis=0)
    over = load > sink
    if over.any():
        cut = sink[over] / load[over]
        if integer:
            flow[:, over] = np.floor(flow[:, over] * cut)
        else:
            flow[:, over] *= cut * (1.0 - 1e-12)
    return flow


def warm_max_flow(src: np.ndarray, arc: np.ndarray, sink: np.ndarray, n_greedy: int, solve, tol: float = 0.0) -> np.ndarray:
    """A maximum flow (rows x columns) of source -> rows -> columns -> sink, by the greedy
    certificate above on the first ``n_greedy`` rows, else by ``solve(src, arc, sink)`` (a max-flow
    returning the flow matrix) on the whole network. ``tol`` is how far below the cut bound the
    certified value may fall (0 for integer units; float solvers are exact only to their unit)."""
    n = arc.shape[0]
    if n_greedy > 0:
        head = _greedy_rows(src[:n_greedy], arc[:n_greedy], sink)
        load = head.sum(axis=0)
        if (load <= sink).all():
            rest = sink - load
            tail = solve(src[n_greedy:], arc[n_greedy:], rest) if n > n_greedy else np.zeros((0, arc.shape[1]), dtype=head.dtype)
            bound = min(sink.sum(), np.minimum(src, arc.sum(axis=1)).sum())
            if head.sum() + tail.sum() >= bound - tol:
                return np.concatenate([head, tail.astype(head.dtype, copy=False)])
    return solve(src, arc, sink)


def compressed_max_flow(comp: FleetCompression, sink_u: np.ndarray) -> tuple[int, np.ndarray]:
    """``csgraph_max_flow`` on an integer compressed network, with the greedy certificate first."""
    flow = warm_max_flow(comp.src, comp.arc, sink_u, comp.explicit.size, lambda s, a, d: csgraph_max_flow(s, a, d)[1])
    return int(flow.sum()), flow


def _kwh_flow(src: np.ndarray, arc: np.ndarray, sink_kwh: np.ndarray) -> np.ndarray:
    """A maximum flow in kWh of a (small) network: integer units, then ``refine_flow``."""
    m = arc.shape[1]
    if arc.shape[0] == 0:
        return np.zeros(arc.shape)
    k = choose_units_per_kwh(src, sink_kwh, float(arc.max(initial=0.0)))
    src_u, arc_u, snk_u = (np.floor(x * k).astype(np.int64) for x in (src, arc, sink_kwh))
    _, flow_u = csgraph_max_flow(src_u, arc_u, snk_u)
    flow = flow_u / k
    # Any augmenting path is bounded by the network's trivial cut minus the flow, and by the
    # flooring loss (at most one unit per arc).
    bound = float(min(sink_kwh.sum(), np.minimum(src, arc.sum(axis=1)).sum()) - flow.sum())
    bound = min(bound, (np.count_nonzero(arc_u) + src.size + m + 1) / k)
    if bound > 0:
        flow = refine_flow(flow, src, arc, sink_kwh, bound)
    return flow


def max_flow_kwh(
    source_kwh: np.ndarray,
    arc_kwh: np.ndarray,
    sink_kwh: np.ndarray,
    *,
    arc_scale: float | None = None,
    out_scale: float | None = None,
    stats: ArcStats | None = None,
    with_totals: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """A maximum flow in kWh (battery x interval), exact up to the refinement's unit.

    Compresses in floats (so flooring to units happens on the few compressed capacities), routes
    the explicit rows by the greedy certificate when it holds (``warm_max_flow``), solves the rest
    in integer units, recovers the flooring loss with ``refine_flow``, and expands. Cost grows with
    the batteries that are neither unbound nor flat, and only when the certificate fails.
    With ``arc_scale`` the arcs are max(arc_kwh, 0) * arc_scale (built a block at a time, never
    as a full-size array); with ``out_scale`` the result is multiplied by it (e.g. 1/dt for kW);
    ``stats`` is ``arc_row_stats(arc_kwh, arc_scale)`` when the caller already has it. With
    ``with_totals`` it also returns the per-interval totals (from the compressed flow: the
    expansion keeps them up to rounding), sparing the caller a pass over the full-size result.
    """
    n, m = arc_kwh.shape
    if n == 0 or m == 0:
        return np.zeros((n, m))
    sink_kwh = np.asarray(sink_kwh, dtype=float)
    comp = compress_fleet(np.asarray(source_kwh, dtype=float), np.asarray(arc_kwh, dtype=float), sink_kwh, stats=stats, scale=arc_scale)
    flow_c = warm_max_flow(comp.src, comp.arc, sink_kwh, comp.explicit.size, _kwh_flow, tol=1e-12 * max(1.0, float(sink_kwh.sum())))
    flow = expand_flow(comp, flow_c, out_scale=out_scale, clip=True)
    if with_totals:
        return flow, flow_c.sum(axis=0) * (1.0 if out_scale is None else out_scale)
    return flow


def integer_arcs(cap_kw: np.ndarray, dt_h: float, k: float, sink_u: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, ArcStats, np.ndarray]:
    """floor(max(cap, 0) * dt * k), capped at each interval's sink capacity, as int32, its
    ``ArcStats``, and the row sums of max(cap, 0) * dt (kWh, uncapped), in one blocked pass.

    The cap keeps every arc within int32 (sink_u already is) and changes no max flow: an arc never
    carries more than its interval's sink takes. int32 halves the memory of the (N, T) matrix.
    """
    n, m = cap_kw.shape
    if sink_u.size and sink_u.max() > INT32_MAX:
        raise OverflowError("sink capacities do not fit in int32; choose a smaller unit")
    arc = np.empty((n, m), dtype=np.int32)
    stats = ArcStats.empty(n, m, np.int64)
    cap_f = sink_u.astype(float)[None, :]
    buf = np.empty((min(block, n), m))
    rowsum_kwh = np.empty(n)
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        b = buf[: hi - lo]
        np.maximum(cap_kw[lo:hi], 0.0, out=b)
        b *= dt_h  # same operations, same rounding, as floor(max(cap, 0) * dt * k) on whole arrays
        rowsum_kwh[lo:hi] = b.sum(axis=1)
        b *= k
        np.floor(b, out=b)
        np.minimum(b, cap_f, out=b)
        a = arc[lo:hi]
        a[...] = b
        stats.fill(a, lo, hi)
    return arc, stats, rowsum_kwh
