"""PJM monthly billing statement CSV (MSRS "Billing" report), as far as its layout could be checked.

Layout VERIFIED-SECONDARY (shared/reference/capacity-settlement-rules.md 6.5, read from a public
third-party loader of the real files, not from PJM's documentation):
1. nine header rows, `NAME,VALUE`: REPORT NAME, CUSTOMER ACCOUNT, CUSTOMER CODE, CUSTOMER ID, FINAL
   BILLING STATEMENT ISSUED, BILLING PERIOD START DATE, BILLING PERIOD END DATE, INVOICE NUMBER,
   INVOICE DUE DATE;
2. a blank row, then a column header row;
3. detail rows whose first cell is a number: charge code, adjustment code, billing line item name,
   source billing period start, amount;
4. total rows named in the third cell: Total Charges, Total Credits, Monthly Billing Net Total,
   Previous Weekly Billing Net Total, Total Due;
5. a last line `End of Report`.

UNVERIFIED (marked on every output that relies on it):
- the sign convention of amounts and how the totals relate. `check_totals` checks only what holds under
  either sign convention, in magnitude: the detail amounts sum to the Monthly Billing Net Total, and
  {Total Charges, Total Credits} are the sums of the detail amounts of each sign.
  Total Due = Net - Previous Weekly is reported as an unverified note, never as a failure.
- which billing line items are capacity: PJM's capacity BLI numbers were NOT FOUND, so the category of
  each line comes from data/pjm_billing_line_items.csv, whose capacity rows are tagged unverified and
  matched by name only; a line categorized from such a row has `category_status = "unverified"`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from der_assets.errors import ValidationFailed
from der_assets.settlement.statements.records import csv_records

HEADER_FIELDS = ("REPORT NAME", "CUSTOMER ACCOUNT", "CUSTOMER CODE", "CUSTOMER ID", "FINAL BILLING STATEMENT ISSUED",
                 "BILLING PERIOD START DATE", "BILLING PERIOD END DATE", "INVOICE NUMBER", "INVOICE DUE DATE")
DETAIL_COLUMNS = ("charge_code", "adjustment_code", "billing_line_item_name", "source_billing_period_start", "amount_usd")
TOTALS = ("Total Charges", "Total Credits", "Monthly Billing Net Total", "Previous Weekly Billing Net Total", "Total Due")
BLI_FILE = Path(__file__).resolve().parents[1] / "data" / "pjm_billing_line_items.csv"
TOLERANCE_USD = 0.01
LAYOUT_STATUS = "verified-secondary"


@dataclass
class BillingStatement:
    header: dict[str, str]
    lines: pd.DataFrame  # row, DETAIL_COLUMNS, category, category_status
    totals: dict[str, float]
    warnings: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def line_item_map() -> pd.DataFrame:
    """The BLI -> category mapping (data file), with each entry's verification status and source."""
    return pd.read_csv(BLI_FILE, dtype=str, keep_default_na=False)


