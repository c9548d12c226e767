"""interval_telemetry on a twin with a past: a sonnen site first polled at 13:37 is not collected before it.

The twin (ManualClock) runs from 2026-07-14; the platform starts at 13:37 on the 16th: it pulls
SolarEdge's history for the 15th and the 16th so far, and polls the sonnen site three times a
quarter-hour apart. Payloads land stamped with the twin's time, as the platform's clock is the
twin's (DER_CLOCK=twin). The gap check of the past day then judges SolarEdge and leaves sonnen
wholly not collected; today's judges sonnen from its first poll on.
"""

from __future__ import annotations

import asyncio
import json

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from der_assets.connectors.landing import land
from der_assets.connectors.pull import pull_source
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.assets import interval_telemetry
from der_assets.dispatch.clock import SteppedClock, registered_clock
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.warehouse.schema import review_queue

SONNEN, SOLAREDGE = "S-00019", "S-00001"  # America/New_York and America/Chicago in demo_fleet(40)
START = pd.Timestamp("2026-07-14T00:00Z")  # the twin's past begins a day before the days judged
PAST = pd.Timestamp("2026-07-15T00:00Z")
FIRST_POLL = pd.Timestamp("2026-07-16T13:37Z")


@pytest.fixture
def landed(engine, warehouse_url, tmp_path, monkeypatch):
    fleet = demo_fleet(40)
    fleet = fleet[fleet["site_id"].isin([SONNEN, SOLAREDGE])].reset_index(drop=True)
    import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet.csv"))
    clock = ManualClock(START)
    hub = TwinHub(fleet, start=START, clock=clock)
    clock.set(FIRST_POLL)
    hub.sync()
    creds = make_credentials(0)

    def land_all(result):
        assert not result.failures, result.failures
        now = clock().to_pydatetime()
        for p in result.payloads:  # stamped on the twin's clock, the platform's (DER_CLOCK=twin); a poll's
            poll = p.source == "sonnen"  # window is its poll time, which the connector takes off the wall
            land(engine, p.content, source=p.source, endpoint=p.endpoint, site_id=p.site_id, received_at=now,
                 window_start=now if poll else p.window_start, window_end=now if poll else p.window_end)

    with serving(build_http_apps(hub, creds)) as urls:
        ready = tmp_path / "ready.json"
        ready.write_text(json.dumps({"http": urls, "sunspec": [], "ami_inbox": str(tmp_path / "inbox"),
                                     "credentials": creds, "device_base_path": "/sites/{site_id}"}))
        monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready))
        for day in (PAST, PAST + pd.Timedelta(days=1)):
            land_all(asyncio.run(pull_source("solaredge", fleet, day, day + pd.Timedelta(days=1), now=clock())))
        for _ in range(3):
            land_all(asyncio.run(pull_source("sonnen", fleet, PAST + pd.Timedelta(days=1),
                                             PAST + pd.Timedelta(days=2), now=clock())))
            clock.set(clock() + pd.Timedelta(minutes=15))
            hub.sync()
    return clock, {"warehouse": WarehouseResource(url=warehouse_url)}


def _gap_check(resources, clock, day):
    with registered_clock("not-collected", SteppedClock(clock)):
        run = dg.materialize([interval_telemetry], partition_key=day, raise_on_error=False,
                             resources={**resources, "clock": ClockResource(in_process="not-collected")})
    check = {e.check_name: e for e in run.get_asset_check_evaluations()}["gap_pct"]
    meta = {k: v.value for k, v in check.metadata.items()}
    by_source = {r.data["source"]: r.data for r in meta["by_source"].records}
    return check, meta, by_source


def test_a_past_day_judges_the_history_vendor_and_not_the_device_first_polled_later(engine, landed):
    clock, resources = landed
    check, meta, by_source = _gap_check(resources, clock, "2026-07-15")
    # sonnen: pv, battery and SoC at 5 minutes, all 288 intervals before the first poll
    assert by_source["sonnen"]["not_collected_intervals"] == "864" and by_source["sonnen"]["gap_pct"] == "None"
    assert by_source["sonnen"]["collection_start"] == FIRST_POLL.isoformat()
    # SolarEdge's PV, load and grid (15 min), battery and SoC (5 min) from its history API: all there
    assert by_source["solaredge"]["judged_intervals"] == str(3 * 96 + 2 * 288)
    assert by_source["solaredge"]["missing_intervals"] == "0" and by_source["solaredge"]["collection_start"] == "None"
    assert meta["not_collected_intervals"] == 864 and meta["gap_pct"] == 0.0 and check.passed
    with engine.connect() as conn:
        gaps = conn.execute(sa.select(sa.func.count()).select_from(review_queue)
                            .where(review_queue.c.issue == "gap", review_queue.c.day == pd.Timestamp("2026-07-15").date())
                            ).scalar_one()
    assert gaps == 0  # nothing an operator could fix


def test_today_judges_the_device_from_its_first_poll_on(landed):
    clock, resources = landed  # now 14:22, the third poll was at 14:07
    _, meta, by_source = _gap_check(resources, clock, "2026-07-16")
    sonnen = {k: by_source["sonnen"][k] for k in ("judged_intervals", "missing_intervals", "future_intervals",
                                                   "not_collected_intervals", "gap_pct", "collection_start")}
    # the poll log gives quarter-hours of pv, battery, soc, grid and load (5 series). Per series:
    # 00:00..13:15 (54) started before 13:37 with no value: not collected; 13:30 holds the first poll's
    # power, so it is collected; 13:30, 13:45, 14:00 have ended by 14:22 (3 judged, none missing);
    # 14:15..23:45 (39) are to come
    assert sonnen == {"judged_intervals": "15", "missing_intervals": "0", "future_intervals": str(5 * 39),
                      "not_collected_intervals": str(5 * 54), "gap_pct": "0.0",
                      "collection_start": FIRST_POLL.isoformat()}
    assert meta["not_collected_intervals"] == 5 * 54
