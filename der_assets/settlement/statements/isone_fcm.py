"""ISO-NE Forward Capacity Market Supply Credit Summary Subaccount report (`SR_FCMSUPPLYCREDITSUMSUB`).

Layout VERIFIED from a real ISO-NE sample (shared/reference/capacity-settlement-rules.md, section 6.5;
file `sr_fcmsupplycreditsumsub_000000001_2018100100_20220324115422_000009001.csv`): every row starts with a
record tag,
- `C`: comment (report title; "Date: MM/DD/YYYY and Version: MM/DD/YYYY HH:MM:SS GMT"),
- `H`: a section header, always in pairs: column names, then each column's kind (String, Number, $, MW),
- `D`: a data row of the section above it.
Trailing empty columns may be dropped, so short D rows are padded.

Sections are named by their columns: `subaccount_summary` (Subaccount Supply Monthly Credit per capacity
zone), `resources` (per resource: Capacity Supply Obligation, FCA Payment, Net CSO Bilateral, Net
Reconfiguration Auction, Supply Credit, ART Payment) and `obligations` (per obligation: source, type,
auction, contract, rate; its leading columns were truncated in the sample seen, so its column list is
taken from the file, not checked). Any other section is kept as `section_<n>`.

`check_arithmetic(report)` recomputes what the report asserts (each is read off the sample, where it holds
exactly): per resource, Supply Credit = FCA Payment + Net CSO Bilateral + Net Reconfiguration Auction; per
subaccount and capacity zone, Subaccount Supply Monthly Credit = the sum of its resources' Supply Credit,
and Subaccount ART Monthly Payment = the sum of their ART Payment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from der_assets.errors import ValidationFailed
from der_assets.settlement.statements.records import csv_records

NUMERIC_KINDS = {"Number", "$", "MW"}
TOLERANCE_USD = 0.01
SUPPLY_CREDIT = "Supply Credit"
SUPPLY_PARTS = ("FCA Payment", "Net Capacity Supply Obligation Bilateral Credit or Charge",
                "Net Reconfiguration Auction Credit or Charge")


@dataclass
class FcmReport:
    """The report's comments and one frame per section (its spreadsheet row in `row`)."""

    title: str
    comments: list[str]
    sections: dict[str, pd.DataFrame] = field(default_factory=dict)
    kinds: dict[str, dict[str, str]] = field(default_factory=dict)


def _section_name(columns: list[str], index: int) -> str:
    if "Subaccount Supply Monthly Credit" in columns:
        return "subaccount_summary"
    if SUPPLY_CREDIT in columns and "FCA Payment" in columns:
        return "resources"
    if "Obligation Source" in columns:
        return "obligations"
    return f"section_{index}"


def parse_fcm_report(content: bytes, *, name: str = "fcm_supply_credit.csv") -> FcmReport:
    """The report's sections as typed frames, or ValidationFailed naming the row (and column)."""

    def fail(message: str) -> None:
        raise ValidationFailed(f"{name}: {message}", [])

    records = csv_records(content, name)
    comments: list[str] = []
    pending_names: list[str] | None = None
    current: tuple[str, list[str], list[str]] | None = None
    rows: dict[str, list[dict[str, object]]] = {}
    kinds: dict[str, dict[str, str]] = {}
    n_sections = 0
    for number, cells in enumerate(records, start=1):
        if not any(c.strip() for c in cells):
            continue
        tag = cells[0].strip()
        body = [c.strip() for c in cells[1:]]
        while body and body[-1] == "":
            body.pop()
        if tag == "C":
            comments.append(",".join(body))
        elif tag == "H":
            if pending_names is None:
                pending_names = body
                continue
            if len(body) != len(pending_names):
                fail(f"row {number}: the H kinds row has {len(body)} columns but the names row above has "
                     f"{len(pending_names)}")
            n_sections += 1
            section = _section_name(pending_names, n_sections)
            if section in rows:
                section = f"{section}_{n_sections}"
            current = (section, pending_names, body)
            rows[section] = []
            kinds[section] = dict(zip(pending_names, body, strict=True))
            pending_names = None
        elif tag == "D":
            if current is None or pending_names is not None:
                fail(f"row {number}: a D row before its section's two H rows")
            section, names, column_kinds = current
            if len(body) > len(names):
                fail(f"row {number}: {len(body)} values but section {section} has {len(names)} columns")
            body = body + [""] * (len(names) - len(body))
            record: dict[str, object] = {"row": number}
            for column, kind, value in zip(names, column_kinds, body, strict=True):
                if kind in NUMERIC_KINDS:
                    if value == "":
                        record[column] = math.nan
                        continue
                    try:
                        record[column] = float(value.replace(",", ""))
                    except ValueError:
                        fail(f"row {number}, column {column}: {value!r} is not a number ({kind})")
                else:
                    record[column] = value
            rows[section].append(record)
        else:
            fail(f"row {number}: record tag {tag!r} is not C, H or D")
    if pending_names is not None:
        fail("the last H row has no kinds row after it")
    if not rows:
        fail("no H/D sections: not an FCM supply credit report")
    title = comments[0] if comments else ""
    sections = {s: pd.DataFrame(r, columns=["row", *kinds[s]]) for s, r in rows.items()}
    return FcmReport(title=title, comments=comments, sections=sections, kinds=kinds)


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_arithmetic(report: FcmReport, tolerance_usd: float = TOLERANCE_USD) -> pd.DataFrame:
    """Every internal total that does not add up: check, row, key, reported_usd, expected_usd, delta_usd."""
    problems: list[dict[str, object]] = []
    resources = report.sections.get("resources")
    if resources is not None and not resources.empty:
        expected = resources[list(SUPPLY_PARTS)].sum(axis=1, min_count=len(SUPPLY_PARTS))
        for idx in resources.index[(resources[SUPPLY_CREDIT] - expected).abs() > tolerance_usd]:
            line = resources.loc[idx]
            problems.append({"check": "supply_credit_components", "row": int(line["row"]),
                             "key": f"resource {_show(line['Resource ID'])}", "reported_usd": float(line[SUPPLY_CREDIT]),
                             "expected_usd": float(expected[idx])})
    summary = report.sections.get("subaccount_summary")
    if summary is not None and resources is not None and not summary.empty:
        keys = ["Subaccount ID", "Capacity Zone ID"]
        sums = resources.groupby(keys)[[SUPPLY_CREDIT, "ART Payment"]].sum(min_count=1)
        for _, line in summary.iterrows():
            key = (line["Subaccount ID"], line["Capacity Zone ID"])
            for reported_col, summed_col, check in (("Subaccount Supply Monthly Credit", SUPPLY_CREDIT, "subaccount_supply_credit"),
                                                    ("Subaccount ART Monthly Payment", "ART Payment", "subaccount_art_payment")):
                if reported_col not in summary.columns:
                    continue
                total = float(sums.loc[key, summed_col]) if key in sums.index else 0.0
                if not abs(float(line[reported_col]) - total) <= tolerance_usd:
                    problems.append({"check": check, "row": int(line["row"]),
                                     "key": f"subaccount {_show(key[0])} zone {_show(key[1])}",
                                     "reported_usd": float(line[reported_col]), "expected_usd": total})
    out = pd.DataFrame(problems, columns=["check", "row", "key", "reported_usd", "expected_usd"])
    out = out.astype({"row": "int64", "reported_usd": "float64", "expected_usd": "float64"})
    out["delta_usd"] = (out["reported_usd"] - out["expected_usd"]).round(2)
    return out
