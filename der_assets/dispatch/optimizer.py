"""Fleet dispatch: the fast structured solver, the cvxpy reference, and the plan checks.

Objective (docs/dispatch.md "Objective"), all in dollars, N batteries, T intervals, dt hours:

    shortfall_usd_per_kwh   * sum_t max(0, target_t - sum_i p_it) * dt      ISO non-performance
  + retail_usd_per_kwh      * sum_i max(0, need_i' - remaining_i)           subscriber impact
  + fairness_usd_per_kwh2   * sum_i taken_i ** 2                            burden spread
  + degradation_usd_per_kwh * sum_i cell throughput_i                       battery wear

with taken_i the energy drawn from battery i (kWh at its terminals), remaining_i the energy it can
still deliver above reserve after the event, and need_i' = min(need_i, usable_i) the part of the
subscriber's post-event need the battery could have covered. For a discharge-only plan this makes
impact_i = max(0, taken_i - surplus_i): energy beyond the surplus is energy the subscriber buys back
at retail.

Hard constraints: 0 <= p_it <= cap_it (power, availability, non-export, agreements), SoC never
below reserve (discharge lowers SoC by p*dt/sqrt(eta)), sum_i p_it <= target_t (no over-delivery
is asked for). The plan never charges during the event: charging there is grid import the ISO
measures against the resource, it cannot lower the shortfall when the fleet output is capped at
the target in every interval where energy (not power) binds, and it makes the core a max-flow.

Fast path (``solve_fast``): the objective depends on a plan only through the interval totals (for
the shortfall) and each battery's energy taken. So (1) a max-flow gives the minimum shortfall
exactly; (2) the per-battery energies are chosen by water-filling on the marginal costs subject to
the flow polytope, using the decomposition algorithm for separable convex costs over a polymatroid
base (each infeasible water-fill exposes a min cut, the tight set, and the problem splits there);
(3) one last max-flow turns the energies into setpoints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from der_assets.dispatch.maxflow import (
    arc_row_stats,
    bipartite_max_flow,
    choose_units_per_kwh,
    compress_fleet,
    compressed_max_flow,
    expand_flow,
    integer_arcs,
    max_flow_kwh,
    refine_flow,
    source_side,
)
from der_assets.dispatch.problem import DispatchProblem, Prices

TOL_KW = 1e-6


@dataclass
class DispatchPlan:
    """Setpoints (kW, + discharge) for every battery and interval, and how they were found."""

    setpoint_kw: np.ndarray
    shortfall_kwh: float
    status: str
    solve_s: float
    method: str
    info: dict = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# evaluation and checks


def _soc(problem: DispatchProblem, setpoint_kw: np.ndarray) -> np.ndarray:
    se = problem.sqrt_eta[:, None]
    delta = np.where(setpoint_kw >= 0, setpoint_kw / se, setpoint_kw * se) * problem.dt_h
    return problem.soc_kwh[:, None] - np.cumsum(delta, axis=1)


def evaluate_plan(problem: DispatchProblem, setpoint_kw: np.ndarray, prices: Prices | None = None) -> dict:
    """Every objective term of a plan (any plan: fast, reference or baseline), in kWh and dollars."""
    prices = prices or problem.default_prices()
    p = np.asarray(setpoint_kw, dtype=float)
    dt = problem.dt_h
    se = problem.sqrt_eta
    fleet_kw = p.sum(axis=0)
    shortfall_kwh = float(np.maximum(problem.target_kw - fleet_kw, 0.0).sum() * dt)
    delivered_kwh = float(np.minimum(fleet_kw, problem.target_kw).sum() * dt)
    soc_end = problem.soc_kwh - np.where(p >= 0, p / se[:, None], p * se[:, None]).sum(axis=1) * dt
    remaining = np.maximum(soc_end - problem.reserve_kwh, 0.0) * se
    usable = problem.usable_kwh
    need_cov = np.minimum(problem.need_kwh, usable)
    impact = np.maximum(need_cov - remaining, 0.0)
    taken = np.maximum(problem.soc_kwh - soc_end, 0.0) * se
    throughput = (np.maximum(p, 0.0) / se[:, None] + np.maximum(-p, 0.0) * se[:, None]).sum(axis=1) * dt
    terms = {
        "shortfall_usd": prices.shortfall_usd_per_kwh * shortfall_kwh,
        "impact_usd": prices.retail_usd_per_kwh * float(impact.sum()),
        "fairness_usd": prices.fairness_usd_per_kwh2 * float((taken**2).sum()),
        "degradation_usd": prices.degradation_usd_per_kwh * float(throughput.sum()),
    }
    return {
        "shortfall_kwh": shortfall_kwh,
        "delivered_kwh": delivered_kwh,
        "subscriber_impact_kwh": float(impact.sum()),
        "taken_kwh": taken,
        "impact_kwh": impact,
        **terms,
        "objective_usd": float(sum(terms.values())),
    }


def check_hard_constraints(problem: DispatchProblem, setpoint_kw: np.ndarray, tol: float = TOL_KW) -> list[str]:
    """Human-readable violations of the physics and program agreements (empty list = valid).

    Checked against the raw fleet data and forecast, not just ``cap_kw``, so a bug in building the
    caps is caught too: power limits, reserve and capacity under the efficiency rule, the site-level
    non-export cap, availability, and the fleet total never above target.
    """
    p = np.asarray(setpoint_kw, dtype=float)
    out: list[str] = []
    if p.shape != problem.cap_kw.shape:
        return [f"plan shape {p.shape} != {problem.cap_kw.shape}"]
    if not np.isfinite(p).all():
        out.append("non-finite setpoints")
        return out

    def report(mask: np.ndarray, what: str) -> None:
        if mask.any():
            i, t = np.argwhere(mask)[0]
            out.append(f"{what}: battery {problem.battery_id[i]} interval {t} setpoint {p[i, t]:.6f} kW ({int(mask.sum())} cells)")

    report(p > problem.max_discharge_kw[:, None] + tol, "above max_discharge_kw")
    report(-p > problem.max_charge_kw[:, None] + tol, "above max_charge_kw")
    report(~problem.available[:, None] & (np.abs(p) > tol), "unavailable battery not at 0")
    report(p > problem.cap_kw + tol, "above the interval cap (non-export or agreement)")
    soc = _soc(problem, p)
    floor = np.minimum(problem.reserve_kwh, problem.soc_kwh)  # already below reserve: may not go lower
    report(soc < floor[:, None] - tol, "SoC below reserve")
    report(soc > problem.capacity_kwh[:, None] + tol, "SoC above capacity")
    if problem.netload_kw is not None:
        ne = ~problem.export_allowed
        if ne.any():
            sites, idx = np.unique(problem.site_id[ne].astype(str), return_inverse=True)
            site_p = np.zeros((len(sites), p.shape[1]))
            np.add.at(site_p, idx, p[ne])
            site_nl = np.zeros((len(sites), p.shape[1]))
            site_nl[idx] = np.nan_to_num(problem.netload_kw[ne], nan=0.0)
            bad = site_p > site_nl + tol
            if bad.any():
                s, t = np.argwhere(bad)[0]
                out.append(f"non-export site {sites[s]} exports in interval {t}: {site_p[s, t]:.6f} kW > net load {site_nl[s, t]:.6f} kW")
    over = p.sum(axis=0) > problem.target_kw + tol * max(1, p.shape[0])
    if over.any():
        out.append(f"fleet output above target in {int(over.sum())} intervals")
    return out


# --------------------------------------------------------------------------------------------
# fast path


def _waterfill(lo: np.ndarray, hi: np.ndarray, sigma: np.ndarray, w: np.ndarray, total: float, prices: Prices) -> np.ndarray:
    """Minimize sum_i f_i(E_i) s.t. sum E = total, lo <= E <= hi, where
    f_i(E) = retail*max(0, E - sigma_i) + fairness*E^2 + degradation*w_i*E.

    The optimum equalizes marginal costs at a level lambda (KKT); E_i(lambda) is monotone and
    piecewise linear, so bisection on the scalar lambda finds it in O(N log(1/eps)).
    """
    c_f = max(prices.fairness_usd_per_kwh2, 1e-9)
    c_r = prices.retail_usd_per_kwh
    lin = prices.degradation_usd_per_kwh * w

    def energy(lam: float) -> np.ndarray:
        below = (lam - lin) / (2 * c_f)
        above = (lam - lin - c_r) / (2 * c_f)
        e = np.where(below <= sigma, below, np.where(above >= sigma, above, sigma))
        return np.clip(e, lo, hi)

    if total <= lo.sum():
        return lo.copy()
    if total >= hi.sum():
        return hi.copy()
    lam_lo = float((2 * c_f * lo + lin).min()) - 1.0
    lam_hi = float((2 * c_f * hi + lin).max()) + c_r + 1.0
    for _ in range(200):
        mid = 0.5 * (lam_lo + lam_hi)
        if energy(mid).sum() < total:
            lam_lo = mid
        else:
            lam_hi = mid
        if lam_hi - lam_lo < 1e-13 * max(1.0, abs(lam_hi)):
            break
    e_lo, e_hi = energy(lam_lo), energy(lam_hi)
    s_lo, s_hi = e_lo.sum(), e_hi.sum()
    theta = 0.0 if s_hi <= s_lo else (total - s_lo) / (s_hi - s_lo)
    return e_lo + theta * (e_hi - e_lo)


def _round_to_total(x: np.ndarray, upper: np.ndarray, total: int) -> np.ndarray:
    """Integers in [0, upper] summing to ``total``, each within 1 of ``x`` where possible."""
    base = np.clip(np.floor(x), 0, upper).astype(np.int64)
    frac = x - base
    need = int(total - base.sum())
    while need != 0:
        if need > 0:
            room = np.flatnonzero(base < upper)
            if room.size == 0:
                break
            pick = room[np.argsort(-frac[room], kind="stable")[:need]]
            base[pick] += 1
            frac[pick] -= 1
        else:
            room = np.flatnonzero(base > 0)
            if room.size == 0:
                break
            pick = room[np.argsort(frac[room], kind="stable")[: -need]]
            base[pick] -= 1
            frac[pick] += 1
        need = int(total - base.sum())
    return base


def _top_up(problem: DispatchProblem, setpoint_kw: np.ndarray, chunk: int = 4096, *, gap_kw: np.ndarray | None = None, inplace: bool = False):
    """Give back what flooring capacities to integer units cost (< 1 unit per arc).

    Interval by interval, fill the remaining gap to target from each battery's leftover power
    and energy in proportion to its leftover power. Only ever adds within every cap, so the plan
    stays feasible; it moves the shortfall from "exact to the unit" to exact to float precision.
    Batteries are taken a block at a time (each block fills what the earlier ones left): the
    block's interval-major copy stays in cache, and the usual tiny gaps are closed by the first.
    A block whose leftover room in the short intervals is negligible is skipped after one check.

    ``gap_kw`` (target minus fleet output) saves a full pass when the caller knows it; with
    ``inplace`` the plan is updated in place. Returns ``(plan, gap_kw)`` when ``gap_kw`` is given,
    else the plan.
    """
    dt = problem.dt_h
    p = setpoint_kw if inplace else np.array(setpoint_kw, dtype=float)
    want_gap = gap_kw is not None
    gap = np.array(gap_kw, dtype=float) if want_gap else problem.target_kw - p.sum(axis=0)
    tol = 1e-12 * np.maximum(1.0, problem.target_kw)
    skip_tol = 1e-9 * np.maximum(1.0, problem.target_kw)  # per block: <= 1e-9 * blocks of target lost
    usable = problem.usable_kwh
    for lo in range(0, p.shape[0], chunk):
        short = np.flatnonzero(gap > tol)
        if short.size == 0:
            break
        blk, cap_blk = p[lo : lo + chunk], problem.cap_kw[lo : lo + chunk]
        energy_left = np.maximum(usable[lo : lo + chunk] - blk.sum(axis=1) * dt, 0.0)
        room = np.minimum(np.maximum(cap_blk[:, short] - blk[:, short], 0.0), (energy_left / dt)[:, None])
        if (room.sum(axis=0) <= skip_tol[short]).all():
            continue  # nothing this block could add is worth a sweep (the shortfall case, mostly)
        p_t = np.ascontiguousarray(blk.T)  # interval-major: each sweep reads contiguous rows
        cap_t = np.ascontiguousarray(cap_blk.T)
        for t in short:
            room = np.minimum(np.maximum(cap_t[t] - p_t[t], 0.0), energy_left / dt)
            total = room.sum()
            if total <= 0:
                continue
            add = room if total <= gap[t] else room * (gap[t] / total)
            p_t[t] += add
            gap[t] -= add.sum()
            energy_left = np.maximum(energy_left - add * dt, 0.0)
        blk[...] = p_t.T
    return (p, gap) if want_gap else p


def solve_fast(problem: DispatchProblem, prices: Prices | None = None) -> DispatchPlan:
    """Minimum-shortfall plan that, among those, minimizes impact + fairness + degradation.

    Exact up to the integer energy unit (``info['units_per_kwh']``), then topped up in floats.
    Never raises for an unreachable target: the shortfall is reported instead. Usually costs one
    max-flow (target reachable and the water-fill routable) or two (shortfall).

    The (N, T) work is done a block of batteries at a time and the only full-size arrays are the
    int32 arcs and the plan itself: at 100,000 x 48 a full-size float temporary is 38 MB, past
    the cache and the allocator's mmap threshold, and each one costs page faults and a pass.
    """
    t0 = time.perf_counter()
    prices = prices or problem.default_prices()
    n, t_n = problem.cap_kw.shape
    dt = problem.dt_h
    usable = problem.usable_kwh
    sink_kwh = np.maximum(problem.target_kw, 0.0) * dt
    # Arcs are capped at their interval's sink capacity (no flow changes), so they need no room.
    k = choose_units_per_kwh(usable, sink_kwh, 0.0)
    src_u = np.floor(usable * k).astype(np.int64)
    sink_u = np.floor(sink_kwh * k).astype(np.int64)
    info = {"units_per_kwh": k, "max_flows": 0, "blocks": 0, "fallback": False}
    arc_u = kwh_stats = None
    if sink_kwh.sum() > usable.sum():
        # Certainly a shortfall (more target than usable energy): the kWh max-flow below needs the
        # arcs' float row statistics anyway, so take the row sums from that pass and build the
        # integer arcs only if it falls through.
        kwh_stats = arc_row_stats(problem.cap_kw, dt)
        rowsum_kwh = kwh_stats.rowsum
    else:
        arc_u, stats, rowsum_kwh = integer_arcs(problem.cap_kw, dt, k, sink_u)
    hi_kwh = float(np.minimum(usable, rowsum_kwh).sum())
    if sink_kwh.sum() > hi_kwh:
        # The target exceeds what the batteries could give even one by one: a shortfall. If a
        # maximum flow routes every battery's all, nothing is left to choose and it is the plan.
        # Solve it in kWh on the compressed network, where flooring costs a unit per compressed
        # arc, not per battery arc, and refining is cheap; else fall through to the general path.
        setpoint_kw, fleet_kw = max_flow_kwh(usable, problem.cap_kw, sink_kwh, arc_scale=dt, out_scale=1.0 / dt, stats=kwh_stats, with_totals=True)
        info["max_flows"] += 1
        routed = float(fleet_kw.sum() * dt)
        if routed >= hi_kwh - 1e-9 * max(1.0, hi_kwh):
            # Every battery already gives all it can (energy spent or every cap full), so the
            # top-up could add float dust at most: skip its two passes over the plan and caps.
            info["max_flow_kwh"] = routed
            return _finish(problem, setpoint_kw, problem.target_kw - fleet_kw, info, t0, top_up=False)
    if arc_u is None:
        arc_u, stats, rowsum_kwh = integer_arcs(problem.cap_kw, dt, k, sink_u)
    sigma = problem.surplus_kwh
    w = 1.0 / problem.sqrt_eta
    hi_u = np.minimum(src_u, stats.rowsum)

    def waterfill_units(b_idx, off, room, d_u):
        x = _waterfill(off / k, (off + room) / k, sigma[b_idx], w[b_idx], (off.sum() + d_u) / k, prices)
        return _round_to_total(x * k - off, room, d_u)

    # Try the easy case first: the whole target (or all routable energy) at equal marginal cost.
    d0 = int(min(sink_u.sum(), hi_u.sum()))
    all_b, all_t = np.arange(n), np.arange(t_n)
    extra = waterfill_units(all_b, np.zeros(n, dtype=np.int64), hi_u, d0)
    comp = compress_fleet(extra, arc_u, sink_u, stats=stats)
    value, flow_c = compressed_max_flow(comp, sink_u)
    info["max_flows"] += 1
    best_u, routed_u, flow = value, value, None  # flow: a dense integer plan, once one is built
    if value < d0:
        # Shortfall or a congested interval: find the true maximum, then decompose.
        best_u, best_flow = bipartite_max_flow(src_u, arc_u, sink_u, stats=stats)
        info["max_flows"] += 1
        if best_u >= hi_u.sum():
            flow = best_flow  # every battery gives all it can: nothing left to choose
        else:
            flow = self_flow = np.zeros((n, t_n), dtype=np.int64)
            stack = [(all_b, all_t, sink_u.copy(), np.zeros(n, dtype=np.int64), best_u)]
            while stack:
                b_idx, i_idx, snk, off, d_u = stack.pop()
                info["blocks"] += 1
                if b_idx.size == 0 or i_idx.size == 0 or d_u <= 0:
                    continue
                arcs = arc_u[np.ix_(b_idx, i_idx)].astype(np.int64)
                room = np.minimum(src_u[b_idx] - off, arcs.sum(axis=1))
                extra = waterfill_units(b_idx, off, room, d_u)
                value, sub = bipartite_max_flow(extra, arcs, snk)
                info["max_flows"] += 1
                in_a, in_x = (None, None)
                if value < d_u:
                    in_a, in_x = source_side(extra, arcs, snk, sub)
                if value >= d_u or in_a.all() or not in_a.any():
                    # Routable (or, from integer rounding only, stuck): keep this block's flow.
                    info["fallback"] |= value < d_u
                    self_flow[np.ix_(b_idx, i_idx)] = sub
                    continue
                # Tight set A: its intervals X are full and its arcs out of X saturated at the
                # optimum. Solve A inside X, and the rest on what A leaves outside X.
                fixed_a = arcs[np.ix_(in_a, ~in_x)]
                self_flow[np.ix_(b_idx[in_a], i_idx[~in_x])] = fixed_a
                g_a = int(fixed_a.sum() + snk[in_x].sum())
                stack.append((b_idx[in_a], i_idx[in_x], snk[in_x].copy(), off[in_a] + fixed_a.sum(axis=1), int(snk[in_x].sum())))
                stack.append((b_idx[~in_a], i_idx[~in_x], snk[~in_x] - fixed_a.sum(axis=0), off[~in_a], int(d_u - g_a)))
            if flow.sum() < best_u:
                flow, info["fallback"] = best_flow, True  # never trade shortfall for secondary terms
        routed_u = int(flow.sum())
    info["max_flow_kwh"] = best_u / k
    if best_u < sink_u.sum() and routed_u >= hi_u.sum():
        # A shortfall with every battery giving all it can route: nothing is left to choose, so
        # any maximum flow will do. Solve it in kWh on the compressed network, where flooring
        # costs a unit per compressed arc, not per battery arc, and refining is cheap.
        setpoint_kw = max_flow_kwh(usable, problem.cap_kw, sink_kwh, arc_scale=dt, out_scale=1.0 / dt)
        gap = problem.target_kw - setpoint_kw.sum(axis=0)
        info["max_flows"] += 1
    elif best_u < sink_u.sum():
        # A shortfall: integer flooring may have cost up to one unit per cut arc. One max-flow on
        # the residual network at a ~1000x finer unit gives it back (the top-up below cannot
        # reroute). Bound: the integer network's cut, recomputed with the real capacities.
        if flow is None:
            flow = expand_flow(comp, flow_c, check=(extra, arc_u))
        arc_kwh = np.maximum(problem.cap_kw, 0.0)
        arc_kwh *= dt
        flow_kwh = flow / k
        bound = float(min(sink_kwh.sum(), np.minimum(usable, arc_kwh.sum(axis=1)).sum()) - flow_kwh.sum())
        bound = min(bound, (np.count_nonzero(arc_u) + n + t_n) / k)
        setpoint_kw = refine_flow(flow_kwh, usable, arc_kwh, sink_kwh, bound) / dt
        gap = problem.target_kw - setpoint_kw.sum(axis=0)
        info["max_flows"] += 1
    elif flow is None:
        # The usual case: expand the compressed flow straight into kW, a block at a time. The
        # output is floats anyway, so merged batteries take proportional float shares (each
        # within its caps and energy up to rounding, clipped to its caps) instead of the integer
        # lane split: a few operations per cell instead of a dozen.
        setpoint_kw = expand_flow(comp, flow_c.astype(float), out_scale=1.0 / (k * dt), clip=True)
        gap = problem.target_kw - flow_c.sum(axis=0) * (1.0 / (k * dt))
    else:
        setpoint_kw = flow * (1.0 / (k * dt))
        gap = problem.target_kw - flow.sum(axis=0) * (1.0 / (k * dt))
    return _finish(problem, setpoint_kw, gap, info, t0)


def _finish(problem: DispatchProblem, setpoint_kw: np.ndarray, gap_kw: np.ndarray, info: dict, t0: float, *, top_up: bool = True) -> DispatchPlan:
    """Top up (in place) and wrap a plan; ``gap_kw`` is the target minus the plan's fleet output."""
    setpoint, gap = _top_up(problem, setpoint_kw, gap_kw=gap_kw, inplace=True) if top_up else (setpoint_kw, gap_kw)
    shortfall = float(np.maximum(gap, 0.0).sum() * problem.dt_h)
    status = "met" if shortfall <= 1e-6 * max(1.0, problem.target_kwh) else "shortfall"
    return DispatchPlan(
        setpoint_kw=setpoint, shortfall_kwh=shortfall, status=status, solve_s=time.perf_counter() - t0, method="flow+waterfill", info=info
    )