def _categorize(lines: pd.DataFrame, mapping: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    by_code = {r.charge_code: r for r in mapping.itertuples() if r.charge_code}
    by_name = {r.billing_line_item_name.strip().lower(): r for r in mapping.itertuples()}
    category, status = [], []
    for code, item in zip(lines["charge_code"], lines["billing_line_item_name"], strict=True):
        hit = by_code.get(code) or by_name.get(str(item).strip().lower())
        category.append(hit.category if hit is not None else "")
        status.append(hit.status if hit is not None else "unmapped")
    return pd.Series(category, index=lines.index), pd.Series(status, index=lines.index)


def _amount(text: str) -> float:
    cleaned = text.replace(",", "").replace("$", "").strip()
    if cleaned.startswith("(") and cleaned.endswith(")"):
        cleaned = "-" + cleaned[1:-1]
    value = float(cleaned)
    if not math.isfinite(value):
        raise ValueError
    return value


def parse_billing(content: bytes, *, name: str = "billing.csv") -> BillingStatement:
    """The statement's header, detail lines (categorized) and totals, or ValidationFailed naming the row."""

    def fail(message: str) -> None:
        raise ValidationFailed(f"{name}: {message}", [])

    records = csv_records(content, name)
    if len(records) < 11:
        fail(f"row {len(records) + 1}: too short for a PJM billing statement (9 header rows, a blank, a column header)")
    header: dict[str, str] = {}
    for number, (want, cells) in enumerate(zip(HEADER_FIELDS, records[:9], strict=True), start=1):
        got = cells[0].strip().upper() if cells else ""
        if got != want:
            fail(f"row {number}, column 1: {got or 'empty'!r} where the header row {want!r} belongs")
        header[want] = cells[1].strip() if len(cells) > 1 else ""
    if any(c.strip() for c in records[9]):
        fail("row 10: expected the blank row after the nine header rows")
    details: list[dict[str, object]] = []
    totals: dict[str, float] = {}
    ended = False
    for number, cells in enumerate(records[11:], start=12):
        if ended and any(c.strip() for c in cells):
            fail(f"row {number}: content after End of Report")
        if not any(c.strip() for c in cells):
            continue
        if len(cells) == 1 or not any(c.strip() for c in cells[1:]):
            if cells[0].strip().lower() == "end of report":
                ended = True
                continue
        cells = [c.strip() for c in cells] + [""] * max(0, 5 - len(cells))
        if cells[0].isdigit():
            try:
                amount = _amount(cells[4])
            except ValueError:
                fail(f"row {number}, column amount: {cells[4]!r} is not a number")
            details.append({"row": number, "charge_code": cells[0], "adjustment_code": cells[1],
                            "billing_line_item_name": cells[2], "source_billing_period_start": cells[3],
                            "amount_usd": amount})
            continue
        label = next((t for t in TOTALS if t.lower() in " ".join(cells[:3]).lower()), None)
        if label is None:
            fail(f"row {number}, column charge code: {cells[0]!r} is neither a charge code nor a total row")
        try:
            totals[label] = _amount(cells[4])
        except ValueError:
            fail(f"row {number}, column amount: {cells[4]!r} is not a number ({label})")
    if not ended:
        fail(f"row {len(records)}: no End of Report line; the file may be cut short")
    lines = pd.DataFrame(details, columns=["row", *DETAIL_COLUMNS])
    lines["category"], lines["category_status"] = _categorize(lines, line_item_map())
    warnings = [f"{name}: PJM billing layout is {LAYOUT_STATUS} (third-party loader, not PJM's documentation)"]
    n_unverified = int((lines["category_status"] == "unverified").sum())
    if n_unverified:
        warnings.append(f"{name}: {n_unverified} line(s) categorized from unverified capacity BLI names "
                        f"({BLI_FILE.name}); check PJM's Billing Line Items list")
    return BillingStatement(header=header, lines=lines, totals=totals, warnings=warnings)


def check_totals(statement: BillingStatement, tolerance_usd: float = TOLERANCE_USD) -> pd.DataFrame:
    """Totals that do not add up: check, reported_usd, expected_usd, delta_usd, status (verified or not)."""
    amounts = statement.lines["amount_usd"]
    rows: list[dict[str, object]] = []

    def compare(check: str, reported: float | None, expected: float, status: str, magnitude: bool = False) -> None:
        if reported is None:
            rows.append({"check": check, "reported_usd": math.nan, "expected_usd": expected, "status": "total missing"})
            return
        got, want = (abs(reported), abs(expected)) if magnitude else (reported, expected)
        if abs(got - want) > tolerance_usd:
            rows.append({"check": check, "reported_usd": reported, "expected_usd": expected, "status": status})

    t = statement.totals
    net = float(amounts.sum())
    compare("net_total", t.get("Monthly Billing Net Total"), net, "unverified sign", True)
    positive, negative = float(amounts[amounts > 0].sum()), float(amounts[amounts < 0].sum())
    charges, credits = t.get("Total Charges"), t.get("Total Credits")
    if charges is not None and credits is not None:
        close = lambda a, b: abs(abs(a) - abs(b)) <= tolerance_usd  # noqa: E731
        if not ((close(charges, positive) and close(credits, negative)) or
                (close(charges, negative) and close(credits, positive))):
            rows.append({"check": "charges_and_credits", "reported_usd": abs(charges) - abs(credits),
                         "expected_usd": abs(positive) - abs(negative), "status": "unverified sign"})
    else:
        compare("total_charges", charges, positive, "unverified sign", True)
        compare("total_credits", credits, negative, "unverified sign", True)
    if "Total Due" in t and "Monthly Billing Net Total" in t and "Previous Weekly Billing Net Total" in t:
        compare("total_due", t["Total Due"], t["Monthly Billing Net Total"] - t["Previous Weekly Billing Net Total"],
                "unverified rule (note only)")
    out = pd.DataFrame(rows, columns=["check", "reported_usd", "expected_usd", "status"])
    out = out.astype({"reported_usd": "float64", "expected_usd": "float64"})
    out["delta_usd"] = (out["reported_usd"] - out["expected_usd"]).round(2)
    return out
