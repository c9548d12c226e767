"""SMA (cloud), sonnen and Fronius (device-local) connectors against the twin over loopback."""

from __future__ import annotations

import json
import time

import pandas as pd
import pytest

from der_assets.connectors import fronius, sma, sonnen
from der_assets.connectors.http import ConnectorError
from der_assets.connectors.settings import vendor_settings
from der_assets.simulator.servers.runner import serving

from ._twin import CREDS, DAY, channel_sum, clock_sleep, make_hub, parse, ready, run, server, site_ref, twin_sum


def test_sma_one_payload_per_plant_local_day_and_pv_matches_the_twin():
    hub, clock = make_hub()
    site = "S-00003"  # America/Chicago: a UTC day touches two local days
    app = server("sma").build_app(hub, access_token=CREDS["sma_access_token"])
    with serving({"sma": app}) as urls:
        async def go(token=None):
            env = {"DER_SMA_ACCESS_TOKEN": token} if token else {}
            async with sma.client(vendor_settings("sma", env=env, ready=ready(urls)), clock=clock) as h:
                return await sma.pull(h, site_ref(hub, site), *DAY)
        payloads = run(go())
        with pytest.raises(ConnectorError, match=r"sma/devices site=S-00003 .*HTTP 401"):
            run(go("expired"))
    assert [(p.window_start.isoformat(), p.window_end.isoformat()) for p in payloads] == [
        ("2026-07-16T00:00:00+00:00", "2026-07-16T05:00:00+00:00"),
        ("2026-07-16T05:00:00+00:00", "2026-07-17T00:00:00+00:00")]
    frames = [parse(p) for p in payloads]
    assert channel_sum(frames, "pv_kwh", *DAY) == pytest.approx(twin_sum(hub, site, "pv_kwh", *DAY), abs=1e-3)
    assert sma.request_days("2026-07-16T00:00Z", "2026-07-26T00:00Z", "America/Chicago")[-1][0] == "2026-07-25"
    assert len(sma.request_days("2026-07-16T00:00Z", "2026-07-26T00:00Z", "America/Chicago")) == 11


def test_sonnen_poll_logs_parse_powermeter_is_wrapped_and_pv_matches_the_twin():
    hub, clock = make_hub(days=2.75)  # 14:00 in New York
    site = "S-00019"
    t0 = clock()
    app = server("sonnen").build_app(hub, auth_token=CREDS["sonnen_auth_token"])
    with serving({"sonnen": app}) as urls:
        async def go(env=None, polls=13):
            ref = site_ref(hub, site)
            async with sonnen.client(ref, vendor_settings("sonnen", env=env or {}, ready=ready(urls)),
                                     clock=clock) as h:
                return await sonnen.pull(h, ref, polls=polls, every_s=300, sleep=clock_sleep(clock, hub))
        payloads = run(go())
        with pytest.raises(ConnectorError, match=r"sonnen/status site=S-00019 .*HTTP 401"):
            run(go({"DER_SONNEN_AUTH_TOKEN": "wrong"}, polls=1))
    status, meter = payloads
    assert (status.endpoint, meter.endpoint) == ("status", "powermeter")
    first = json.loads(meter.content.splitlines()[0])
    assert set(first) == {"polled_at", "body"} and pd.Timestamp(first["polled_at"]) == t0
    assert len(meter.content.splitlines()) == 13
    end = t0 + pd.Timedelta(hours=1)
    pv = parse(meter)
    assert pv[pv["channel"] == "pv_kwh"]["value"].sum() == pytest.approx(twin_sum(hub, site, "pv_kwh", t0, end),
                                                                         abs=1e-3)
    df = parse(status)  # integrated power: 'estimated', one step late by design of /status
    assert set(df["channel"]) == {"pv_kwh", "load_kwh", "grid_kwh", "battery_kwh", "soc_pct"}
    assert (df[df["channel"] == "pv_kwh"]["quality"] == "estimated").all()


def test_fronius_archive_spacing_split_and_grid_matches_the_twin():
    hub, clock = make_hub()
    site = "S-00008"  # America/New_York, meter at the feed-in point
    gates = fronius.FroniusGates(archive_gap_s=0.3, realtime_gap_s=0.0)
    with serving({"fronius": server("fronius").build_app(hub)}) as urls:
        async def go():
            ref = site_ref(hub, site)
            async with fronius.client(ref, vendor_settings("fronius", env={}, ready=ready(urls)), clock=clock) as h:
                t = time.monotonic()
                day = await fronius.pull_archive(h, ref, *DAY, gates=gates)
                again = await fronius.pull_archive(h, ref, *DAY, gates=gates)
                return day, again, time.monotonic() - t
        day, again, elapsed = run(go())
    assert elapsed >= 0.3  # the second archive call waited for the per-device gap
    assert len(day) == 1 and day[0].endpoint == "GetArchiveData"
    df = parse(day[0])
    grid = df[(df["channel"] == "grid_kwh") & (df["interval_start"] < DAY[1])]
    assert len(grid) == 288 and (grid["quality"] == "measured").all()
    assert grid["value"].sum() == pytest.approx(twin_sum(hub, site, "grid_kwh", *DAY), abs=1e-3)  # whole-Wh registers
    # EndDate is inclusive: the parser also claims the step starting at the end, as missing
    assert df[df["interval_start"] == DAY[1]][["channel", "quality"]].values.tolist() == [
        ["grid_kwh", "missing"], ["pv_kwh", "missing"]]
    w = fronius.request_windows("2026-07-01T04:00Z", "2026-07-21T04:00Z")
    assert [(b - a).days for a, b in w] == [16, 4]


def test_fronius_power_flow_poll_log_pv_from_e_total():
    hub, clock = make_hub(days=2.75)
    site = "S-00008"
    t0 = clock()
    with serving({"fronius": server("fronius").build_app(hub)}) as urls:
        async def go():
            ref = site_ref(hub, site)
            async with fronius.client(ref, vendor_settings("fronius", env={}, ready=ready(urls)), clock=clock) as h:
                return await fronius.pull_power_flow(h, ref, polls=5, every_s=300, sleep=clock_sleep(clock, hub),
                                                     gates=fronius.FroniusGates(0.0, 0.0))
        (payload,) = run(go())
    df = parse(payload)
    pv = df[df["channel"] == "pv_kwh"]
    end = t0 + pd.Timedelta(minutes=15)
    got = pv[(pv["interval_start"] >= t0) & (pv["interval_start"] < end)]["value"].sum()
    assert got == pytest.approx(twin_sum(hub, site, "pv_kwh", t0, end), abs=1e-3)
