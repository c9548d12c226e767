"""The operators' GX suites: they pass on clean rows, name what fails on bad rows, and write Data Docs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from der_assets.telemetry.gx_rules import load_suites, run_rules

DAY = pd.Timestamp("2026-07-15T00:00Z")


def _rows(values, quality=None, channel="pv_kwh"):
    n = len(values)
    return pd.DataFrame({
        "site_id": "S1", "device_id": "S1-PV", "source": "sonnen", "channel": channel,
        "interval_start": pd.date_range(DAY, periods=n, freq="5min"), "interval_s": 300, "value": values,
        "quality": quality or ["measured"] * n, "received_at": DAY + pd.Timedelta(hours=1), "revision": 0,
    })


def test_every_source_has_a_suite():
    assert set(load_suites()) == {"solaredge", "enphase", "sma", "sonnen", "fronius", "generac", "sunspec", "ami"}


def test_clean_day_passes_and_writes_data_docs(tmp_path):
    results, docs = run_rules(_rows([0.1] * 100), pd.Series({"S1-PV": 7.6}), project_dir=tmp_path, run_name="clean")
    assert [r.source for r in results] == ["sonnen"] and results[0].success
    assert docs.startswith("file://") and Path(docs[len("file://"):]).exists()


def test_bad_day_names_the_failed_rules(tmp_path):
    values = [0.1] * 90 + [None] * 8 + [2.0, 0.1]  # 8 % missing; 2 kWh in 5 min is 24 kW from a 7.6 kW inverter
    quality = ["measured"] * 90 + ["missing"] * 8 + ["suspect", "measured"]
    results, _ = run_rules(_rows(values, quality), pd.Series({"S1-PV": 7.6}), project_dir=tmp_path, run_name="bad")
    failed = {f["expectation"] for f in results[0].failed}
    assert not results[0].success
    assert failed == {"expect_column_values_to_not_be_null", "expect_column_values_to_be_between",
                      "expect_column_pair_values_a_to_be_greater_than_b", "expect_column_values_to_be_in_set"}
