"""Reconcile an ISO statement against metered performance: recompute every line, classify and price each gap.

Public API (pure; the Dagster layer and `der settle` call it):
    reconcile(statement_lines, meter, events, registry, *, estimate=None, params=None, iso=None) -> Reconciliation
- statement_lines: the frame of statements.template.parse_statement (or the same columns from another parser);
- meter: the METER.csv frame (meter_csv.read_meter_csv, or performance.meter_frame_from_canonical);
- events: [settlement.events.Event], each with its baseline `method` and `rate_usd_per_mwh`;
- registry: the per-device registry frame (registry.store), with or without `resource_id`;
- estimate: optional performance.calibrated_estimate frame (the Dagster path); the CLI has none.
`Reconciliation` has `.summary` (the contract's stdout JSON), `.discrepancies` (discrepancies.csv),
`.lines` (every statement line, plus the lines missing from the statement, with ISO figures, ours, the
class and the reason), `.performance` (performance.Performance) and `.warnings`.

"Ours" for a line = the resource's reduction in kWh over the line's interval (the sum of its enrolled sites'
reductions from compute_baseline with the event's method), priced at the event's rate:
ours_usd = ours_kwh x rate_usd_per_mwh / 1000.

A line is **matched** when |round(ours_usd, 2) - amount_usd| <= 1 cent AND <= 0.1 % of |amount_usd|
(both, as the contract says; ours is rounded to the cent first because amounts are). Every other line is a
discrepancy of exactly one class; the first rule that applies wins (`also` lists the others that apply):
1. registration_mismatch: the line's resource has no site enrolled in the event's ISO (active or suspended)
   [ours = 0 kWh: nothing is enrolled]; or the statement has no line for an interval of an event it covers,
   for a resource with enrolled sites [iso_kwh = 0]. A resource the registry does not know at all is an input
   error (exit 1), not a class. Sites cannot be compared one by one: the statement is per resource.
2. rate_mismatch: the line's rate differs from the event's rate_usd_per_mwh.
3. arithmetic: amount_usd differs from iso_reduction_kwh x line rate / 1000 beyond the tolerance, or the ISO
   reported a baseline and a load whose difference x hours is not its reduction (not checked for pjm_fsl and
   pjm_gld, whose reduction is not baseline - load).
4. missing_ami: a site the resource counts has no meter data for the interval or its baseline days
   (with an estimate given, only a site that has no estimate either). Not priced: usd_at_stake is empty.
5. load_mismatch: iso_load_kw differs from our metered load (sum over sites) beyond KW_TOLERANCE.
6. baseline_mismatch: the loads agree (or the ISO reported no load) and the reduction differs: iso_baseline_kw
   differs from ours, or was not reported.
Statement-side faults come first because the statement alone proves them; missing AMI comes before the load and
baseline classes because without the meter data neither can be compared.

usd_at_stake is **signed**, everywhere: ours_usd - amount_usd, rounded to the cent; positive means the ISO owes
the aggregator that much, negative that the aggregator was paid (or would claim) too much. The summary's
usd_at_stake is the sum of the priced discrepancies' signed values (what the disputes move, net); by_class gives
per class `n`, the signed `usd_at_stake` and `unpriced` (lines whose dollars cannot be known, e.g. missing AMI).
delta_kwh = ours_kwh - iso_kwh.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from der_assets.errors import ValidationFailed
from der_assets.settlement.performance import Performance, iso_key, metered_performance, site_table

CLASSES = ("registration_mismatch", "rate_mismatch", "arithmetic", "missing_ami", "load_mismatch", "baseline_mismatch")
TOLERANCE_USD = 0.01
TOLERANCE_REL = 0.001
KW_TOLERANCE_ABS = 0.001  # 1 W: below any meter's resolution
KW_TOLERANCE_REL = 0.001
RATE_TOLERANCE = 1e-6  # $/MWh
DISCREPANCY_COLUMNS = ["statement_id", "resource_id", "event_id", "interval_start", "ours_kwh", "iso_kwh", "delta_kwh",
                       "usd_at_stake", "class", "evidence"]
EPS = 1e-9
# Methods whose reduction is not baseline - load (FSL: PLC - Load x LF; GLD: (CBL - Load) x LF capped at the PLC):
# for these an ISO baseline and load that do not difference to its reduction are no arithmetic error.
REDUCTION_NOT_BASELINE_MINUS_LOAD = ("pjm_fsl", "pjm_gld")


@dataclass
class Reconciliation:
    summary: dict
    discrepancies: pd.DataFrame
    lines: pd.DataFrame
    performance: Performance
    meter: pd.DataFrame
    events: dict
    registry_sites: pd.DataFrame
    warnings: list[str] = field(default_factory=list)


def amounts_match(ours_usd: np.ndarray, amount_usd: np.ndarray) -> np.ndarray:
    """Within 1 cent and within 0.1 % of the ISO's amount (ours rounded to the cent first)."""
    diff = np.abs(np.round(ours_usd, 2) - amount_usd)
    return (diff <= TOLERANCE_USD + EPS) & (diff <= TOLERANCE_REL * np.abs(amount_usd) + EPS) & np.isfinite(ours_usd)


