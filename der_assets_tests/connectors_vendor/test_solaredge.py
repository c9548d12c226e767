"""SolarEdge connector against the twin's Monitoring API v1 over loopback."""

from __future__ import annotations

import pandas as pd
import pytest

from der_assets.connectors import solaredge
from der_assets.connectors.http import ConnectorError, RetryPolicy
from der_assets.connectors.settings import vendor_settings
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.servers.runner import serving
from der_assets.telemetry.errors import ParseError

from ._twin import CREDS, DAY, channel_sum, clock_sleep, make_hub, parse, ready, run, server, site_ref, twin_sum

SITE = "S-00001"  # America/Chicago


def _serve(hub, **kw):
    return serving({"solaredge": server("solaredge").build_app(hub, api_key=CREDS["solaredge_api_key"], **kw)})


def _settings(urls, **override):
    return vendor_settings("solaredge", env={}, ready={**ready(urls), **override})


def test_day_pull_one_payload_per_endpoint_and_pv_matches_the_twin():
    hub, clock = make_hub()
    site = site_ref(hub, SITE)
    with _serve(hub) as urls:
        async def go():
            async with solaredge.client(_settings(urls), clock=clock) as h:
                return await solaredge.pull(h, site, *DAY, endpoints=("energyDetails", "storageData", "meters"))
        payloads = run(go())
    assert [p.endpoint for p in payloads] == ["energyDetails", "storageData", "meters"]
    for p in payloads:
        assert (p.source, p.site_id, p.tz) == ("solaredge", SITE, "America/Chicago")
        assert (p.window_start, p.window_end) == (DAY[0], DAY[1])
    frames = [parse(p) for p in payloads]  # every payload parses
    pv = channel_sum(frames[:1], "pv_kwh", *DAY)
    assert pv == pytest.approx(twin_sum(hub, SITE, "pv_kwh", *DAY), abs=1e-3)
    assert len(frames[0][frames[0]["channel"] == "pv_kwh"]) == 96  # quarter-hours in a UTC day
    # meters: lifetime registers read mid-slot, so the day's edges are interpolated: within 1 %
    assert channel_sum(frames[2:], "pv_kwh", *DAY) == pytest.approx(pv, rel=0.01)


def test_windows_are_split_at_the_vendor_maximum_range():
    # 40 days of energyDetails: one local month, then the rest
    w = solaredge.request_windows("energyDetails", "2026-06-01T05:00Z", "2026-07-11T05:00Z", "America/Chicago")
    assert [(a.isoformat(), b.isoformat()) for a, b in w] == [
        ("2026-06-01T05:00:00+00:00", "2026-07-01T05:00:00+00:00"),
        ("2026-07-01T05:00:00+00:00", "2026-07-11T05:00:00+00:00")]
    # /meters is asked one slot early, so its pieces are one slot shorter than a month
    m = solaredge.request_windows("meters", "2026-06-01T05:00Z", "2026-07-11T05:00Z", "America/Chicago")
    assert m[0][1] == pd.Timestamp("2026-07-01T04:45Z") and len(m) == 2
    # over the twin: 9 days of storageData (1 week max) is two calls; energyDetails one
    hub, clock = make_hub(days=10)
    site = site_ref(hub, SITE)
    with _serve(hub) as urls:
        async def go():
            async with solaredge.client(_settings(urls), clock=clock) as h:
                return await solaredge.pull(h, site, "2026-07-15T05:00Z", "2026-07-24T05:00Z",
                                            endpoints=("energyDetails", "storageData"))
        payloads = run(go())
    spans = [(p.endpoint, p.window_end - p.window_start) for p in payloads]
    # storageData is asked a slot before and after each piece (its edge readings), within the week
    week = pd.Timedelta(days=7) - pd.Timedelta(minutes=30)
    assert spans == [("energyDetails", pd.Timedelta(days=9)), ("storageData", week),
                     ("storageData", pd.Timedelta(days=9) - week)]
    storage = pd.concat([parse(p) for p in payloads[1:]])
    soc = storage[(storage["channel"] == "soc_pct") & (storage["interval_start"] >= "2026-07-15T05:00Z")
                  & (storage["interval_start"] < "2026-07-24T05:00Z")]
    # no gap at the split; where the two calls overlap (a slot each way) they read the same SoC
    assert soc["interval_start"].nunique() == 9 * 288 and soc["value"].notna().all()
    assert (soc.groupby("interval_start")["value"].nunique() == 1).all()


