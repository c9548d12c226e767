import pytest

from der_assets.capacity import accreditation as acc
from der_assets.capacity.errors import CapacityInputError
from der_assets.capacity.risk import recommended_commit_kw, revenue_usd, penalty_usd


def test_pjm_dr_2027_by_hand():
    r = acc.class_rating("pjm", "2027/2028", "demand_resource")
    assert r.value == 0.92 and r.verified and r.tag == "verified-secondary"
    assert 1000 * r.value == pytest.approx(920.0)  # 1000 kW ICAP x 92 % = 920 kW accredited


def test_pjm_storage_and_nyiso_caf():
    assert acc.class_rating("PJM", "2026/2027", "storage_4h").value == 0.50
    assert acc.class_rating("PJM", "2028/2029", "storage_4h").value == 0.59
    assert acc.class_rating("NYISO", "2025/2026", "storage_4h", "li").value == pytest.approx(0.871)
    with pytest.raises(CapacityInputError, match="--locality"):
        acc.class_rating("NYISO", "2025/2026", "storage_4h")


def test_missing_ratings_need_the_operator():
    with pytest.raises(CapacityInputError, match="--class-rating"):
        acc.class_rating("PJM", "2028/2029", "demand_resource")
    with pytest.raises(CapacityInputError, match="--class-rating"):
        acc.class_rating("NYISO", "2025/2026", "scr")
    r = acc.class_rating("PJM", "2028/2029", "demand_resource", override=0.65)
    assert r.value == 0.65 and not r.verified and "0.65" in r.warning()
    with pytest.raises(CapacityInputError, match="fraction"):
        acc.class_rating("PJM", "2027/2028", "demand_resource", override=65)


def test_rates_and_their_tags():
    pen = acc.rate("PJM", "2027/2028", "penalty_rate")
    assert pen.value == pytest.approx(68347 / 30, abs=0.01) and not pen.verified
    assert "penalty_rate" in pen.warning()
    assert acc.rate("ISONE", "2026/2027", "penalty_rate").value == 9337
    with pytest.raises(CapacityInputError, match="--capacity-price-usd-mw-day"):
        acc.rate("NYISO", "2025/2026", "capacity_price", flag="--capacity-price-usd-mw-day")


def test_days_in_period():
    assert acc.days_in_period("PJM", "2027/2028") == 366  # holds 2028-02-29
    assert acc.days_in_period("PJM", "2026/2027") == 365
    assert acc.days_in_period("NYISO", "2027/2028") == 366  # May 2027 - April 2028


def test_every_shipped_number_has_source_and_tag():
    for name in ("class_ratings", "rates", "periods"):
        t = acc.table(name)
        assert (t["source"].str.len() > 10).all(), name
        assert t["tag"].isin(["verified", "verified-secondary", "unverified", "not-found"]).all(), name


def test_recommended_commitment_by_hand():
    # daily totals 100, 200, 300, 400; revenue slope a = 1 * 1 * 365 / 1000 = 0.365 $/kW,
    # penalty slope b = 1000 * 1 / 1000 = 1 $/kW per unit mean shortfall: optimum where share below <= a/b
    daily = [100.0, 200.0, 300.0, 400.0]
    q = recommended_commit_kw(daily, 1.0, 1.0, 365, 1000.0, 1.0)
    # J(100)=36.5, J(200)=73-25=48, J(300)=109.5-75=34.5 -> 200
    assert q == 200.0
    assert revenue_usd(200.0, 1.0, 1.0, 365) == pytest.approx(73.0)
    assert penalty_usd(200.0, daily, 1000.0, 1.0) == pytest.approx(25.0)
    # a penalty so cheap that committing the maximum pays
    assert recommended_commit_kw(daily, 1.0, 1.0, 365, 1.0, 1.0) == 400.0