def _kw_differs(iso_kw: np.ndarray, ours_kw: np.ndarray) -> np.ndarray:
    tol = np.maximum(KW_TOLERANCE_ABS, KW_TOLERANCE_REL * np.abs(ours_kw))
    return np.isfinite(iso_kw) & np.isfinite(ours_kw) & (np.abs(iso_kw - ours_kw) > tol + EPS)


def package_name(index: int, row: Mapping) -> str:
    """A dispute package's folder: its order, class, resource, event and UTC interval, filesystem-safe."""
    stamp = pd.Timestamp(row["interval_start"]).strftime("%Y%m%dT%H%MZ")
    raw = f"{index:04d}-{row['class']}-{row['resource_id']}-{row['event_id']}-{stamp}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)[:150]


def check_lines_known(lines: pd.DataFrame, sites: pd.DataFrame, events: Mapping) -> None:
    """The bad-input rule for callers that did not parse with template.parse_statement: exit-1 errors."""
    known = set(sites["resource_id"])
    for _, line in lines.iterrows():
        where = f"statement row {line.get('row', '?')}"
        if line["resource_id"] not in known:
            raise ValidationFailed(f"{where}, column resource_id: unknown resource {line['resource_id']!r}", [])
        if line["event_id"] not in events:
            raise ValidationFailed(f"{where}, column event_id: unknown event {line['event_id']!r}", [])


