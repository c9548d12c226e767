"""The SMA twin asked for data before its first five-minute step has elapsed answers 200 with an
empty set, as the real API does for a day with nothing measured yet, never a 500."""

from __future__ import annotations

import httpx
import pandas as pd

from der_assets.simulator.servers import sma
from der_assets.simulator.servers.runner import serving

from ._shape import START, make_hub

TOKEN = "twin-sma-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_every_measurement_set_is_empty_not_an_error():
    hub, clock = make_hub(hours=0)
    with serving({"sma": sma.build_app(hub, access_token=TOKEN)}) as urls, \
            httpx.Client(base_url=urls["sma"], timeout=10) as client:
        plant = client.get("/v1/plants", headers=AUTH).json()["plants"][0]
        device = client.get(f"/v1/plants/{plant['plantId']}/devices/lean", headers=AUTH).json()["devices"][0]
        today = START.tz_convert(plant["timezone"]).date().isoformat()  # 2026-07-14 locally: the day before
        for elapsed_s, base in ((0, f"/v1/plants/{plant['plantId']}"), (0, f"/v1/devices/{device['deviceId']}"),
                                (200, f"/v1/plants/{plant['plantId']}"), (0, f"/v1/devices/{device['deviceId']}")):
            clock.advance(seconds=elapsed_s)  # at the start, then 200 s into the first 300 s step
            for period, query in (("Day", {"Date": today}), ("Day", {"Date": "2026-07-15"}), ("Recent", {})):
                for energy in ({"ReturnEnergyValues": "true"}, {}):
                    r = client.get(f"{base}/measurements/sets/EnergyAndPowerPv/{period}",
                                   params={**query, **energy}, headers=AUTH)
                    assert r.status_code == 200, (base, period, energy, r.text)
                    body = r.json()
                    assert body["set"] == [] and body["setType"] == "EnergyAndPowerPv"
                    assert body["plant"]["plantId"] == plant["plantId"] and body["resolution"] == "FiveMinutes"
        clock.advance(seconds=100)  # the first step has now elapsed: one entry, labelled at its end
        r = client.get(f"/v1/plants/{plant['plantId']}/measurements/sets/EnergyAndPowerPv/Recent",
                       params={"ReturnEnergyValues": "true"}, headers=AUTH)
        first = r.json()["set"]
        end = (START + pd.Timedelta(seconds=300)).tz_convert(plant["timezone"]).strftime("%Y-%m-%dT%H:%M:%S")
        assert r.status_code == 200 and [e["time"] for e in first] == [end]
