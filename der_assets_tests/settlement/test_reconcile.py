"""A month of synthetic AMI, three events, and a statement with one known error of each class.

"Ours" is computed here by hand from the rule's text (PJM Same Day (3+2): the mean load of the 3 hours
before the event after skipping 1, and of the 2 hours after it after skipping 1; hourly lines), so the
dollars at stake are checked against arithmetic done in the test, not against the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from der_assets.cli import main
from der_assets_tests.settlement import synthetic as syn

H = pd.Timedelta(hours=1)


def hand_ours(meter: pd.DataFrame) -> pd.DataFrame:
    """Per event, resource and hour: baseline_kw, load_kw, reduction_kwh, by the Same Day (3+2) rule."""
    resources = {m: r or f"PJM-{z}" for _, m, r, z, status in syn.SITES if status == "active"}
    kw = meter.assign(kw=meter["grid_kwh"] * 4.0)
    rows = []
    for event_id, start, end in syn.EVENTS:
        start, end = pd.Timestamp(start), pd.Timestamp(end)
        window = (((kw["interval_start"] >= start - 4 * H) & (kw["interval_start"] < start - H))
                  | ((kw["interval_start"] >= end + H) & (kw["interval_start"] < end + 3 * H)))
        base = kw[window].groupby("meter_id")["kw"].mean()
        hour = start
        while hour < end:
            inside = kw[(kw["interval_start"] >= hour) & (kw["interval_start"] < hour + H)]
            load = inside.groupby("meter_id")["kw"].mean()
            for resource in sorted(set(resources.values())):
                meters = [m for m, r in resources.items() if r == resource]
                b, ld = float(base[meters].sum()), float(load[meters].sum())
                rows.append({"event_id": event_id, "resource_id": resource, "interval_start": hour,
                             "baseline_kw": b, "load_kw": ld, "reduction_kwh": b - ld})
            hour += H
    return pd.DataFrame(rows)


def clean_statement(ours: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "statement_id": "ST-2026-07", "iso": "PJM", "resource_id": ours["resource_id"], "event_id": ours["event_id"],
        "interval_start": ours["interval_start"], "interval_s": 3600, "iso_baseline_kw": ours["baseline_kw"],
        "iso_load_kw": ours["load_kw"], "iso_reduction_kwh": ours["reduction_kwh"], "rate_usd_per_mwh": syn.RATE,
        "amount_usd": (ours["reduction_kwh"] * syn.RATE / 1000).round(2)})


def _at(frame, event_id, resource_id, hour):
    start = pd.Timestamp(dict((e, s) for e, s, _ in syn.EVENTS)[event_id]) + hour * H
    mask = (frame["event_id"] == event_id) & (frame["resource_id"] == resource_id) & (frame["interval_start"] == start)
    assert mask.sum() == 1
    return mask


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """Files for `der settle`, the statement with its seeded errors, and the expected dollars per class."""
    d = tmp_path_factory.mktemp("month")
    meter = syn.meter_frame()
    ours = hand_ours(meter)
    st = clean_statement(ours)
    expected: dict[str, tuple] = {}

    def reprice(mask, rate=syn.RATE):
        st.loc[mask, "amount_usd"] = (st.loc[mask, "iso_reduction_kwh"] * rate / 1000).round(2)

    def ours_usd(mask):
        return float(ours.loc[mask, "reduction_kwh"].iloc[0] * syn.RATE / 1000)

    m = _at(st, "E1", "AGG-A", 0)  # arithmetic: the amount is 5 dollars more than reduction x rate
    st.loc[m, "amount_usd"] += 5.00
    expected["arithmetic"] = ("E1", "AGG-A", 0, round(ours_usd(m) - st.loc[m, "amount_usd"].iloc[0], 2))
    m = _at(st, "E1", "AGG-A", 1)  # rate_mismatch: priced at 1600 $/MWh, the event's rate is 1500
    st.loc[m, "rate_usd_per_mwh"] = 1600.0
    reprice(m, 1600.0)
    expected["rate_mismatch"] = ("E1", "AGG-A", 1, round(ours_usd(m) - st.loc[m, "amount_usd"].iloc[0], 2))
    m = _at(st, "E2", "AGG-A", 0)  # load_mismatch: the ISO sees 1.5 kW more load, so 1.5 kWh less reduction
    st.loc[m, "iso_load_kw"] += 1.5
    st.loc[m, "iso_reduction_kwh"] -= 1.5
    reprice(m)
    expected["load_mismatch"] = ("E2", "AGG-A", 0, round(ours_usd(m) - st.loc[m, "amount_usd"].iloc[0], 2))
    m = _at(st, "E2", "PJM-BGE", 1)  # baseline_mismatch: same load, a baseline 2 kW lower
    st.loc[m, "iso_baseline_kw"] -= 2.0
    st.loc[m, "iso_reduction_kwh"] -= 2.0
    reprice(m)
    expected["baseline_mismatch"] = ("E2", "PJM-BGE", 1, round(ours_usd(m) - st.loc[m, "amount_usd"].iloc[0], 2))
    # missing_ami: meter M2 (site S2 of AGG-A) has no rows in E3's first hour; the ISO's line stands as is
    e3 = pd.Timestamp(syn.EVENTS[2][1])
    gone = (meter["meter_id"] == "M2") & (meter["interval_start"] >= e3) & (meter["interval_start"] < e3 + H)
    meter_cut = meter[~gone]
    expected["missing_ami"] = ("E3", "AGG-A", 0, None)
    # registration_mismatch, line side: AGG-X has no enrolled site (S6 is retired), the ISO credits it 4.50
    extra = st[_at(st, "E3", "AGG-A", 1)].assign(resource_id="AGG-X", iso_baseline_kw=5.0, iso_load_kw=2.0,
                                                 iso_reduction_kwh=3.0, amount_usd=4.50)
    expected["registration_mismatch"] = ("E3", "AGG-X", 1, -4.50)
    # registration_mismatch, our side: the statement has no line for PJM-BGE in E3's second hour
    m = _at(st, "E3", "PJM-BGE", 1)
    missing_line_usd = round(ours_usd(m), 2)
    st = st[~m]
    # matched within tolerance: the ISO rounded a ~13 dollar line one cent up (1 cent, under 0.1 %)
    m = _at(st, "E2", "AGG-A", 1)
    assert st.loc[m, "amount_usd"].iloc[0] > 10.0
    st.loc[m, "amount_usd"] += 0.01
    near_amount = float(st.loc[m, "amount_usd"].iloc[0])
    st = pd.concat([st, extra], ignore_index=True)
    files = {"statement": syn.write_statement(st, d / "STATEMENT.csv"), "meter": syn.write_meter(meter_cut, d / "METER.csv"),
             "events": syn.write_events(d / "EVENTS.json"), "registry": syn.write_registry(d / "REGISTRY.csv")}
    return {"dir": d, "files": files, "expected": expected, "missing_line_usd": missing_line_usd, "ours": ours,
            "statement": st, "near_amount": near_amount}


def run_settle(files, out=None, capsys=None):
    argv = ["settle", "--iso", "pjm", "--statement", str(files["statement"]), "--meter", str(files["meter"]),
            "--events", str(files["events"]), "--registry", str(files["registry"])]
    if out is not None:
        argv += ["--out", str(out)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


@pytest.fixture(scope="module")
def settled(month, tmp_path_factory):
    import contextlib
    import io

    out = month["dir"] / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = run_settle(month["files"], out)
    return {"code": code, "summary": json.loads(stdout.getvalue()), "stderr": stderr.getvalue(), "out": out}


def test_every_class_on_its_line_with_its_dollars(month, settled):
    assert settled["code"] == 0, settled["stderr"]
    table = pd.read_csv(settled["out"] / "discrepancies.csv")
    assert list(table.columns) == ["statement_id", "resource_id", "event_id", "interval_start", "ours_kwh", "iso_kwh",
                                   "delta_kwh", "usd_at_stake", "class", "evidence"]
    table["interval_start"] = pd.to_datetime(table["interval_start"], utc=True)
    starts = {e: pd.Timestamp(s) for e, s, _ in syn.EVENTS}
    for klass, (event_id, resource_id, hour, usd) in month["expected"].items():
        rows = table[(table["event_id"] == event_id) & (table["resource_id"] == resource_id)
                     & (table["interval_start"] == starts[event_id] + hour * H)]
        assert list(rows["class"]) == [klass], (klass, rows)
        if usd is None:
            assert rows["usd_at_stake"].isna().all()  # missing AMI is not priced, never as if zero
        else:
            assert rows["usd_at_stake"].iloc[0] == pytest.approx(usd, abs=0.005), klass
    statementless = table[table["statement_id"].isna()]
    assert len(statementless) == 1
    row = statementless.iloc[0]
    assert (row["class"], row["resource_id"], row["event_id"]) == ("registration_mismatch", "PJM-BGE", "E3")
    assert row["usd_at_stake"] == pytest.approx(month["missing_line_usd"], abs=0.005)
    assert len(table) == 7


def test_summary_matches_the_contract(month, settled):
    s = settled["summary"]
    assert list(s) == ["n_lines", "matched", "discrepancies", "usd_at_stake", "by_class"]
    assert s["n_lines"] == 12 and s["discrepancies"] == 7 and s["matched"] == 6
    priced = [usd for *_, usd in month["expected"].values() if usd is not None] + [month["missing_line_usd"]]
    assert s["usd_at_stake"] == pytest.approx(sum(priced), abs=0.01)
    assert s["by_class"]["registration_mismatch"]["n"] == 2
    assert s["by_class"]["missing_ami"] == {"n": 1, "usd_at_stake": 0.0, "unpriced": 1}
    assert all(s["by_class"][k]["n"] == 1 for k in ("arithmetic", "rate_mismatch", "load_mismatch", "baseline_mismatch"))


def test_matched_within_a_cent_and_a_tenth_of_a_percent(month, settled):
    from der_assets.settlement.reconcile import amounts_match

    assert amounts_match(np.array([9.00]), np.array([9.008]))[0]
    assert not amounts_match(np.array([9.00]), np.array([9.011]))[0]  # over a cent
    assert not amounts_match(np.array([2.00]), np.array([2.005]))[0]  # a cent, but over 0.1 %
    assert not amounts_match(np.array([np.nan]), np.array([0.0]))[0]  # unknown never matches
    table = pd.read_csv(settled["out"] / "discrepancies.csv")
    near = table[(table["event_id"] == "E2") & (table["resource_id"] == "AGG-A")]
    assert len(near) == 1 and near["class"].iloc[0] == "load_mismatch"  # hour 1 is matched, only hour 0 is not


def test_dispute_packages_are_self_contained(settled):
    table = pd.read_csv(settled["out"] / "discrepancies.csv")
    for resource_id, evidence in zip(table["resource_id"], table["evidence"], strict=True):
        report = settled["out"] / evidence
        page = report.read_text()
        assert "data:image/png;base64," in page and "<script" not in page and "http" not in page.split("<body>")[1]
        frame = pd.read_csv(report.parent / "evidence.csv")
        assert frame["record"].iloc[0] == "statement_line"
        if resource_id == "AGG-X":  # its only site is retired and has no meter rows
            assert len(frame) == 1
            continue
        assert (frame["record"].iloc[1:] == "meter_interval").all() and frame["in_event"].iloc[1:].any()
    assert not [p for p in settled["out"].parent.iterdir() if p.name.startswith(".out")]  # no temp dir left


def test_unverified_parameters_are_noted_on_stderr(settled):
    assert "der: note:" in settled["stderr"] and "unverified" in settled["stderr"]