def reconcile(statement_lines: pd.DataFrame, meter: pd.DataFrame, events: Sequence, registry: pd.DataFrame, *,
              estimate: pd.DataFrame | None = None, params: Mapping | None = None,
              iso: str | None = None) -> Reconciliation:
    """Every statement line recomputed from the meters, classified, priced; plus lines the statement lacks."""
    sites = site_table(registry)
    if iso:
        events = [e for e in events if iso_key(e.iso) == iso_key(iso)]
    by_id = {e.event_id: e for e in events}
    lines = statement_lines.copy()
    check_lines_known(lines, sites, by_id)
    warnings: list[str] = []

    grid_s: dict[str, int] = {}
    for event_id, group in lines.groupby("event_id"):
        lengths = sorted(set(group["interval_s"].astype(int)))
        if len(lengths) > 1:
            raise ValidationFailed(f"statement: event {event_id} has lines of {lengths} s; one interval length "
                                   "per event", [])
        grid_s[event_id] = lengths[0]
    covered = [e for e in events if e.event_id in grid_s]
    for e in events:
        if e.event_id not in grid_s:
            warnings.append(f"event {e.event_id}: no statement line; not reconciled")
    perf = metered_performance(meter, covered, registry, estimate=estimate, grid_s=grid_s, params=params)
    warnings = perf.warnings + warnings
    for e in covered:
        if e.rate_usd_per_mwh is None:
            warnings.append(f"event {e.event_id}: no rate_usd_per_mwh; ours is priced at each line's own rate and "
                            "rate_mismatch is not checked")

    keys = ["event_id", "resource_id", "interval_start", "interval_s"]
    res = perf.resources.rename(columns={"baseline_kw": "ours_baseline_kw", "load_kw": "ours_load_kw",
                                         "reduction_kwh": "ours_kwh"})
    lines["on_statement"] = True
    merged = lines.merge(res, on=keys, how="outer", indicator=True)
    merged["on_statement"] = merged["on_statement"].eq(True)
    only_ours = (merged["_merge"] == "right_only").to_numpy()
    no_sites = (merged["_merge"] == "left_only").to_numpy()
    merged = merged.drop(columns="_merge")

    event_rate = merged["event_id"].map(lambda e: by_id[e].rate_usd_per_mwh).astype("float64").to_numpy()
    line_rate = merged["rate_usd_per_mwh"].to_numpy(dtype=float)
    rate = np.where(np.isfinite(event_rate), event_rate, line_rate)
    ours_kwh = merged["ours_kwh"].to_numpy(dtype=float)
    ours_kwh = np.where(no_sites, 0.0, ours_kwh)
    iso_kwh = np.where(only_ours, 0.0, merged["iso_reduction_kwh"].to_numpy(dtype=float))
    amount = np.where(only_ours, 0.0, merged["amount_usd"].to_numpy(dtype=float))
    ours_usd = ours_kwh * rate / 1000.0
    hours = merged["interval_s"].to_numpy(dtype=float) / 3600.0
    iso_base = merged["iso_baseline_kw"].to_numpy(dtype=float)
    iso_load = merged["iso_load_kw"].to_numpy(dtype=float)
    ours_base = merged["ours_baseline_kw"].to_numpy(dtype=float)
    ours_load = merged["ours_load_kw"].to_numpy(dtype=float)
    n_missing = merged["n_missing"].fillna(0).to_numpy(dtype=float)

    iso_usd = iso_kwh * line_rate / 1000.0
    own_arith = ~amounts_match(iso_usd, amount) & ~only_ours
    differenced = ~merged["event_id"].map(lambda e: by_id[e].method in REDUCTION_NOT_BASELINE_MINUS_LOAD).to_numpy(bool)
    parts_known = np.isfinite(iso_base) & np.isfinite(iso_load) & differenced
    parts_off = parts_known & (np.abs((iso_base - iso_load) * hours - iso_kwh)
                               > np.maximum(KW_TOLERANCE_ABS * hours, TOLERANCE_REL * np.abs(iso_kwh)) + EPS)
    tests = {
        "registration_mismatch": no_sites | only_ours,
        "rate_mismatch": np.isfinite(event_rate) & np.isfinite(line_rate) & (np.abs(line_rate - event_rate) > RATE_TOLERANCE)
                         & ~only_ours,
        "arithmetic": (own_arith | parts_off) & ~only_ours,
        "missing_ami": (n_missing > 0) & ~no_sites,
        "load_mismatch": _kw_differs(iso_load, ours_load),
        "baseline_mismatch": np.zeros(len(merged), dtype=bool),
    }
    matched = amounts_match(ours_usd, amount) & ~only_ours & ~no_sites
    unexplained = ~matched & ~np.logical_or.reduce([tests[c] for c in CLASSES[:-1]])
    tests["baseline_mismatch"] = (_kw_differs(iso_base, ours_base) | unexplained) & ~tests["load_mismatch"]

    klass = np.full(len(merged), "", dtype=object)
    also = [[] for _ in range(len(merged))]
    for name in reversed(CLASSES):
        hit = tests[name] & ~matched
        klass[hit] = name
    for name in CLASSES:
        for i in np.flatnonzero(tests[name] & ~matched):
            if klass[i] != name:
                also[i].append(name)
    klass[matched] = "matched"
    unpriced = ~np.isfinite(ours_usd)
    stake = np.where(unpriced, np.nan, np.round(ours_usd - amount, 2) + 0.0)
    stake = np.where(matched, 0.0, stake)

    merged = merged.assign(ours_kwh=np.round(ours_kwh, 6) + 0.0, iso_kwh=iso_kwh,
                           delta_kwh=np.round(ours_kwh - iso_kwh, 6) + 0.0,
                           event_rate_usd_per_mwh=event_rate, ours_usd=np.round(ours_usd, 6), iso_amount_usd=amount,
                           usd_at_stake=stake, **{"class": klass}, also=[";".join(a) for a in also])
    merged["reason"] = [_reason(r) for r in merged.to_dict("records")]
    merged = merged.sort_values(["event_id", "resource_id", "interval_start", "statement_id"],
                                na_position="last").reset_index(drop=True)
    disc = merged[merged["class"] != "matched"].copy()
    disc["evidence"] = [f"disputes/{package_name(i + 1, r)}/report.html" for i, r in enumerate(disc.to_dict("records"))]
    merged.loc[disc.index, "evidence"] = disc["evidence"]
    discrepancies = disc[DISCREPANCY_COLUMNS].reset_index(drop=True)
    summary = _summary(merged, discrepancies)
    return Reconciliation(summary=summary, discrepancies=discrepancies, lines=merged, performance=perf, meter=meter,
                          events=by_id, registry_sites=sites, warnings=warnings)


