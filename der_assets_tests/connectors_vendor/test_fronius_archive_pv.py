"""Fronius over the twin: a past day's PV comes from the archive (inverter per-step energy)."""

from __future__ import annotations

import pandas as pd
import pytest

from der_assets.connectors import fronius
from der_assets.connectors.settings import vendor_settings
from der_assets.simulator.servers.runner import serving

from ._twin import DAY, make_hub, parse, ready, run, server, site_ref, twin_sum

SITE = "S-00008"  # America/New_York, Datamanager with a meter at the feed-in point


def test_a_past_days_pv_is_in_the_archive_and_matches_the_twin():
    hub, clock = make_hub()
    with serving({"fronius": server("fronius").build_app(hub)}) as urls:
        async def go():
            ref = site_ref(hub, SITE)
            async with fronius.client(ref, vendor_settings("fronius", env={}, ready=ready(urls)), clock=clock) as h:
                return await fronius.pull_archive(h, ref, *DAY, gates=fronius.FroniusGates(0.0, 0.0))
        (payload,) = run(go())
    df = parse(payload)
    pv = df[(df["channel"] == "pv_kwh") & (df["interval_start"] >= DAY[0]) & (df["interval_start"] < DAY[1])]
    assert len(pv) == 288 and (pv["quality"] == "measured").all() and set(pv["interval_s"]) == {300}
    # the twin serves Wh to 6 decimals: the day within a milliwatt-hour, and step by step
    assert pv["value"].sum() == pytest.approx(twin_sum(hub, SITE, "pv_kwh", *DAY), abs=1e-3)
    twin = hub.window(SITE, *DAY).set_index("interval_start")["pv_kwh"]
    noon = pd.Timestamp("2026-07-16T16:00Z")  # 12:00 EDT
    assert pv.set_index("interval_start").loc[noon, "value"] == pytest.approx(float(twin.loc[noon]), abs=1e-6)
    assert float(twin.loc[noon]) > 0.1  # a sunny step, not a night zero
    # grid is still read from the meter registers of the same answer
    assert (df[(df["channel"] == "grid_kwh") & (df["interval_start"] < DAY[1])]["quality"] == "measured").all()