def test_wrong_api_key_gives_a_connector_error_naming_the_endpoint():
    hub, clock = make_hub(days=2)
    with _serve(hub) as urls:
        async def go():
            s = vendor_settings("solaredge", env={"DER_SOLAREDGE_API_KEY": "WRONG"}, ready=ready(urls))
            async with solaredge.client(s, clock=clock) as h:
                await solaredge.pull(h, site_ref(hub, SITE), *DAY, endpoints=("energyDetails",))
        with pytest.raises(ConnectorError) as info:
            run(go())
    assert info.value.status == 403 and info.value.endpoint == "energyDetails"  # SolarEdge answers 403, not 401
    assert str(info.value).startswith("solaredge/energyDetails site=S-00001 window=2026-07-16T00:00:00Z..")


def test_429_with_retry_after_is_retried_after_the_asked_delay():
    until = pd.Timestamp("2026-07-17T00:00:01Z")
    plan = FaultPlan.from_dict({"rules": [{"kind": "http_429", "vendor": "solaredge", "probability": 1.0,
                                           "delay_s": 1, "end": until.isoformat()}]})
    hub, clock = make_hub(days=2, faults=plan)
    waits: list[float] = []
    with _serve(hub) as urls:
        async def go():
            async with solaredge.client(_settings(urls), clock=clock, sleep=clock_sleep(clock, hub, waits)) as h:
                payloads = await solaredge.pull(h, site_ref(hub, SITE), *DAY, endpoints=("energyDetails",))
                return payloads, h.attempts_log
        payloads, log = run(go())
    assert waits == [1.0]  # Retry-After: 1 from the server, then the fault window has passed
    assert [a[1] for a in log] == [429, 200]
    assert len(parse(payloads[0])) > 0


def test_daily_budget_stops_before_the_api_does_and_truncated_bodies_are_landed():
    plan = FaultPlan.from_dict({"rules": [{"kind": "truncate", "vendor": "solaredge", "probability": 1.0}]})
    hub, clock = make_hub(days=2, faults=plan)
    site = site_ref(hub, SITE)
    with _serve(hub) as urls:
        async def go():
            async with solaredge.client(_settings(urls), clock=clock, daily_limit=2,
                                        retry=RetryPolicy(attempts=1)) as h:
                got = await solaredge.pull(h, site, *DAY, endpoints=("energyDetails", "storageData"))
                with pytest.raises(ConnectorError, match="daily budget of 2 requests for S-00001") as info:
                    await solaredge.pull(h, site, *DAY, endpoints=("energyDetails",))
                return got, info.value, len(h.attempts_log)
        payloads, err, n_requests = run(go())
    assert n_requests == 2 and err.retryable  # the third call never left the process
    assert len(payloads) == 2
    for p in payloads:  # half a body, kept as bytes; the parser's error is what quarantines it
        with pytest.raises(ParseError, match="malformed or truncated JSON"):
            parse(p)


def test_next_cursor_is_pure_and_rereads_the_last_hour():
    first = solaredge.next_cursor(None, pd.Timestamp("2026-07-16T10:07Z"))
    assert (first.window_start, first.window_end) == (pd.Timestamp("2026-07-15T10:00Z"),
                                                      pd.Timestamp("2026-07-16T10:00Z"))
    nxt = solaredge.next_cursor(first.cursor, pd.Timestamp("2026-07-16T10:31Z"))
    assert (nxt.window_start, nxt.window_end) == (pd.Timestamp("2026-07-16T09:00Z"), pd.Timestamp("2026-07-16T10:30Z"))
    assert nxt.cursor.through == pd.Timestamp("2026-07-16T10:30Z")
    assert solaredge.next_cursor(first.cursor, pd.Timestamp("2026-07-16T10:31Z")) == nxt