def _fmt(value: float, unit: str) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:,.3f} {unit}"


def _reason(r: Mapping) -> str:
    """One sentence an operator can put in a dispute."""
    k = r["class"]
    if k == "matched":
        return "amount agrees with ours within 1 cent and 0.1 %"
    if k == "registration_mismatch":
        if not r["on_statement"]:
            return (f"no statement line for resource {r['resource_id']} at this interval of event {r['event_id']}; "
                    f"its {int(r['n_sites'])} enrolled site(s) delivered {_fmt(r['ours_kwh'], 'kWh')}")
        return f"resource {r['resource_id']} has no site enrolled in the event's ISO; the ISO credits {_fmt(r['iso_kwh'], 'kWh')}"
    if k == "rate_mismatch":
        return (f"line rate {r['rate_usd_per_mwh']:g} $/MWh differs from the event rate "
                f"{r['event_rate_usd_per_mwh']:g} $/MWh")
    if k == "arithmetic":
        return (f"amount {r['iso_amount_usd']:.2f} USD is not the ISO's reduction {_fmt(r['iso_kwh'], 'kWh')} x "
                f"{r['rate_usd_per_mwh']:g} $/MWh (or its baseline minus load is not its reduction)")
    if k == "missing_ami":
        return f"meter data missing for {int(r['n_missing'])} site(s): {r['missing_sites']}"
    if k == "load_mismatch":
        return f"ISO load {_fmt(r['iso_load_kw'], 'kW')} vs metered load {_fmt(r['ours_load_kw'], 'kW')}"
    return f"same loads; ISO baseline {_fmt(r['iso_baseline_kw'], 'kW')} vs ours {_fmt(r['ours_baseline_kw'], 'kW')}"


def _summary(lines: pd.DataFrame, discrepancies: pd.DataFrame) -> dict:
    """The contract's stdout object: n_lines, matched, discrepancies, usd_at_stake, by_class."""
    by_class = {}
    for name in CLASSES:
        rows = discrepancies[discrepancies["class"] == name]
        by_class[name] = {"n": int(len(rows)), "usd_at_stake": round(float(rows["usd_at_stake"].sum()), 2),
                          "unpriced": int(rows["usd_at_stake"].isna().sum())}
    return {"n_lines": int(lines["on_statement"].sum()), "matched": int((lines["class"] == "matched").sum()),
            "discrepancies": int(len(discrepancies)),
            "usd_at_stake": round(float(discrepancies["usd_at_stake"].sum()), 2), "by_class": by_class}
