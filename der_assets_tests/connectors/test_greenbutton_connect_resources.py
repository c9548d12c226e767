"""The twin custodian's ESPI resources one by one: the Atom feeds a third party walks (UsagePoint,
MeterReading, ReadingType, IntervalBlock), published-min/max on IntervalBlocks, and the refusals
(no token 401, another subscription 403, a bad bound 400, a grant the token endpoint does not know)."""

from __future__ import annotations

import re

import httpx
import pandas as pd
from defusedxml import ElementTree as SafeET

from der_assets.registry.demo import demo_fleet
from der_assets.simulator.greenbutton import day_window, delivery_delay

from .greenbutton_connect_twin import CLIENT_ID, CLIENT_SECRET, SEED_REFRESH, connect_twin, meters

ATOM = "{http://www.w3.org/2005/Atom}"
ESPI = "{http://naesb.org/espi}"


def _kinds(body: bytes) -> list[str]:
    root = SafeET.fromstring(body)
    return [next(iter(e.find(f"{ATOM}content"))).tag.replace(ESPI, "") for e in root.iter(f"{ATOM}entry")]


def test_resources_a_third_party_walks(tmp_path):
    fleet = demo_fleet(2)
    meter = next(m for m, s in meters(fleet).items() if s == "S-00001")
    with connect_twin(fleet, "2026-07-14T00:00Z", advance_h=24 * 4) as twin:
        token = httpx.post(f"{twin.url}/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET),
                           data={"grant_type": "refresh_token", "refresh_token": SEED_REFRESH}).json()
        assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
        assert token["resourceURI"] == f"{twin.url}/espi/1_1/resource/Batch/Subscription/1"
        web = httpx.Client(base_url=f"{twin.url}/espi/1_1/resource",
                           headers={"Authorization": f"Bearer {token['access_token']}"})
        up = f"/Subscription/1/UsagePoint/{meter}"
        assert _kinds(web.get("/Authorization").content) == ["Authorization"]
        assert _kinds(web.get("/Subscription/1/UsagePoint").content) == ["UsagePoint", "UsagePoint"]
        readings = web.get(f"{up}/MeterReading").content
        assert _kinds(readings) == ["MeterReading", "MeterReading"]
        rt_href = re.findall(rb'href="[^"]*(/ReadingType/[^"]+)"', readings)[0].decode()
        rt = web.get(rt_href).content
        assert _kinds(rt) == ["ReadingType"] and b"<flowDirection>1</flowDirection>" in rt and b"<uom>72</uom>" in rt
        blocks = web.get(f"{up}/MeterReading/01/IntervalBlock")
        assert blocks.headers["content-type"].startswith("application/atom+xml")
        days = re.findall(rb"/IntervalBlock/(\d{8})\"", blocks.content)
        # each local day is published when its inbox file is delivered: 24-48 h after it ends
        published = {d: (day_window("America/Chicago", d)[1] + delivery_delay(meter, d)).floor("s")
                     for d in (pd.Timestamp(f"2026-07-{n}").date() for n in (14, 15, 16, 17))}
        due = sorted(f"{d:%Y%m%d}".encode() for d, when in published.items() if when <= twin.clock())
        assert days == due and len(days) >= 2
        first = min(published.items())
        after_first = (first[1] + pd.Timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        only_later = web.get(f"{up}/MeterReading/01/IntervalBlock", params={"published-min": after_first})
        assert re.findall(rb"/IntervalBlock/(\d{8})\"", only_later.content) == due[1:]
        epoch = web.get(f"{up}/MeterReading/01/IntervalBlock", params={"published-max": str(int(first[1].timestamp()))})
        assert re.findall(rb"/IntervalBlock/(\d{8})\"", epoch.content) == due[:1]  # epoch seconds, inclusive

        assert httpx.get(f"{twin.url}/espi/1_1/resource/Subscription/1/UsagePoint").status_code == 401
        assert web.get("/Subscription/2/UsagePoint").status_code == 403
        assert web.get(f"{up}/MeterReading/01/IntervalBlock", params={"published-min": "yesterday"}).status_code == 400
        assert web.get("/Subscription/1/UsagePoint/NOPE/MeterReading").status_code == 404
        web.close()
        for form, error in (({"grant_type": "password"}, "unsupported_grant_type"),
                            ({"grant_type": "authorization_code", "code": "made-up"}, "invalid_grant")):
            answer = httpx.post(f"{twin.url}/oauth/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET))
            assert answer.status_code == 400 and answer.json()["error"] == error
