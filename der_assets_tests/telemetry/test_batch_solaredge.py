"""The SolarEdge batch reader (telemetry/batch/solaredge.py) reads as the one-body parser reads.

- Every body the reader takes gives the rows parse_payload gives it (channel, interval, value,
  quality), every body parse_payload rejects is left to it: on twin bodies, on a mutation list
  and on hypothesis-made bodies.
- normalize_day equals normalize_day_reference row for row on a twin day of SolarEdge sites with
  the twin's faults, and on the DST days of America/New_York.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.connectors import solaredge as connector
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers import solaredge as server
from der_assets.telemetry import ParseError, parse_payload
from der_assets.telemetry.batch import BatchContext
from der_assets.telemetry.batch.solaredge import READERS
from der_assets.telemetry.daily import LandedPayload, normalize_day, normalize_day_reference
from der_assets.telemetry.schema import QUALITIES

from .test_fleet_day import _canonical, _review

NY = "America/New_York"
DAY = pd.Timestamp("2026-07-15T00:00Z")
FALL_BACK = pd.Timestamp("2026-11-01T00:00Z")  # 01:00-01:59 EDT/EST happens twice in New York
SPRING_FORWARD = pd.Timestamp("2026-03-08T00:00Z")  # 02:00-02:59 never happens in New York
RECEIVED = pd.Timestamp("2026-07-16T01:00Z")
ENDPOINTS = ("energyDetails", "powerDetails", "meters", "storageData")
HANDLERS = {"energyDetails": "energy_details", "powerDetails": "power_details", "meters": "meters",
            "storageData": "storage_data"}


# ---- helpers ----------------------------------------------------------------------------

def twin_bodies(registry: pd.DataFrame, day: pd.Timestamp, *, faults=None, seed=1, endpoints=ENDPOINTS):
    """[(site_id, tz, endpoint, body)] of one UTC day, asked of the twin's handlers as the
    connector asks (its windows, lead and trail slots), without HTTP."""
    clock = ManualClock(day + pd.Timedelta(days=1, hours=1))
    hub = TwinHub(registry, start=day - pd.Timedelta(days=1), clock=clock, seed=seed,
                  faults=FaultPlan.from_dict(faults) if faults else None)
    fleet = server._Fleet(hub)
    api = server._Api(hub, fleet)
    out = []
    for site in fleet.by_site.values():
        for endpoint in endpoints:
            for a, b in connector.request_windows(endpoint, day, day + pd.Timedelta(days=1), site.tz):
                lead = connector.LEAD.get(endpoint, pd.Timedelta(0))
                trail = connector.TRAIL.get(endpoint, pd.Timedelta(0))
                query = {"startTime": connector.local_label(a - lead, site.tz),
                         "endTime": connector.local_label(b + trail, site.tz)}
                if endpoint in ("energyDetails", "meters"):
                    query["timeUnit"] = connector.TIME_UNIT
                request = types.SimpleNamespace(path_params={"site_ref": site.ref}, query_params=query)
                out.append((site.site_id, site.tz, endpoint, bytes(getattr(api, HANDLERS[endpoint])(request).body)))
    return out


def solaredge_fleet(n_sites: int, tz: str | None = None) -> pd.DataFrame:
    """The first n_sites SolarEdge sites of the demo fleet (in zone tz), with their devices."""
    fleet = demo_fleet(60)
    fleet = fleet[fleet["telemetry_source"] == "solaredge"]
    if tz is not None:
        fleet = fleet[fleet["timezone"] == tz]
    return fleet[fleet["site_id"].isin(fleet["site_id"].drop_duplicates().iloc[:n_sites])].reset_index(drop=True)


def one_body(endpoint: str, body, tz=NY, received=RECEIVED):
    """parse_payload's rows as (channel, start ns, interval_s, value, quality), or None if it rejects."""
    try:
        df = parse_payload("solaredge", endpoint, body, site_id="S", tz=tz, received_at=received)
    except ParseError:
        return None
    return pd.DataFrame({"channel": df["channel"].astype(str).to_numpy(),
                         "start": df["interval_start"].array.asi8, "interval_s": df["interval_s"].to_numpy(),
                         "value": df["value"].to_numpy(), "quality": df["quality"].astype(str).to_numpy()})


