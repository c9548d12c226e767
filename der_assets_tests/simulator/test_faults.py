"""Fault injection: each kind does what a real fleet does, to the vendor it names, reproducibly."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from der_assets.registry.demo import demo_fleet
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub

DAY = pd.Timestamp("2026-07-15T00:00Z")


def _hub(rules: list[dict], seed: int = 0) -> tuple[TwinHub, ManualClock]:
    clock = ManualClock(DAY)
    hub = TwinHub(demo_fleet(10), start=DAY, clock=clock, faults=FaultPlan.from_dict({"seed": seed, "rules": rules}))
    clock.advance(hours=24)
    return hub, clock


def _window(hub, vendor="solaredge", site="S-00001"):
    return hub.window(site, DAY, DAY + pd.Timedelta(days=1), vendor=vendor)


def test_dropout_removes_only_its_window_and_vendor():
    rule = {"kind": "dropout", "vendor": "solaredge", "start": "2026-07-15T10:00Z", "end": "2026-07-15T11:00Z"}
    hub, _ = _hub([rule])
    assert len(_window(hub)) == 288 - 12
    assert len(_window(hub, vendor="sma")) == 288  # other vendors still report
    assert len(_window(hub, vendor="*")) == 288  # the physics (and the AMI meter) are untouched


def test_late_upload_appears_after_the_delay():
    hub, clock = _hub([{"kind": "late", "vendor": "enphase", "delay_s": 6 * 3600}])
    seen = _window(hub, vendor="enphase")
    assert seen["interval_start"].max() == DAY + pd.Timedelta(hours=18) - pd.Timedelta(minutes=5)
    clock.advance(hours=6)
    assert len(_window(hub, vendor="enphase")) == 288


def test_stuck_and_spike_and_skew():
    rules = [
        {"kind": "stuck", "vendor": "sma", "channel": "load_kwh", "start": "2026-07-15T12:00Z", "end": "2026-07-15T13:00Z"},
        {"kind": "spike", "vendor": "sonnen", "channel": "pv_kwh", "factor": 10, "start": "2026-07-15T17:00Z",
         "end": "2026-07-15T17:05Z"},
        {"kind": "clock_skew", "vendor": "fronius", "skew_s": 90},
    ]
    hub, _ = _hub(rules)
    truth = _window(hub, vendor="*")
    noon = (truth["interval_start"] >= "2026-07-15T12:00Z") & (truth["interval_start"] < "2026-07-15T13:00Z")
    stuck = _window(hub, vendor="sma")
    assert stuck.loc[noon, "load_kwh"].nunique() == 1
    assert stuck.loc[noon, "load_kwh"].iloc[0] == truth.loc[noon, "load_kwh"].iloc[0]
    spiked = _window(hub, vendor="sonnen")
    at = truth["interval_start"] == pd.Timestamp("2026-07-15T17:00Z")
    assert spiked.loc[at, "pv_kwh"].iloc[0] == pytest.approx(10 * truth.loc[at, "pv_kwh"].iloc[0])
    skewed = _window(hub, vendor="fronius")
    assert (skewed["interval_start"] - truth["interval_start"]).dt.total_seconds().eq(90).all()


def test_counter_reset_restarts_from_zero_and_keeps_counting():
    hub, _ = _hub([{"kind": "counter_reset", "vendor": "solaredge", "start": "2026-07-15T12:00Z"}])
    truth = _window(hub, vendor="*")
    reset = _window(hub)
    at = truth.index[truth["interval_start"] == pd.Timestamp("2026-07-15T12:00Z")][0]
    assert reset.loc[at, "pv_wh"] == pytest.approx(truth.loc[at, "pv_kwh"] * 1000)  # one interval since zero
    assert reset.loc[at - 1, "pv_wh"] == truth.loc[at - 1, "pv_wh"]  # before the reset: untouched
    assert reset["pv_wh"].iloc[-1] - reset.loc[at, "pv_wh"] == pytest.approx(truth["pv_wh"].iloc[-1] - truth.loc[at, "pv_wh"])


def test_transport_faults_are_reproducible_per_seed():
    rule = {"kind": "http_429", "vendor": "solaredge", "probability": 0.3}
    first = FaultPlan.from_dict({"seed": 1, "rules": [rule]})
    again = FaultPlan.from_dict({"seed": 1, "rules": [rule]})
    hits = [first.transport_fault("solaredge", "S-1") is not None for _ in range(200)]
    assert hits == [again.transport_fault("solaredge", "S-1") is not None for _ in range(200)]
    assert 40 <= sum(hits) <= 80  # about 30 % of 200
    assert FaultPlan.from_dict({"seed": 1, "rules": [rule]}).transport_fault("sma", "S-1") is None


@pytest.mark.parametrize(("kind", "status"), [("http_429", 429), ("http_5xx", 503)])
def test_transport_faults_over_http(kind, status):
    from der_assets.simulator.servers.runner import serving
    from der_assets.simulator.servers.sonnen import build_app

    hub, _ = _hub([{"kind": kind, "vendor": "sonnen", "delay_s": 7}])
    site = demo_fleet(10).query("telemetry_source == 'sonnen'")["site_id"].iloc[0]
    with serving({"sonnen": build_app(hub, auth_token="t")}) as urls:
        response = httpx.get(f"{urls['sonnen']}/sites/{site}/api/v2/status", headers={"Auth-Token": "t"})
    assert response.status_code == status
    if kind == "http_429":
        assert response.headers["Retry-After"] == "7"


def test_truncated_body_is_cut():
    from der_assets.simulator.servers.runner import serving
    from der_assets.simulator.servers.sonnen import build_app

    hub, _ = _hub([])
    faulty, _ = _hub([{"kind": "truncate", "vendor": "sonnen"}])
    site = demo_fleet(10).query("telemetry_source == 'sonnen'")["site_id"].iloc[0]
    with serving({"a": build_app(hub, auth_token="t"), "b": build_app(faulty, auth_token="t")}) as urls:
        whole = httpx.get(f"{urls['a']}/sites/{site}/api/v2/status", headers={"Auth-Token": "t"}).content
        cut = httpx.get(f"{urls['b']}/sites/{site}/api/v2/status", headers={"Auth-Token": "t"}).content
    assert len(cut) == len(whole) // 2
    assert whole.startswith(cut)


def test_bad_rule_names_the_rule():
    with pytest.raises(ValueError, match="fault rule 2: unknown fault kind 'meteor'"):
        FaultPlan.from_dict({"rules": [{"kind": "late"}, {"kind": "meteor"}]})


def test_same_seed_same_story():
    a, _ = _hub([])
    b, _ = _hub([])
    pd.testing.assert_frame_equal(_window(a, vendor="*"), _window(b, vendor="*"))
