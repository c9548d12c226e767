"""SolarEdge storageData over the twin: a UTC day's last battery interval is there (issue 11 item 3 follow-up).

storageData readings are lifetime registers and SoC stamped when taken (every 5 minutes in the
twin, at irregular seconds on real sites). The interval 23:55-24:00 is closed by the reading at
or after 24:00, which a call ending at the window's end (endTime exclusive) never returns.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from der_assets.connectors import solaredge
from der_assets.connectors.settings import vendor_settings
from der_assets.simulator.servers.runner import serving

from ._twin import CREDS, DAY, make_hub, parse, ready, run, server, site_ref

SITE = "S-00001"  # America/Chicago, one battery


def _pull(hub, clock, start, end):
    app = server("solaredge").build_app(hub, api_key=CREDS["solaredge_api_key"])
    with serving({"solaredge": app}) as urls:
        async def go():
            s = vendor_settings("solaredge", env={}, ready=ready(urls))
            async with solaredge.client(s, clock=clock) as h:
                return await solaredge.pull(h, site_ref(hub, SITE), start, end, endpoints=("storageData",)), \
                    h.attempts_log
        return run(go())


def test_the_days_last_battery_interval_is_read():
    hub, clock = make_hub()
    (payload,), _ = _pull(hub, clock, *DAY)
    assert (payload.window_start, payload.window_end) == DAY  # the claimed window is still the day
    df = parse(payload)
    twin = hub.window(SITE, *DAY).set_index("interval_start")
    last = DAY[1] - pd.Timedelta(minutes=5)  # 23:55 UTC
    for channel, column in (("battery_kwh", "battery_kwh"), ("soc_pct", "soc_pct")):
        day = df[(df["channel"] == channel) & (df["interval_start"] >= DAY[0]) & (df["interval_start"] < DAY[1])]
        day = day.drop_duplicates("interval_start")
        assert len(day) == 288 and day["value"].notna().all(), channel  # 00:00 .. 23:55, none missing
        at = day.set_index("interval_start").loc[last, "value"]
        # whole-Wh registers: the last interval's energy within 1 Wh of the twin; SoC to the served 2 decimals
        assert at == pytest.approx(float(twin.loc[last, column]), abs=1e-3 if channel == "battery_kwh" else 0.005)


def test_the_call_asks_one_slot_each_side_and_stays_within_a_week():
    hub, clock = make_hub()
    (payload,), _ = _pull(hub, clock, *DAY)
    stamps = [t["timeStamp"] for t in json.loads(payload.content)["storageData"]["batteries"][0]["telemetries"]]
    # Chicago is UTC-5 in July: the UTC day is 19:00 .. 19:00 local, asked from 18:45 to 19:15 (exclusive)
    assert stamps[0] == "2026-07-15 18:45:00" and stamps[-1] == "2026-07-16 19:10:00" and len(stamps) == 288 + 6
    w = solaredge.request_windows("storageData", "2026-07-01T05:00Z", "2026-07-20T05:00Z", "America/Chicago")
    # each piece plus its two slots is exactly the vendor's week, and the pieces tile the window
    assert [b - a for a, b in w] == [pd.Timedelta(days=7) - pd.Timedelta(minutes=30)] * 2 + [
        pd.Timedelta(days=19) - 2 * (pd.Timedelta(days=7) - pd.Timedelta(minutes=30))]
    assert all(w[i][1] == w[i + 1][0] for i in range(len(w) - 1))
