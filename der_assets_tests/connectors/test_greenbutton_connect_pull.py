"""Green Button Connect pulls over loopback from the twin: the same rows as the inbox files of the
same days (a fall-back day of 100 quarter-hours among them), published-min/max rounds that ask
nothing twice, and a round that spans calls when the request budget runs out."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pandas as pd
import pytest

from der_assets.connectors import greenbutton_connect as gbc
from der_assets.connectors.http import RetryPolicy
from der_assets.connectors.payloads import RawPayload
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.greenbutton import deliver_due_files
from der_assets.telemetry import ParseError, parse_payload
from der_assets.telemetry.batch import BatchContext
from der_assets.telemetry.batch.espi import read_espi
from der_assets.telemetry.daily import LandedPayload, normalize_day

from .greenbutton_connect_twin import connect_twin, meters

KEY = ["site_id", "device_id", "source", "channel", "interval_start", "interval_s", "value", "quality"]


@pytest.fixture(scope="module")
def fleet():
    return demo_fleet(3)  # ComEd sites, America/Chicago


def _pull(twin, settings, cursors=None, **kw):
    async def go():
        async with gbc.ConnectClient(settings) as client:
            return await gbc.pull(client, cursors or {}, now=twin.clock(), site_of=meters(twin.hub.registry).get,
                                  tz_of=lambda s: str(twin.hub.sites.loc[s, "timezone"]), **kw)
    return asyncio.run(go())


def _rows(payloads) -> pd.DataFrame:
    frames = [parse_payload(p.source, p.endpoint, p.content, **p.parse_kwargs()) for p in payloads]
    return pd.concat(frames, ignore_index=True)[KEY].sort_values(KEY).reset_index(drop=True)


def test_connect_pull_gives_the_same_rows_as_the_inbox_file_of_the_same_days(fleet, tmp_path):
    """A Connect pull over loopback from the twin gives the same rows as the inbox file of the same days.

    The twin runs from 2026-10-31 to 2026-11-04 12:00Z: US clocks fall back on 2026-11-01, a local day of
    25 hours (100 quarter-hours)."""
    inbox = tmp_path / "inbox"
    with connect_twin(fleet, "2026-10-31T00:00Z", advance_h=24 * 4 + 12) as twin:
        files = deliver_due_files(twin.hub, inbox)
        out = _pull(twin, twin.settings(tmp_path / "tokens.json"))
    assert not out.failures and len(out.payloads) == 3  # one answer per usage point
    site_of = meters(fleet)
    inbox_payloads = []
    for f in files:
        meter = f.name.split("_")[1]
        site = site_of[meter]
        tz = str(fleet.drop_duplicates("site_id").set_index("site_id").loc[site, "timezone"])
        inbox_payloads.append(RawPayload(f.read_bytes(), "greenbutton", "espi", site, None, None,
                                         pd.Timestamp("2026-11-04T00:00Z").to_pydatetime(), tz=tz))
    connect, inbox_rows = _rows(out.payloads), _rows(inbox_payloads)
    assert len(connect) > 0
    pd.testing.assert_frame_equal(connect, inbox_rows)
    # meter_intervals' fleet-day path (the bulk ESPI reader) takes the Connect answers whole and agrees
    batch = read_espi([p.content for p in out.payloads],
                      BatchContext(site_ids=[p.site_id for p in out.payloads], timezones=[p.tz for p in out.payloads],
                                   received_ns=np.array([pd.Timestamp(p.received_at).value for p in out.payloads],
                                                        dtype=np.int64)))
    assert sorted(batch.taken.tolist()) == list(range(len(out.payloads)))
    day = pd.Timestamp("2026-11-01T00:00Z")
    by_day = [normalize_day([LandedPayload(i, p.source, p.endpoint, p.site_id, pd.Timestamp(p.received_at), p.content)
                             for i, p in enumerate(payloads)], fleet, day_start=day,
                            believed_at=pd.Timestamp("2026-11-05T00:00Z"), sources=["ami"]).rows
              for payloads in (out.payloads, inbox_payloads, out.payloads + inbox_payloads)]
    ami = [r[r["source"] == "ami"][KEY].sort_values(KEY).reset_index(drop=True) for r in by_day]
    assert len(ami[0]) == 3 * 96 and ami[0]["value"].notna().all()
    pd.testing.assert_frame_equal(ami[0], ami[1])
    pd.testing.assert_frame_equal(ami[0], ami[2])  # a meter's day from both paths is one row per interval
    # the fall-back day is there, whole: 100 quarter-hours of 2026-11-01 local at a Chicago meter
    local = connect.assign(day=connect["interval_start"].dt.tz_convert("America/Chicago").dt.date)
    fall_back = local[(local.site_id == "S-00001") & (local.day == pd.Timestamp("2026-11-01").date())]
    assert len(fall_back) == 100


def test_incremental_rounds_ask_nothing_twice(fleet, tmp_path):
    token_file = tmp_path / "tokens.json"
    with connect_twin(fleet, "2026-07-14T00:00Z", advance_h=24 * 3) as twin:
        settings = twin.settings(token_file)
        first = _pull(twin, settings)
        (sub, cursor), = first.cursors.items()
        assert first.rounds_finished == 1 and cursor.through == twin.clock()  # the twin's now: how far it answered
        first_days = _published_days(first.payloads)

        again = _pull(twin, settings, first.cursors)  # nothing published since
        assert again.payloads == [] and again.requests == 2 + 3  # Authorization, UsagePoint list, 3 usage points
        assert again.cursors[sub].through == cursor.through

        twin.clock.advance(hours=24)  # a day on: the next day's blocks are published
        later = _pull(twin, settings, again.cursors)
        later_days = _published_days(later.payloads)
    assert later_days and not (later_days & first_days)  # only blocks published after the first round
    for site in {s for s, _ in later_days}:  # and each meter's new days follow its old ones
        assert max(d for s, d in first_days if s == site) < min(d for s, d in later_days if s == site)


def _published_days(payloads) -> set[tuple[str, str]]:
    """(site, local day) of every IntervalBlock in the answers: its self link ends in the day."""
    return {(p.site_id, day) for p in payloads for day in re.findall(rb"/IntervalBlock/(\d{8})\"", p.content)}


def test_a_round_spans_calls_when_the_budget_runs_out(fleet, tmp_path):
    with connect_twin(fleet, "2026-07-14T00:00Z", advance_h=24 * 4) as twin:
        settings = twin.settings(tmp_path / "tokens.json")
        part = _pull(twin, settings, max_requests=4)  # token, Authorization, UsagePoint list, 1 usage point
        (sub, cursor), = part.cursors.items()
        assert len(part.payloads) == 1 and part.rounds_finished == 0
        assert cursor.through is None and len(cursor.done) == 1 and cursor.round_max == twin.clock()
        twin.clock.advance(hours=30)  # later blocks are not in this round: its published-max stays
        rest = _pull(twin, settings, gbc.cursors_from_json(gbc.cursors_to_json(part.cursors)))
    assert len(rest.payloads) == 2 and rest.rounds_finished == 1
    assert rest.requests == 2  # mid-round: no Authorization, no UsagePoint list, the stored token still good
    assert {p.site_id for p in part.payloads + rest.payloads} == set(meters(fleet).values())
    assert rest.cursors[sub].through == cursor.round_max


def test_usage_points_of_inbox_utilities_are_left_alone(fleet, tmp_path):
    on_connect = {m: s for m, s in meters(fleet).items() if s == "S-00002"}
    with connect_twin(fleet, "2026-07-14T00:00Z", advance_h=24 * 4) as twin:
        async def go():
            async with gbc.ConnectClient(twin.settings(tmp_path / "tokens.json")) as client:
                return await gbc.pull(client, {}, now=twin.clock(), site_of=on_connect.get)
        out = asyncio.run(go())
    assert {p.site_id for p in out.payloads} == {"S-00002"}
    assert len(out.skipped) == 2 and out.requests == 3 + 1  # no request spent on the inbox's meters


def test_an_authorization_that_cannot_refresh_does_not_stop_the_others(fleet, tmp_path):
    token_file = tmp_path / "tokens.json"
    with connect_twin(fleet, "2026-07-14T00:00Z", advance_h=24 * 3) as twin:
        settings = twin.settings(token_file)

        async def go():
            async with gbc.ConnectClient(settings) as client:
                await client.refresh(gbc.SEED)  # the fleet's authorization, stored
                store = client.store.load()
                store["https://elsewhere.example/Authorization/9"] = gbc.Grant(refresh_token="revoked-long-ago")
                client.store.save(store)
                return await gbc.pull(client, {}, now=twin.clock(), site_of=meters(fleet).get)

        out = asyncio.run(go())
    assert len(out.payloads) == 3 and out.rounds_finished == 1
    (failure,) = out.failures
    assert failure["authorization"] == "https://elsewhere.example/Authorization/9"
    assert "invalid_grant" in failure["error"] and "revoked-long-ago" not in failure["error"]


def test_one_authorization_per_customer(fleet, tmp_path):
    """Two customers consent (code flow), beside the configured fleet-wide token: three subscriptions,
    a round costs each its Authorization, its UsagePoint list and one Batch request per meter."""
    with connect_twin(fleet, "2026-07-14T00:00Z", advance_h=24 * 3) as twin:
        async def go():
            async with gbc.ConnectClient(twin.settings(tmp_path / "tokens.json")) as client:
                for site in ("S-00001", "S-00003"):
                    async with httpx.AsyncClient() as browser:
                        back = (await browser.get(client.authorize_url("s", login_hint=site))).headers["location"]
                    await client.exchange_code(parse_qs(urlsplit(back).query)["code"][0])
                return await gbc.pull(client, {}, now=twin.clock(), site_of=meters(fleet).get)

        out = asyncio.run(go())
    by_sub = {uri.rsplit("/", 1)[-1]: c for uri, c in out.cursors.items()}
    assert sorted(by_sub) == ["1", "2", "3"] and out.rounds_finished == 3
    assert all(c.through is not None for c in by_sub.values())
    assert sorted(p.site_id for p in out.payloads) == ["S-00001", "S-00001", "S-00002", "S-00003", "S-00003"]
    # the seed's refresh, Authorization + UsagePoint list per subscription, 3 + 1 + 1 Batch requests
    assert out.requests == 1 + 3 * 2 + 5


def test_a_cut_answer_is_kept_for_the_parser_and_failing_meters_are_asked_again(fleet, tmp_path):
    """The custodian cuts S-00002's answer in half and answers S-00003 with 503s: the cut body is
    still a payload (landed, then quarantined by the parser with its reason), both are failures, the
    round ends without holding S-00001 back, and the next round asks the two for everything again."""
    faults = {"seed": 0, "rules": [{"kind": "truncate", "vendor": "greenbutton", "sites": ["S-00002"]},
                                   {"kind": "http_5xx", "vendor": "greenbutton", "sites": ["S-00003"]}]}
    with connect_twin(fleet, "2026-07-14T00:00Z", advance_h=24 * 3, faults=faults) as twin:
        settings = twin.settings(tmp_path / "tokens.json")

        async def go(cursors):
            async with gbc.ConnectClient(settings, retry=RetryPolicy(attempts=2, base_s=0.01)) as client:
                return await gbc.pull(client, cursors, now=twin.clock(), site_of=meters(fleet).get)

        first = asyncio.run(go({}))
        twin.hub.faults = FaultPlan()  # the custodian recovers
        second = asyncio.run(go(gbc.cursors_from_json(gbc.cursors_to_json(first.cursors))))  # as the sensor keeps it
    assert sorted(p.site_id for p in first.payloads) == ["S-00001", "S-00002"]
    cut = next(p for p in first.payloads if p.site_id == "S-00002")
    with pytest.raises(ParseError, match="malformed or truncated XML"):
        parse_payload(cut.source, cut.endpoint, cut.content, **cut.parse_kwargs())
    failed = sorted((f["site_id"], "503" in f["error"]) for f in first.failures)
    assert failed == [("S-00002", False), ("S-00003", True)]
    (cursor,) = first.cursors.values()
    site_of = meters(fleet)
    assert first.rounds_finished == 1 and cursor.through is not None
    assert sorted(site_of[p] for p, through in cursor.behind if through is None) == ["S-00002", "S-00003"]
    # S-00001 has nothing new; the two lagging meters get their whole history
    assert sorted(p.site_id for p in second.payloads) == ["S-00002", "S-00003"] and not second.failures
    assert len(_rows(second.payloads)) > 0  # whole answers this time
    (after,) = second.cursors.values()
    assert after.behind == () and after.through == cursor.through