def batch_rows(endpoint: str, bodies: list, tzs: list, received=RECEIVED) -> tuple[list[int], dict[int, pd.DataFrame]]:
    """The reader's taken bodies and, per taken body, its rows as one_body shows them."""
    context = BatchContext(site_ids=["S"] * len(bodies), timezones=tzs,
                           received_ns=np.full(len(bodies), received.value, dtype=np.int64))
    batch = READERS[endpoint](bodies, context)
    taken = batch.taken.tolist()
    frames = {j: [] for j in taken}
    for part in batch.parts:
        assert set(part.seg_body.tolist()) <= set(taken)
        assert len(part.start_ns) == len(part.value) == len(part.quality) == part.seg_rows.sum()
        offsets = np.concatenate([[0], np.cumsum(part.seg_rows)])
        for s, j in enumerate(part.seg_body):
            rows = slice(offsets[s], offsets[s + 1])
            start = part.start_ns[rows]
            if part.sorted_grid:  # the promise complete_day relies on
                assert (np.diff(start) > 0).all() and (start % (part.seg_interval_s[s] * 10**9) == 0).all()
            frames[int(j)].append(pd.DataFrame({
                "channel": part.channel, "start": start, "interval_s": part.seg_interval_s[s],
                "value": part.value[rows], "quality": [QUALITIES[q] for q in part.quality[rows]]}))
    out = {j: pd.concat(f, ignore_index=True) if f else None for j, f in frames.items()}
    return taken, out


def assert_reads_as_parser(endpoint: str, bodies: list, tzs: list | None = None, received=RECEIVED) -> list[int]:
    """Every taken body reads as parse_payload reads it; every body it rejects is left. Returns taken."""
    tzs = tzs or [NY] * len(bodies)
    taken, got = batch_rows(endpoint, bodies, tzs, received)
    for j in taken:
        want = one_body(endpoint, bodies[j], tzs[j], received)
        assert want is not None, f"body {j} was taken but parse_payload rejects it"
        mine = got[j] if got[j] is not None else want.iloc[0:0]
        key = ["channel", "start"]
        pd.testing.assert_frame_equal(mine.sort_values(key).reset_index(drop=True),
                                      want.sort_values(key).reset_index(drop=True),
                                      check_dtype=False, obj=f"body {j}")
    return taken


def same_as_reference(payloads, registry, day):
    kwargs = dict(day_start=day, believed_at=day + pd.Timedelta(days=1, hours=2), sources=["solaredge"])
    fast, ref = normalize_day(payloads, registry, **kwargs), normalize_day_reference(payloads, registry, **kwargs)
    pd.testing.assert_frame_equal(_canonical(fast.rows), _canonical(ref.rows))
    pd.testing.assert_frame_equal(_review(fast.review), _review(ref.review), check_dtype=False)
    assert sorted(fast.parsed_ids) == sorted(ref.parsed_ids)
    assert sorted(q["payload_id"] for q in fast.quarantined) == sorted(q["payload_id"] for q in ref.quarantined)
    assert fast.stats() == ref.stats()
    return fast


def landed(bodies, received=RECEIVED):
    return [LandedPayload(k, "solaredge", endpoint, site, received, body)
            for k, (site, _tz, endpoint, body) in enumerate(bodies)]


def taken_by_endpoint(bodies) -> dict[str, tuple[int, int]]:
    """endpoint -> (bodies taken by the batch reader, bodies)."""
    out = {}
    for endpoint in READERS:
        group = [(tz, body) for _s, tz, ep, body in bodies if ep == endpoint]
        context = BatchContext(site_ids=["S"] * len(group), timezones=[tz for tz, _ in group],
                               received_ns=np.full(len(group), RECEIVED.value, dtype=np.int64))
        out[endpoint] = (len(READERS[endpoint]([b for _, b in group], context).taken), len(group))
    return out


# ---- a twin day, with the twin's faults --------------------------------------------------

