"""ISO-NE's FCM supply-credit sample and a PJM monthly billing statement, parsed and checked by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from der_assets.errors import ValidationFailed
from der_assets.settlement.statements.isone_fcm import check_arithmetic, parse_fcm_report
from der_assets.settlement.statements.pjm_billing import check_totals, parse_billing

SAMPLE = (Path(__file__).parent / "fixtures" / "isone_fcm_supply_credit_sample.csv").read_bytes()


def test_isone_sample_sections_and_values():
    report = parse_fcm_report(SAMPLE)
    assert report.title == "Forward Capacity Market Supply Credit Summary Subaccount Report"
    assert report.comments[1] == "Date: 10/01/2018 and Version: 03/24/2022 11:54:22 GMT"
    assert list(report.sections) == ["subaccount_summary", "resources"]
    summary, resources = report.sections["subaccount_summary"], report.sections["resources"]
    assert len(summary) == 4 and len(resources) == 7
    assert report.kinds["resources"]["Capacity Supply Obligation"] == "MW"
    r1 = resources.iloc[0]
    assert (r1["row"], r1["Resource Name"], r1["Resource Type"], r1["Capacity Supply Obligation"]) == (11, "Resource 1", "GEN", 600.0)
    assert r1["External Interface Name"] == ""
    assert resources.iloc[5]["Resource Type"] == "DR" and resources.iloc[5]["Capacity Supply Obligation"] == 26.097


def test_isone_sample_arithmetic_holds_by_hand():
    report = parse_fcm_report(SAMPLE)
    # by hand, from the sample: Resource 1: 3,382,500 + 16,000 - 207,500 = 3,191,000; Resource 6: 112,500 + 0 + 3,194
    # = 115,694. Rest-of-Pool (2001) = Resource 2 + Resource 6 = 2,239,877 + 115,694 = 2,355,571; NEMA-Boston (2003)
    # = 3,191,000 + 5,420,700 = 8,611,700; Maine (2005) = 500,000 + 182,925 = 682,925; Connecticut (2002) = 97,500.
    assert 3_382_500 + 16_000 - 207_500 == 3_191_000 and 2_239_877 + 115_694 == 2_355_571
    assert check_arithmetic(report).empty


def test_isone_broken_totals_are_named():
    broken = SAMPLE.replace(b"D,9001,Subaccount 1,2003,NEMA-Boston,8611700,0", b"D,9001,Subaccount 1,2003,NEMA-Boston,8611000,0")
    broken = broken.replace(b",600,3382500,16000,-207500,3191000,0", b",600,3382500,16000,-207500,3192000,0")
    problems = check_arithmetic(parse_fcm_report(broken))
    got = {(p.check, p.row, p.delta_usd) for p in problems.itertuples()}
    # the resource's own sum is 1,000 off; NEMA-Boston's subaccount total 8,611,000 - (3,192,000 + 5,420,700) = -1,700
    assert got == {("supply_credit_components", 11, 1000.0), ("subaccount_supply_credit", 7, -1700.0)}


@pytest.mark.parametrize(("text", "message"), [
    (b"X,what\n", "row 1: record tag 'X' is not C, H or D"),
    (b"D,1,2\n", "row 1: a D row before its section's two H rows"),
    (SAMPLE.replace(b",600,3382500,", b",600,33825OO,"), "row 11, column FCA Payment: '33825OO' is not a number ($)"),
])
def test_isone_bad_report(text, message):
    with pytest.raises(ValidationFailed) as info:
        parse_fcm_report(text)
    assert message in str(info.value)


HEADER_ROWS = """REPORT NAME,Monthly Billing Statement
CUSTOMER ACCOUNT,Example CSP LLC
CUSTOMER CODE,EXCSP
CUSTOMER ID,123456
FINAL BILLING STATEMENT ISSUED,08/08/2026
BILLING PERIOD START DATE,07/01/2026
BILLING PERIOD END DATE,07/31/2026
INVOICE NUMBER,2026070001
INVOICE DUE DATE,08/14/2026

Charge Code,Adjustment Code,Billing Line Item Name,Source Billing Period Start,Amount
"""


def billing(details: str, totals: str) -> bytes:
    return (HEADER_ROWS + details + totals + "End of Report\n").encode()


DETAILS = ("1200,,Day-ahead Spot Market Energy,07/01/2026,1250.50\n"
           "9999,,RPM Auction Credit,07/01/2026,-8000.00\n"
           "4321,A,Some Other Line,06/01/2026,100.25\n")
TOTALS = (",,Total Charges,,1350.75\n,,Total Credits,,-8000.00\n,,Monthly Billing Net Total,,-6649.25\n"
          ",,Previous Weekly Billing Net Total,,-1000.00\n,,Total Due,,-5649.25\n")


def test_pjm_billing_parse_and_totals():
    statement = parse_billing(billing(DETAILS, TOTALS))
    assert statement.header["CUSTOMER ID"] == "123456" and statement.header["INVOICE DUE DATE"] == "08/14/2026"
    assert list(statement.lines["charge_code"]) == ["1200", "9999", "4321"]
    assert list(statement.lines["row"]) == [12, 13, 14]
    assert statement.lines["amount_usd"].sum() == pytest.approx(-6649.25)
    assert statement.totals["Total Due"] == -5649.25
    assert check_totals(statement).empty
    cats = dict(zip(statement.lines["billing_line_item_name"], statement.lines["category_status"], strict=True))
    assert cats == {"Day-ahead Spot Market Energy": "verified-secondary", "RPM Auction Credit": "unverified",
                    "Some Other Line": "unmapped"}
    assert any("unverified capacity BLI" in w for w in statement.warnings)
    assert any("verified-secondary" in w for w in statement.warnings)


def test_pjm_billing_totals_that_do_not_add_up():
    statement = parse_billing(billing(DETAILS, TOTALS.replace("-6649.25\n,,Prev", "-6600.00\n,,Prev")))
    checks = set(check_totals(statement)["check"])
    assert "net_total" in checks


@pytest.mark.parametrize(("text", "message"), [
    (b"REPORT NAME,x\n", "too short"),
    (HEADER_ROWS.replace("CUSTOMER CODE", "CUSTOMER KODE").encode() + b"End of Report\n", "row 3, column 1"),
    (billing("1200,,Energy,07/01/2026,12x\n", ""), "row 12, column amount: '12x' is not a number"),
    (billing(DETAILS, TOTALS).replace(b"End of Report\n", b""), "no End of Report line"),
    (billing("ABC,,What,07/01/2026,1\n", ""), "row 12, column charge code"),
])
def test_pjm_billing_bad(text, message):
    with pytest.raises(ValidationFailed) as info:
        parse_billing(text)
    assert message in str(info.value)
