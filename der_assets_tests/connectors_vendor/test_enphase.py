"""Enphase connectors (Enlighten v4 cloud, IQ Gateway local) against the twin over loopback."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from der_assets.connectors import enphase
from der_assets.connectors.http import ConnectorError
from der_assets.connectors.settings import vendor_settings
from der_assets.simulator.servers.runner import serving

from ._twin import CREDS, DAY, channel_sum, clock_sleep, make_hub, parse, ready, run, server, site_ref, twin_sum

SITE = "S-00007"  # America/Chicago, micros + IQ Battery


def _cloud(hub, **kw):
    return server("enphase").build_app(hub, api_key=CREDS["enphase_api_key"],
                                       access_token=CREDS["enphase_access_token"], **kw)


def test_cloud_day_pull_every_endpoint_parses_and_pv_matches_the_twin():
    hub, clock = make_hub()
    with serving({"enphase": _cloud(hub)}) as urls:
        async def go():
            s = vendor_settings("enphase", env={}, ready=ready(urls))
            async with enphase.client(s, clock=clock, per_minute=50) as h:
                return await enphase.pull(h, site_ref(hub, SITE), *DAY, endpoints=tuple(enphase.INTERVAL_S))
        payloads = run(go())
    assert [p.endpoint for p in payloads] == ["production_micro", "production_meter", "consumption_meter", "battery"]
    frames = {p.endpoint: parse(p) for p in payloads}
    truth = twin_sum(hub, SITE, "pv_kwh", *DAY)
    assert channel_sum([frames["production_micro"]], "pv_kwh", *DAY) == pytest.approx(truth, abs=0.001)  # whole Wh
    assert channel_sum([frames["production_meter"]], "pv_kwh", *DAY) == pytest.approx(truth, abs=0.001)
    assert channel_sum([frames["consumption_meter"]], "load_kwh", *DAY) == pytest.approx(
        twin_sum(hub, SITE, "load_kwh", *DAY), abs=0.001)
    micro = frames["production_micro"]
    assert len(micro[(micro["interval_start"] >= DAY[0]) & (micro["interval_start"] < DAY[1])]) == 288


def test_cloud_windows_split_at_one_week_and_days_follow_the_system_zone():
    tz = "America/Chicago"
    w = enphase.request_windows("production_meter", "2026-07-01T05:00Z", "2026-07-11T05:00Z", tz)
    assert [(a.isoformat(), b.isoformat(), g) for a, b, g in w] == [
        ("2026-07-01T05:00:00+00:00", "2026-07-08T05:00:00+00:00", "week"),
        ("2026-07-08T05:00:00+00:00", "2026-07-11T05:00:00+00:00", "week")]
    # one local day across spring-forward is 23 h: a 24 h UTC window needs a second call
    w = enphase.request_windows("production_meter", "2026-03-08T06:00Z", "2026-03-09T06:00Z", tz)
    assert [(b - a).total_seconds() / 3600 for a, b, _g in w] == [24.0]
    assert [g for *_x, g in w] == ["week"]
    w = enphase.request_windows("production_meter", "2026-03-08T06:00Z", "2026-03-08T12:00Z", tz)
    assert [g for *_x, g in w] == ["day"]
    assert enphase.request_windows("production_micro", "2026-07-01T05:00Z", "2026-07-01T05:05Z", tz)[0][2] == "5mins"


def test_cloud_401_names_the_endpoint_and_429_waits_for_the_plan_period():
    hub, clock = make_hub(days=2)
    with serving({"enphase": _cloud(hub, plan="Watt", rate_clock=hub.now)}) as urls:  # limits on the test clock
        async def bad():
            s = vendor_settings("enphase", env={"DER_ENPHASE_ACCESS_TOKEN": "expired"}, ready=ready(urls))
            async with enphase.client(s, clock=clock, per_minute=1000) as h:
                await enphase.pull(h, site_ref(hub, SITE), *DAY, endpoints=("battery",))
        with pytest.raises(ConnectorError) as info:
            run(bad())
        assert info.value.status == 401 and str(info.value).startswith("enphase/battery site=S-00007 window=")

        waits: list[float] = []

        async def over_plan():
            s = vendor_settings("enphase", env={}, ready=ready(urls))
            # our own limiter is set above the plan (misconfigured) so the server's 429 is reached
            async with enphase.client(s, clock=clock, per_minute=1000, sleep=clock_sleep(clock, hub, waits)) as h:
                out = []
                for _ in range(12):  # Watt plan: 10 per minute
                    out += await enphase.pull(h, site_ref(hub, SITE), *DAY, endpoints=("production_meter",))
                return out, [a[1] for a in h.attempts_log]
        payloads, statuses = run(over_plan())
    assert len(payloads) == 12 and statuses.count(429) == 1
    # no Retry-After on Enphase 429s: the wait is read from the body's period_end (the next minute)
    assert waits == [60.0]


def test_gateway_poll_logs_parse_and_pv_matches_the_twin():
    hub, clock = make_hub(days=2.75)  # 2026-07-17 18:00Z = 13:00 in Chicago
    t0 = clock()
    app = server("enphase").build_gateway_app(hub, token=CREDS["enphase_gateway_token"])
    with serving({"enphase_gateway": app}) as urls:
        async def go():
            site = site_ref(hub, SITE)
            s = vendor_settings("enphase_gateway", env={}, ready=ready(urls))
            async with enphase.gateway_client(site, s, clock=clock) as h:
                return await enphase.pull_gateway(h, site, polls=13, every_s=300, sleep=clock_sleep(clock, hub))
        payloads = run(go())
    assert [p.endpoint for p in payloads] == ["production.json", "ivp_meters_readings"]
    readings = payloads[1].content.splitlines()
    assert len(readings) == 1 + 13 and "measurementType" in json.loads(readings[0])[0]  # /ivp/meters leads the log
    end = t0 + pd.Timedelta(hours=1)
    assert (payloads[0].window_start, payloads[0].window_end) == (t0, end)
    truth = twin_sum(hub, SITE, "pv_kwh", t0, end)
    for p in payloads:
        df = parse(p)
        pv = df[df["channel"] == "pv_kwh"]
        assert len(pv) == 4 and (pv["quality"] == "measured").all()
        assert pv["value"].sum() == pytest.approx(truth, abs=0.002)
    batt = parse(payloads[1])
    assert batt[batt["channel"] == "battery_kwh"]["value"].sum() == pytest.approx(
        twin_sum(hub, SITE, "battery_kwh", t0, end), abs=0.002)


def test_gateway_wrong_token_is_a_connector_error():
    hub, clock = make_hub(days=2)
    app = server("enphase").build_gateway_app(hub, token=CREDS["enphase_gateway_token"])
    with serving({"enphase_gateway": app}) as urls:
        async def go():
            site = site_ref(hub, SITE)
            s = vendor_settings("enphase_gateway", env={"DER_ENPHASE_GATEWAY_TOKEN": "nope"}, ready=ready(urls))
            async with enphase.gateway_client(site, s, clock=clock) as h:
                await enphase.pull_gateway(h, site, polls=2, every_s=300, sleep=clock_sleep(clock, hub))
        with pytest.raises(ConnectorError, match=r"enphase/ivp_meters site=S-00007 .*HTTP 401"):
            run(go())