# --------------------------------------------------------------------------------------------
# references (cvxpy)


def solve_reference(
    problem: DispatchProblem,
    prices: Prices | None = None,
    *,
    solver: str = "CLARABEL",
    allow_charging: bool = False,
    objective: str = "full",
    **solver_kwargs,
) -> DispatchPlan:
    """The monolithic formulation in cvxpy: one variable per battery-interval, SoC tracked every
    interval with a cumulative sum, every objective term in one program.

    ``objective="shortfall"`` keeps only the shortfall term (an LP; the min-shortfall reference).
    ``allow_charging`` adds charge variables (SoC rises by |p|*dt*sqrt(eta)) for comparison.
    This is the baseline the fast path is benchmarked against, and the judge of its optimality.
    """
    import cvxpy as cp

    t0 = time.perf_counter()
    prices = prices or problem.default_prices()
    n, t_n = problem.cap_kw.shape
    dt = problem.dt_h
    se = problem.sqrt_eta
    dis = cp.Variable((n, t_n), nonneg=True)
    short = cp.Variable(t_n, nonneg=True)
    cons = [dis <= problem.cap_kw]
    soc_step = cp.multiply(dis, (dt / se)[:, None])
    p = dis
    if allow_charging:
        chg = cp.Variable((n, t_n), nonneg=True)
        cons.append(chg <= np.where(problem.available, problem.max_charge_kw, 0.0)[:, None] * np.ones((1, t_n)))
        soc_step = soc_step - cp.multiply(chg, (dt * se)[:, None])
        p = dis - chg
    soc = problem.soc_kwh[:, None] - cp.cumsum(soc_step, axis=1)
    fleet = cp.sum(p, axis=0)
    floor = np.minimum(problem.reserve_kwh, problem.soc_kwh)  # a battery already below reserve just may not discharge
    cons += [soc >= floor[:, None], soc <= problem.capacity_kwh[:, None], fleet + short >= problem.target_kw, fleet <= problem.target_kw]
    cost = prices.shortfall_usd_per_kwh * cp.sum(short) * dt
    if objective == "full":
        soc_end = soc[:, t_n - 1]
        remaining = cp.multiply(soc_end - floor, se)  # >= 0 by the reserve constraint
        need_cov = np.minimum(problem.need_kwh, problem.usable_kwh)
        impact = cp.pos(need_cov - remaining)
        taken = cp.pos(cp.multiply(problem.soc_kwh - soc_end, se))
        throughput = cp.sum(soc_step if not allow_charging else cp.multiply(dis, (dt / se)[:, None]) + cp.multiply(chg, (dt * se)[:, None]))
        cost = (
            cost
            + prices.retail_usd_per_kwh * cp.sum(impact)
            + prices.fairness_usd_per_kwh2 * cp.sum_squares(taken)
            + prices.degradation_usd_per_kwh * throughput
        )
    elif objective != "shortfall":
        raise ValueError(f"objective must be 'full' or 'shortfall', not {objective!r}")
    prob = cp.Problem(cp.Minimize(cost), cons)
    prob.solve(solver=solver, **solver_kwargs)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        raise RuntimeError(f"reference solve ended {prob.status}")
    setpoint = np.asarray(p.value, dtype=float)
    shortfall = float(np.maximum(problem.target_kw - setpoint.sum(axis=0), 0.0).sum() * dt)
    return DispatchPlan(
        setpoint_kw=setpoint,
        shortfall_kwh=shortfall,
        status="met" if shortfall <= 1e-6 * max(1.0, problem.target_kwh) else "shortfall",
        solve_s=time.perf_counter() - t0,
        method=f"cvxpy-{solver.lower()}",
        info={"objective_usd": float(prob.value), "solver_status": prob.status},
    )


def min_shortfall_lp(problem: DispatchProblem, *, allow_charging: bool = False) -> float:
    """Minimum shortfall (kWh) by LP with HiGHS: the independent check on the max-flow."""
    plan = solve_reference(problem, Prices(shortfall_usd_per_kwh=1.0), solver="HIGHS", allow_charging=allow_charging, objective="shortfall")
    return float(plan.info["objective_usd"])