@pytest.fixture(scope="module")
def faulty_day():
    fleet = solaredge_fleet(4)
    sites = fleet["site_id"].drop_duplicates().tolist()
    day = f"{DAY:%Y-%m-%d}"
    faults = {"seed": 5, "rules": [
        {"kind": "dropout", "vendor": "solaredge", "sites": sites[:1], "start": f"{day}T09:00Z", "end": f"{day}T10:00Z"},
        {"kind": "spike", "vendor": "solaredge", "sites": sites[:1], "channel": "pv_kwh", "factor": 40,
         "start": f"{day}T17:00Z", "end": f"{day}T17:15Z"},
        {"kind": "stuck", "vendor": "solaredge", "sites": sites[1:2], "channel": "pv_kwh",
         "start": f"{day}T13:00Z", "end": f"{day}T15:00Z"},
        {"kind": "counter_reset", "vendor": "solaredge", "sites": sites[1:2], "start": f"{day}T12:00Z",
         "end": f"{day}T12:05Z"},
        {"kind": "clock_skew", "vendor": "solaredge", "sites": sites[2:3], "skew_s": 120},
        # the twin is asked at 01:00 the next day: the late site's last six hours have not arrived
        {"kind": "late", "vendor": "solaredge", "sites": sites[3:4], "delay_s": 6 * 3600},
    ]}
    bodies = twin_bodies(fleet, DAY, faults=faults)
    # one body arrives cut in half (the twin's truncate fault): quarantined on both paths
    cut = next(b for b in bodies if b[2] == "energyDetails")
    bodies.append((cut[0], cut[1], cut[2], cut[3][: len(cut[3]) // 2]))
    return fleet, bodies


def test_a_twin_day_with_faults_equals_the_reference(faulty_day):
    fleet, bodies = faulty_day
    fast = same_as_reference(landed(bodies), fleet, DAY)
    stats = fast.stats()
    assert stats["quarantined_payloads"] == 1 and stats["missing"] > 0 and "gap" in set(fast.review["issue"])
    # the batch path did the work: all but the cut body of the slot endpoints, the plain storage bodies
    taken = taken_by_endpoint(bodies)
    assert taken["energyDetails"][0] == taken["energyDetails"][1] - 1
    assert taken["powerDetails"][0] == taken["powerDetails"][1]
    assert 0 < taken["storageData"][0] < taken["storageData"][1]  # the reset battery is the parser's
    assert 0 < taken["meters"][0] < taken["meters"][1]


def test_every_twin_body_reads_as_the_one_body_parser_reads_it(faulty_day):
    _fleet, bodies = faulty_day
    for endpoint in READERS:
        group = [(tz, body) for _s, tz, ep, body in bodies if ep == endpoint]
        assert_reads_as_parser(endpoint, [b for _, b in group], [tz for tz, _ in group])


# ---- DST days in New York ----------------------------------------------------------------

@pytest.mark.parametrize("day", [FALL_BACK, SPRING_FORWARD], ids=["fall_back", "spring_forward"])
def test_dst_days_equal_the_reference(day):
    fleet = solaredge_fleet(2, NY)
    bodies = twin_bodies(fleet, day, endpoints=tuple(READERS))
    received = day + pd.Timedelta(days=1, hours=1)
    fast = same_as_reference(landed(bodies, received), fleet, day)
    assert fast.stats()["quarantined_payloads"] == 0
    for endpoint in READERS:
        group = [body for _s, _tz, ep, body in bodies if ep == endpoint]
        assert assert_reads_as_parser(endpoint, group, received=received) == list(range(len(group)))
    # by hand, one site's energyDetails: the UTC day is 96 quarter-hours of PV either way
    energy = next(body for _s, _tz, ep, body in bodies if ep == "energyDetails")
    pv = batch_rows("energyDetails", [energy], [NY], received)[1][0].query("channel == 'pv_kwh'")
    assert len(pv) == 96 and (np.diff(pv["start"]) == 900 * 10**9).all()
    if day == FALL_BACK:  # 01:00-01:45 is listed once, summed: half at 05:xxZ (EDT), half at 06:xxZ (EST)
        at = {pd.Timestamp(t, tz="UTC").strftime("%H:%M"): (v, q) for t, v, q in pv[["start", "value", "quality"]].values}
        for minute in ("00", "15", "30", "45"):
            assert at[f"05:{minute}"] == at[f"06:{minute}"] and at[f"05:{minute}"][1] == "estimated"
        assert (pv["quality"] == "estimated").sum() == 8


# ---- a mutation list ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def plain_bodies():
    """One New York site's twin bodies of an ordinary day, per endpoint."""
    fleet = solaredge_fleet(1, NY)
    return {endpoint: body for _s, _tz, endpoint, body in twin_bodies(fleet, DAY)}


def _mutate(body: bytes, change) -> bytes:
    doc = json.loads(body)
    change(doc)
    return json.dumps(doc, separators=(",", ":")).encode()


def _meter(doc, kind):
    block = doc.get("energyDetails") or doc.get("powerDetails")
    return next(m for m in block["meters"] if m["type"] == kind)


def _slot(kind, i, **update):
    def change(doc):
        _meter(doc, kind)["values"][i].update(update)
    return change


def _block(**update):
    def change(doc):
        (doc.get("energyDetails") or doc.get("powerDetails")).update(update)
    return change


def _drop_meter(kind):
    def change(doc):
        block = doc.get("energyDetails") or doc.get("powerDetails")
        block["meters"] = [m for m in block["meters"] if m["type"] != kind]
    return change


def _values(kind, fn):
    def change(doc):
        meter = _meter(doc, kind)
        meter["values"] = fn(meter["values"])
    return change


DETAIL_CASES = {  # name -> (change, taken by the batch reader)
    "as_sent": (lambda d: None, True),
    "null_value": (_slot("Production", 50, value=None), True),
    "no_value_key": (lambda d: _meter(d, "Production")["values"][50].pop("value"), True),
    "integer_value": (_slot("Production", 50, value=1200), True),
    "negative_production": (_slot("Production", 50, value=-40.0), True),
    "negative_feed_in": (_slot("FeedIn", 50, value=-40.0), True),
    "spike": (_slot("Production", 60, value=900000.0), True),
    "null_purchased": (_slot("Purchased", 20, value=None), True),
    "unknown_field": (_slot("Production", 3, note="x"), True),
    "unit_kwh": (_block(unit="kWh"), True),
    "unit_padded": (_block(unit=" wh "), True),
    "hourly": (_block(timeUnit="HOUR"), True),
    "no_grid_meters": (lambda d: (_drop_meter("Purchased")(d), _drop_meter("FeedIn")(d)), True),
    "no_meters": (_block(meters=[]), True),
    "empty_values": (_values("Production", lambda v: []), True),
    "a_gap": (_values("Production", lambda v: v[:40] + v[41:]), True),
    "string_value": (_slot("Production", 50, value="12.5"), False),
    "percent_string": (_slot("Production", 50, value="12%"), False),
    "boolean_value": (_slot("Production", 50, value=True), False),
    "nan_string": (_slot("Production", 50, value="nan"), False),
    "bad_self_consumption": (_slot("SelfConsumption", 50, value="x"), False),
    "reversed": (_values("Production", lambda v: v[::-1]), True),  # _dedupe sorts each series
    "duplicate": (_values("Production", lambda v: v[:10] + [dict(v[10])] + v[10:]), False),
    "duplicate_conflicting": (_values("Production", lambda v: v[:10] + [dict(v[10], value=5.0)] + v[10:]), False),
    "grid_on_other_labels": (_values("FeedIn", lambda v: v[:40] + v[41:]), False),
    "only_purchased": (_drop_meter("FeedIn"), False),
    "unknown_meter": (lambda d: _meter(d, "Production").update(type="Battery"), False),
    "two_production_meters": (lambda d: (d.get("energyDetails") or d.get("powerDetails"))["meters"].append(
        dict(_meter(d, "Production"))), False),
    "misaligned_label": (_slot("Production", 50, date="2026-07-15 08:07:00"), False),
    "iso_label": (_slot("Production", 50, date="2026-07-15T08:00:00"), False),
    "short_label": (_slot("Production", 50, date="2026-07-15 08:00"), False),
    "absurd_label": (_slot("Production", 95, date="9999-12-31 23:45:00"), False),
    "label_not_string": (_slot("Production", 50, date=1752566400), False),
    "no_date": (lambda d: _meter(d, "Production")["values"][50].pop("date"), False),
    "day_time_unit": (_block(timeUnit="DAY"), False),
    "no_unit": (lambda d: (d.get("energyDetails") or d.get("powerDetails")).pop("unit"), False),
    "power_unit": (_block(unit="W/m2"), False),
    "dst_label": (_slot("Production", 95, date="2026-11-01 01:30:00"), False),  # a repeated wall time
    "nonexistent_label": (_slot("Production", 95, date="2026-03-08 02:30:00"), False),
    "no_meters_key": (lambda d: (d.get("energyDetails") or d.get("powerDetails")).pop("meters"), False),
}


@pytest.mark.parametrize("endpoint", ["energyDetails", "powerDetails"])
def test_mutated_detail_bodies_read_as_the_one_body_parser_reads_them(plain_bodies, endpoint):
    base = plain_bodies[endpoint]
    names = list(DETAIL_CASES)
    expect = {n: ok for n, (_c, ok) in DETAIL_CASES.items()}
    if endpoint == "powerDetails":  # energy units are not power units, and W is not an energy unit
        expect.update(unit_kwh=False, unit_padded=False, power_unit=False)
    bodies = [_mutate(base, change) for change, _ in DETAIL_CASES.values()]
    if endpoint == "powerDetails":
        bodies[names.index("unit_kwh")] = _mutate(base, _block(unit="kW"))
        bodies[names.index("unit_padded")] = _mutate(base, _block(unit=" W "))
        expect.update(unit_kwh=True, unit_padded=True)
    bodies += [base[: len(base) // 2], json.dumps(json.loads(base), indent=2).encode(), base.decode(),
               base.replace(b"{", b'{"note":"\xff",', 1), base + b" " + base]
    taken = assert_reads_as_parser(endpoint, bodies)
    assert [names[j] for j in taken if j < len(names)] == [n for n in names if expect[n]]
    n = len(names)
    assert n + 1 in taken  # pretty-printed JSON is still JSON
    assert not {n, n + 2, n + 3, n + 4} & set(taken)  # truncated, text, invalid UTF-8, two documents
    # no zone, or an unknown one: the one-body parser says why
    assert batch_rows(endpoint, [base, base], [None, "Mars/Olympus"])[0] == []
    # each body alone gets the verdict it got in the batch (nothing leaks across bodies)
    for j, body in enumerate(bodies):
        assert (batch_rows(endpoint, [body], [NY])[0] == [0]) == (j in taken), j


def _tel(i, **update):
    def change(doc):
        doc["storageData"]["batteries"][0]["telemetries"][i].update(update)
    return change


def _tels(fn):
    def change(doc):
        battery = doc["storageData"]["batteries"][0]
        battery["telemetries"] = fn(battery["telemetries"])
    return change


STORAGE_CASES = {
    "as_sent": (lambda d: None, True),
    "null_soc": (_tel(30, batteryPercentageState=None), True),
    "no_soc_key": (lambda d: d["storageData"]["batteries"][0]["telemetries"][30].pop("batteryPercentageState"), True),
    "soc_over_100": (_tel(30, batteryPercentageState=140.0), True),
    "integer_registers": (_tels(lambda t: [dict(r, lifeTimeEnergyCharged=int(r["lifeTimeEnergyCharged"]),
                                               lifeTimeEnergyDischarged=int(r["lifeTimeEnergyDischarged"]))
                                        for r in t]), True),
    "register_falls": (_tel(30, lifeTimeEnergyCharged=1.0), False),  # a reset: the counter's rule
    "no_batteries": (lambda d: d["storageData"].update(batteries=[], batteryCount=0), True),
    "empty_telemetries": (_tels(lambda t: []), True),
    "one_reading": (_tels(lambda t: t[:1]), True),
    "unknown_field": (_tel(3, note="x"), True),
    "string_register": (_tel(30, lifeTimeEnergyCharged="12"), False),
    "boolean_soc": (_tel(30, batteryPercentageState=True), False),
    "percent_soc": (_tel(30, batteryPercentageState="97%"), False),
    "null_register": (_tel(30, lifeTimeEnergyDischarged=None), False),
    "fractional_register": (_tel(30, lifeTimeEnergyDischarged=1.5), False),
    "negative_register": (_tel(0, lifeTimeEnergyCharged=-5.0), False),
    "reversed": (_tels(lambda t: t[::-1]), True),  # the counter and the SoC sort readings by instant
    "duplicate": (_tels(lambda t: t[:10] + [dict(t[10])] + t[10:]), False),
    "a_gap": (_tels(lambda t: t[:40] + t[41:]), True),  # spread over the intervals inside it, estimated
    "an_hour_gap": (_tels(lambda t: t[:40] + t[52:]), True),
    "off_grid_stamp": (_tels(lambda t: t[:40] + [dict(t[40], timeStamp=(pd.Timestamp(t[40]["timeStamp"]) + pd.Timedelta(
        seconds=133)).strftime("%Y-%m-%d %H:%M:%S"))] + t[41:]), True),
    "irregular_stamps": (_tels(lambda t: [dict(r, timeStamp=(pd.Timestamp(r["timeStamp"]) + pd.Timedelta(
        seconds=(17 * i) % 290)).strftime("%Y-%m-%d %H:%M:%S")) for i, r in enumerate(t)]), True),
    "stamps_out_of_order": (_tels(lambda t: t[:40] + [t[41], t[40]] + t[42:]), True),
    # a repeated wall time seen once cannot be placed: _placeable drops the reading, so do we
    "dst_stamp": (_tel(-1, timeStamp="2026-11-01 01:30:00"), True),
    "two_batteries": (lambda d: d["storageData"]["batteries"].append(dict(d["storageData"]["batteries"][0])), False),
    "no_serial": (lambda d: d["storageData"]["batteries"][0].pop("serialNumber"), False),
    "no_timestamp": (lambda d: d["storageData"]["batteries"][0]["telemetries"][5].pop("timeStamp"), False),
}


def test_mutated_storage_bodies_read_as_the_one_body_parser_reads_them(plain_bodies):
    base = plain_bodies["storageData"]
    bodies = [_mutate(base, change) for change, _ in STORAGE_CASES.values()]
    bodies += [base[: len(base) // 2], json.dumps(json.loads(base), indent=1).encode()]
    taken = assert_reads_as_parser("storageData", bodies)
    names = list(STORAGE_CASES)
    assert [names[j] for j in taken if j < len(names)] == [n for n, (_c, ok) in STORAGE_CASES.items() if ok]
    assert len(bodies) - 1 in taken and len(bodies) - 2 not in taken
    # the regular case by hand: 294 readings 5 minutes apart are 293 battery intervals and 294 SoC rows
    _, rows = batch_rows("storageData", [base], [NY])
    counts = rows[0]["channel"].value_counts().to_dict()
    assert counts == {"battery_kwh": 293, "soc_pct": 294}


def _register(kind, fn):
    def change(doc):
        meter = next(m for m in doc["meterEnergyDetails"]["meters"] if m["meterType"] == kind)
        meter["values"] = fn(meter["values"])
    return change


def _registers(fn):
    def change(doc):
        doc["meterEnergyDetails"]["meters"] = fn(doc["meterEnergyDetails"]["meters"])
    return change


def _shift(v, seconds):
    return dict(v, date=(pd.Timestamp(v["date"]) + pd.Timedelta(seconds=seconds)).strftime("%Y-%m-%d %H:%M:%S"))


METER_CASES = {
    "as_sent": (lambda d: None, True),
    "no_unit": (lambda d: d["meterEnergyDetails"].pop("unit"), True),  # Wh, as parse_meters reads it
    "unit_kwh": (lambda d: d["meterEnergyDetails"].update(unit="kWh"), True),
    "hourly": (lambda d: d["meterEnergyDetails"].update(timeUnit="HOUR"), True),
    "a_gap": (_register("Production", lambda v: v[:30] + v[33:]), True),  # spread, estimated; grid keeps its own
    "grid_gap": (lambda d: [_register(m, lambda v: v[:30] + v[33:])(d) for m in ("Purchased", "FeedIn")], True),
    "irregular": (lambda d: [_register(m, lambda v: [_shift(x, (41 * i) % 600) for i, x in enumerate(v)])(d)
                             for m in ("Production", "Consumption", "Purchased", "FeedIn")], True),
    "only_purchased": (_registers(lambda ms: [m for m in ms if m["meterType"] != "FeedIn"]), True),
    "no_grid": (_registers(lambda ms: [m for m in ms if m["meterType"] not in ("FeedIn", "Purchased")]), True),
    "no_meters": (_registers(lambda ms: []), True),
    "empty_values": (_register("Production", lambda v: []), True),
    "null_unit": (lambda d: d["meterEnergyDetails"].update(unit=None), False),
    "null_value": (_register("Production", lambda v: v[:5] + [{"date": v[5]["date"]}] + v[6:]), False),
    "string_value": (_register("Production", lambda v: v[:5] + [dict(v[5], value=str(v[5]["value"]))] + v[6:]), False),
    "fractional": (_register("Production", lambda v: v[:5] + [dict(v[5], value=v[5]["value"] + 0.5)] + v[6:]), False),
    "reset": (_register("Production", lambda v: v[:50] + [dict(x, value=x["value"] - v[50]["value"]) for x in v[50:]]),
              False),
    "negative": (_register("Production", lambda v: [dict(x, value=-1.0) for x in v]), False),
    "grid_on_other_stamps": (_register("FeedIn", lambda v: [_shift(x, 60) for x in v]), False),
    "two_production_registers": (_registers(lambda ms: ms + [dict(ms[0])]), False),
    "unknown_type": (_registers(lambda ms: [dict(ms[0], meterType="Battery")] + ms[1:]), False),
    "reversed": (_register("Production", lambda v: v[::-1]), True),
    "dst_stamp": (_register("Production", lambda v: v[:-1] + [dict(v[-1], date="2026-11-01 01:10:00")]), True),
    "nonexistent_stamp": (_register("Production", lambda v: v[:-1] + [dict(v[-1], date="2026-03-08 02:10:00")]), True),
    "late_stamp": (_register("Production", lambda v: v[:-1] + [dict(v[-1], date="2026-07-18 01:10:00")]), False),
}


def test_mutated_meter_bodies_read_as_the_one_body_parser_reads_them(plain_bodies):
    base = plain_bodies["meters"]
    bodies = [_mutate(base, change) for change, _ in METER_CASES.values()]
    taken = assert_reads_as_parser("meters", bodies)
    names = list(METER_CASES)
    expect = [n for n, (_c, ok) in METER_CASES.items() if ok]
    assert [names[j] for j in taken] == expect
    # by hand: 97 readings every quarter-hour from 19:55 EDT to 19:55 the next day (5 minutes before
    # the grid) bracket the 95 quarter-hours 20:00 .. 19:30; 19:45-20:00 waits for the 20:10 reading
    _, rows = batch_rows("meters", [base], [NY])
    assert rows[0]["channel"].value_counts().to_dict() == {"pv_kwh": 95, "load_kwh": 95, "grid_kwh": 95}
    pv = rows[0][rows[0]["channel"] == "pv_kwh"]
    assert pd.Timestamp(pv["start"].min(), tz="UTC") == DAY and (pv["quality"] == "measured").all()


def test_a_day_of_mutated_bodies_equals_the_reference(plain_bodies):
    """Bodies the reader takes and bodies it leaves, of one site and day: the day is the reference's
    (which report wins a cell does not depend on the path that read it)."""
    fleet = solaredge_fleet(1, NY)
    site = fleet["site_id"].iloc[0]
    cases = [("energyDetails", DETAIL_CASES, ["null_value", "spike", "duplicate_conflicting", "string_value",
                                                      "boolean_value"]),
             ("powerDetails", DETAIL_CASES, ["as_sent", "reversed"]),
             ("storageData", STORAGE_CASES, ["null_soc", "a_gap", "register_falls"])]
    bodies = [(site, NY, endpoint, _mutate(plain_bodies[endpoint], table[name][0]))
              for endpoint, table, names in cases for name in names]
    received = [RECEIVED + pd.Timedelta(minutes=k % 3) for k in range(len(bodies))]  # ties among some
    payloads = [LandedPayload(k, "solaredge", ep, s, received[k], b) for k, (s, _tz, ep, b) in enumerate(bodies)]
    fast = same_as_reference(payloads, fleet, DAY)
    assert fast.stats()["quarantined_payloads"] == 1  # the boolean ("12.5" is a number to both)


# ---- hypothesis: generated bodies --------------------------------------------------------
#
# Each test draws a clean body half the time (ordered labels, JSON numbers, whole-Wh registers:
# what the reader takes) and a hostile one otherwise (disorder, duplicates, strings, booleans,
# falling or fractional registers: what it must leave), so both verdicts are exercised.

LATE = pd.Timestamp("2026-11-03T00:00Z")  # after every generated day
_days = st.sampled_from(["2026-07-15 00:00:00", "2026-07-15 00:00:00", "2026-11-01 00:00:00", "2026-03-08 00:00:00"])
_hostile_number = st.one_of(st.floats(-50, 5000, allow_nan=False), st.integers(-50, 5000), st.none(), st.booleans(),
                            st.sampled_from(["12", "7%", "", "nan"]))
_clean_number = st.one_of(st.floats(-50, 5000, allow_nan=False), st.integers(-50, 5000), st.none())


def _labels(first: str, steps: list[int]) -> list[str]:
    t = pd.Timestamp(first)
    out = []
    for s in steps:
        out.append(t.strftime("%Y-%m-%d %H:%M:%S"))
        t += pd.Timedelta(seconds=s)
    return out


def _steps(data, clean: bool, ordered: list[int], hostile: list[int], max_size: int) -> list[int]:
    return data.draw(st.lists(st.sampled_from(ordered if clean else ordered + hostile), max_size=max_size))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(endpoint=st.sampled_from(["energyDetails", "powerDetails"]), first=_days, clean=st.booleans(), data=st.data(),
       kinds=st.lists(st.sampled_from(["Production", "Consumption", "SelfConsumption", "Purchased", "FeedIn"]),
                      max_size=5),
       unit=st.sampled_from(["Wh", "kWh", "W", "kW", None]), time_unit=st.sampled_from(["QUARTER_OF_AN_HOUR", "HOUR"]))
def test_generated_detail_bodies_never_read_differently(endpoint, first, clean, data, kinds, unit, time_unit):
    labels = _labels(first, _steps(data, clean, [900, 900, 1800, 3600], [0, -900, 60], 16))
    if clean:
        kinds = list(dict.fromkeys(kinds))
        unit = {"energyDetails": "Wh", "powerDetails": "W"}[endpoint] if unit is None else unit
    meters = []
    for kind in kinds:
        values = data.draw(st.lists(_clean_number if clean else _hostile_number, min_size=len(labels),
                                    max_size=len(labels)))
        meters.append({"type": kind, "values": [{"date": d, "value": v} if v is not None else {"date": d}
                                                for d, v in zip(labels, values)]})
    block = {"timeUnit": time_unit, "meters": meters}
    if unit is not None:
        block["unit"] = unit
    body = json.dumps({endpoint: block}).encode()
    assert_reads_as_parser(endpoint, [body], received=LATE)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=_days, clean=st.booleans(), data=st.data(), batteries=st.integers(0, 2))
def test_generated_storage_bodies_never_read_differently(first, clean, data, batteries):
    labels = _labels(first, _steps(data, clean, [300, 300, 300, 600, 17, 3600], [0, -300], 16))
    register = st.integers(0, 3000).map(float) if clean else st.one_of(
        st.integers(0, 3).map(float), st.floats(0, 3, allow_nan=False), st.none(), st.just(-1.0))
    soc = st.one_of(st.floats(-5, 105), st.none()) if clean else st.one_of(st.floats(-5, 105), st.just("50%"))
    items = []
    for _ in range(1 if clean and batteries > 1 else batteries):
        tel = []
        charged = discharged = 1e6
        for d in labels:
            charged += data.draw(register) or 0.0
            discharged += data.draw(register) or 0.0
            tel.append({"timeStamp": d, "lifeTimeEnergyCharged": charged, "lifeTimeEnergyDischarged": discharged,
                        "batteryPercentageState": data.draw(soc)})
        items.append({"serialNumber": f"B{len(items)}", "telemetries": tel})
    body = json.dumps({"storageData": {"batteryCount": len(items), "batteries": items}}).encode()
    assert_reads_as_parser("storageData", [body], received=LATE)


@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=_days, clean=st.booleans(), data=st.data(),
       kinds=st.lists(st.sampled_from(["Production", "Consumption", "Purchased", "FeedIn"]), max_size=4, unique=True),
       time_unit=st.sampled_from(["QUARTER_OF_AN_HOUR", "HOUR"]))
def test_generated_meter_bodies_never_read_differently(first, clean, data, kinds, time_unit):
    labels = _labels(first, _steps(data, clean, [900, 900, 600, 1200, 37, 3600], [0, -900], 14))
    step = st.integers(0, 400).map(float) if clean else st.one_of(
        st.integers(0, 400).map(float), st.floats(0, 3, allow_nan=False), st.none(), st.just(-5.0))
    meters = []
    for kind in kinds:
        wh, values = 5e6, []
        for d in labels:
            delta = data.draw(step)
            wh += delta or 0.0
            values.append({"date": d, "value": wh} if delta is not None else {"date": d})
        meters.append({"meterSerialNumber": "607", "meterType": kind, "values": values})
    body = json.dumps({"meterEnergyDetails": {"timeUnit": time_unit, "unit": "Wh", "meters": meters}}).encode()
    assert_reads_as_parser("meters", [body], received=LATE)
