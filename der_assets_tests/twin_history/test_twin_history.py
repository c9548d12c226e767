"""The twin serves a past: every vendor API answers for yesterday as a twin that had been running would.

Twin A is `der simulate`'s service started at 13:37 UTC on 2026-07-20 with three days of history
(it simulates from 2026-07-17T00:00Z before anything listens). Twin B was started at that
midnight and stepped forward an hour at a time, as a running twin is. Both carry the same fault
plan. The project's own connectors pull yesterday from each, and every body must be the same bytes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pandas as pd
import pytest

from der_assets.connectors.pull import pull_source
from der_assets.defs.telemetry.partitions import PULL_SOURCES
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.greenbutton import day_window, delivery_delay, espi_day_xml, file_name
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, history_start, make_credentials
from der_assets.telemetry import parse_payload

from ._running import running_twin

NOW = pd.Timestamp("2026-07-20T13:37Z")
HISTORY_START = pd.Timestamp("2026-07-17T00:00Z")
YESTERDAY = pd.Timestamp("2026-07-19T00:00Z"), pd.Timestamp("2026-07-20T00:00Z")
SOLAREDGE_SITE = "S-00001"  # from connectors_vendor/_twin.py: the demo fleet's first SolarEdge site
FAULTS = {"seed": 1, "rules": [
    {"kind": "dropout", "vendor": "solaredge", "sites": [SOLAREDGE_SITE],
     "start": "2026-07-19T14:00Z", "end": "2026-07-19T16:00Z"},
    {"kind": "late", "vendor": "enphase", "delay_s": 21600},
]}


# one or two sites of each vendor (connectors_vendor/_twin.py): fast, and every API is asked
SITES = ["S-00001", "S-00003", "S-00007", "S-00008", "S-00019", "S-00039"]


def small_fleet() -> pd.DataFrame:
    reg = demo_fleet(40)
    return reg[reg["site_id"].isin(SITES)].reset_index(drop=True)


@pytest.fixture(scope="module")
def fleet() -> pd.DataFrame:
    return small_fleet()


def _pull_all(ready_file, start, end, monkeypatch) -> dict[tuple, bytes]:
    monkeypatch.setenv("DER_TWIN_READY_FILE", str(ready_file))
    fleet = small_fleet()
    out = {}
    for source in PULL_SOURCES:
        result = asyncio.run(pull_source(source, fleet, start, end, now=NOW))
        assert not result.failures, (source, result.failures[:3])
        for p in result.payloads:
            out[(p.source, p.endpoint, p.site_id, p.window_start, p.window_end)] = p.content
    return out


def test_history_start_is_midnight_days_back():
    assert history_start(NOW, 3) == HISTORY_START
    assert history_start(pd.Timestamp("2026-07-20T00:00Z"), 7) == pd.Timestamp("2026-07-13T00:00Z")
    with pytest.raises(ValueError, match="0 or more"):
        history_start(NOW, -1)


def test_yesterday_answers_as_a_running_twin_would(fleet, tmp_path, monkeypatch):
    monkeypatch.setenv("DER_ENPHASE_REQUESTS_PER_MINUTE", "100000")  # our client's pacing, not the twin's
    monkeypatch.setenv("DER_FRONIUS_ARCHIVE_GAP_S", "0")
    faults = FaultPlan.from_dict(FAULTS)
    with running_twin(fleet, tmp_path / "a", now=NOW, history_days=3, faults=faults) as (ready, ready_file):
        history = ready["history"]
        assert history["start"] == HISTORY_START.isoformat() and history["days"] == 3
        assert history["until"] == "2026-07-20T13:35:00+00:00" and history["live"] is True
        assert history["intervals"] == (3 * 24 + 13) * 12 + 7  # 5-minute steps from the 17th to 13:35 on the 20th
        served = _pull_all(ready_file, *YESTERDAY, monkeypatch)

    clock = ManualClock(HISTORY_START)
    running = TwinHub(fleet, start=HISTORY_START, clock=clock, faults=FaultPlan.from_dict(FAULTS))
    while clock() < NOW:  # a twin that has been running: it steps as its clock goes by
        clock.set(min(NOW, clock() + pd.Timedelta(hours=1)))
        running.sync()
    creds = make_credentials(0)
    with serving(build_http_apps(running, creds)) as urls:
        ready_b = tmp_path / "ready_b.json"
        ready_b.write_text(json.dumps({"http": urls, "credentials": creds, "sunspec": [], "ami_inbox": str(tmp_path)}))
        expected = _pull_all(ready_b, *YESTERDAY, monkeypatch)

    # every history API answered, with the same bytes; device-local APIs keep no past
    assert {k[0] for k in served} == {"solaredge", "enphase", "sma", "fronius"}
    assert served.keys() == expected.keys()
    different = [k for k in served if served[k] != expected[k]]
    assert not different, different[:5]

    # the fault plan holds in the past: the SolarEdge site's two dropped hours never arrive
    body = next(v for k, v in served.items() if k[:3] == ("solaredge", "energyDetails", SOLAREDGE_SITE))
    rows = parse_payload("solaredge", "energyDetails", body, site_id=SOLAREDGE_SITE, tz="America/Chicago",
                         received_at=NOW.to_pydatetime())
    pv = rows[(rows.channel == "pv_kwh")]
    dropped = pv[(pv.interval_start >= "2026-07-19T14:00Z") & (pv.interval_start < "2026-07-19T16:00Z")]
    kept = pv[(pv.interval_start >= "2026-07-19T16:00Z") & (pv.interval_start < "2026-07-19T18:00Z")]
    assert dropped["value"].notna().sum() == 0 and kept["value"].notna().sum() == 8  # quarter-hours
    assert kept["value"].sum() > 0


def test_no_past_before_the_window(fleet, tmp_path, monkeypatch):
    """The day before the history starts has nothing to say, and --history-days 0 serves no yesterday."""
    monkeypatch.setenv("DER_ENPHASE_REQUESTS_PER_MINUTE", "100000")
    monkeypatch.setenv("DER_FRONIUS_ARCHIVE_GAP_S", "0")
    with running_twin(fleet, tmp_path / "a", now=NOW, history_days=1) as (ready, ready_file):
        assert ready["history"]["start"] == "2026-07-19T00:00:00+00:00"
        inside = _pull_all(ready_file, *YESTERDAY, monkeypatch)
        before = _pull_all(ready_file, pd.Timestamp("2026-07-18T00:00Z"), pd.Timestamp("2026-07-19T00:00Z"),
                           monkeypatch)
    with running_twin(fleet, tmp_path / "b", now=NOW, history_days=0) as (ready0, ready_file0):
        assert ready0["history"]["start"] == "2026-07-20T13:35:00+00:00" and ready0["history"]["intervals"] == 0
        none = _pull_all(ready_file0, *YESTERDAY, monkeypatch)

    def measured(payloads, begin: str) -> int:
        """Values reported for intervals before `begin` (a vendor's local-day request reaches past its UTC day)."""
        n = 0
        for (source, endpoint, site, *_), body in payloads.items():
            tz = fleet.loc[fleet.site_id == site, "timezone"].iloc[0]
            rows = parse_payload(source, endpoint, body, site_id=site, tz=tz, received_at=NOW.to_pydatetime())
            n += int((rows["value"].notna() & (rows["interval_start"] < pd.Timestamp(begin))).sum())
        return n

    assert measured(inside, "2026-07-20T00:00Z") > 500
    assert measured(before, "2026-07-19T00:00Z") == 0
    assert measured(none, "2026-07-20T13:35Z") == 0


def test_past_ami_lands_in_the_inbox(fleet, tmp_path):
    """Each meter's local days inside the window, due 24-48 h after they ended, are in the inbox, stamped when due."""
    with running_twin(fleet, tmp_path / "a", now=NOW, history_days=3) as (ready, _):
        inbox = tmp_path / "a" / "inbox"
        names = sorted(p.name for p in inbox.glob("*.xml"))
        assert ready["history"]["ami_backlog"] == "delivered"
        assert ready["history"]["ami_files_delivered"] == len(names)
        sites = fleet.drop_duplicates("site_id").dropna(subset=["meter_id"])
        expected = []
        for site in sites.itertuples():
            # local days 17, 18, 19 July: the 16th began before the window (UTC midnight is the
            # 16th's evening in Chicago and New York); the 20th has not ended
            for day in (dt.date(2026, 7, 17), dt.date(2026, 7, 18), dt.date(2026, 7, 19)):
                start, end = day_window(site.timezone, day)
                assert start >= HISTORY_START
                if end + delivery_delay(site.meter_id, day) <= NOW:
                    expected.append(file_name(site.meter_id, day))
        assert names == sorted(expected)
        # every meter has the 17th (due by the 19th, 05:00 UTC at the latest); the 19th is never due yet
        assert sum(n.endswith("2026-07-17.xml") for n in names) == len(sites)
        assert not any(n.endswith("2026-07-19.xml") for n in names)

    # byte for byte the file a running twin writes for that day, stamped with its delivery time
    clock = ManualClock(HISTORY_START)
    running = TwinHub(fleet, start=HISTORY_START, clock=clock)
    clock.set(NOW)
    site = sites.iloc[0]
    day = dt.date(2026, 7, 17)
    due = day_window(site.timezone, day)[1] + delivery_delay(site.meter_id, day)
    body = (inbox / file_name(site.meter_id, day)).read_bytes()
    assert body == espi_day_xml(running, site.site_id, day, updated=due)
    assert f"<updated>{due:%Y-%m-%dT%H:%M:%SZ}</updated>".encode() in body
    rows = parse_payload("greenbutton", "espi", body, site_id=site.site_id, tz=site.timezone,
                         received_at=NOW.to_pydatetime())
    assert len(rows[rows.channel == "grid_kwh"]) == 96 and rows["value"].notna().all()
