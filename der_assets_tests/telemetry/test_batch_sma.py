"""The SMA batch reader (telemetry/batch/sma.py) reads as the one-body parser reads.

- Every measurement set the reader takes gives the rows parse_payload gives it (interval, value,
  quality), and every set parse_payload rejects is left to it: on twin bodies with the twin's
  faults, on the DST days of Europe/Berlin and America/New_York, on a mutation list and on
  hypothesis-made bodies.
- normalize_day equals normalize_day_reference row for row on those days.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.telemetry.batch import BatchContext
from der_assets.telemetry.batch.sma import read_measurements

from .batch_sma_fronius import assert_reads_as_parser, day_faults, fleet_of, landed, one_body, sma_bodies, twin
from .test_fleet_day import _fast_equals_reference, _mutate

DAY = pd.Timestamp("2026-07-15T00:00Z")
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
# local days whose clocks change: (zone, UTC day whose local day it is, labels that day lists)
DST_DAYS = {
    "berlin_fall_back": (BERLIN, pd.Timestamp("2026-10-25T00:00Z"), 300),  # 02:00-02:59 twice
    "berlin_spring_forward": (BERLIN, pd.Timestamp("2026-03-29T00:00Z"), 276),  # 02:00-02:59 never
    "new_york_fall_back": (NEW_YORK, pd.Timestamp("2026-11-01T00:00Z"), 300),
    "new_york_spring_forward": (NEW_YORK, pd.Timestamp("2026-03-08T00:00Z"), 276),
}


LATE = pd.Timestamp("2027-01-01T00:00Z")  # received after every day below: the time rule admits them all


def _received(day):
    return day + pd.Timedelta(days=1, hours=1)


def _local_day_body(items, day, tz):
    """The body of the plant-local day that starts on `day`'s date."""
    date = f'"time":"{day:%Y-%m-%d}T00:05:00"'.encode()
    return next(body for _, _, body in items if date in body)


# ---- a twin day with the twin's faults ------------------------------------------------------

@pytest.fixture(scope="module")
def faulted_day():
    fleet = fleet_of("sma", 6)
    sites = fleet.loc[fleet["telemetry_source"] == "sma", "site_id"].drop_duplicates().tolist()
    faults = day_faults("sma", DAY, sites, {"kind": "clock_skew", "skew_s": 120, "start": f"{DAY:%Y-%m-%d}T12:00Z",
                                            "end": f"{DAY:%Y-%m-%d}T13:00Z"})
    hub = twin(fleet, DAY, faults)
    items = sma_bodies(hub, DAY)
    skewed = {k for k, (site, _, _) in enumerate(items) if site == sites[4]}
    cut_site, cut_tz, cut_body = items[0]
    items.append((cut_site, cut_tz, cut_body[: len(cut_body) // 2]))  # a body cut in half in transit
    return fleet, items, skewed


def test_the_reader_reads_a_faulted_twin_day_as_the_parser(faulted_day):
    fleet, items, skewed = faulted_day
    bodies, tzs = [b for _, _, b in items], [tz for _, tz, _ in items]
    taken = assert_reads_as_parser(read_measurements, "sma", "measurements", bodies, tzs, _received(DAY))
    # left to the parser: the truncated body and the skewed site's day (its labels leave the 5-minute
    # grid); every other body, dropouts, stuck, spiked and late ones included, is read in arrays
    skewed_day = {k for k in skewed if b":02:00" in bodies[k]}
    assert len(skewed_day) == 1
    assert sorted(taken) == sorted(set(range(len(bodies) - 1)) - skewed_day)


def test_normalize_day_equals_the_reference_on_a_faulted_twin_day(faulted_day):
    fleet, items, skewed = faulted_day
    payloads = landed(items, "sma", "measurements", _received(DAY))
    fast = _fast_equals_reference(payloads, fleet, day_start=DAY, sources=["sma"],
                                  believed_at=_received(DAY) + pd.Timedelta(hours=1))
    stats = fast.stats()
    # quarantined on both paths: the truncated body, and the skewed day (its rows leave the grid)
    skewed_day = [k for k in skewed if b":02:00" in items[k][2]]
    assert sorted(q["payload_id"] for q in fast.quarantined) == sorted([len(items) - 1, *skewed_day])
    assert "grid" in next(q["error"] for q in fast.quarantined if q["payload_id"] in skewed_day)
    assert stats["suspect"] > 0 and stats["missing"] > 0  # the faults show, unrepaired
    assert {"gap", "suspect_spike", "suspect_stuck"} <= set(fast.review["issue"])


# ---- the DST days ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(DST_DAYS))
def test_dst_days_are_read_in_arrays_as_the_parser_reads_them(case):
    tz, day, n_labels = DST_DAYS[case]
    fleet = fleet_of("sma", 2, tz=tz)
    now = day + pd.Timedelta(days=2)  # both local days the UTC day overlaps are over
    items = sma_bodies(twin(fleet, day, now=now), day)
    bodies, tzs = [b for _, _, b in items], [t for _, t, _ in items]
    taken = assert_reads_as_parser(read_measurements, "sma", "measurements", bodies, tzs, now)
    assert taken == list(range(len(bodies)))  # the clock change is read here, not left
    body = _local_day_body(items, day, tz)
    rows = one_body("sma", "measurements", body, tz, now)["pv_kwh"]
    assert len(json.loads(body)["set"]) == n_labels == len(rows[0])
    # the local day, 23 or 25 hours of 5-minute intervals without a hole or a repeat
    local_midnight = pd.Timestamp(f"{day:%Y-%m-%d}").tz_localize(tz).tz_convert("UTC")
    assert rows[0][0] == local_midnight.value and np.all(np.diff(rows[0]) == 300 * 10**9)
    _fast_equals_reference(landed(items, "sma", "measurements", now), fleet, day_start=day, sources=["sma"],
                           believed_at=now)


# ---- mutations ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bases():
    """A summer day's set (Berlin), and the Berlin fall-back and spring-forward days' sets."""
    out = {}
    for name, day in (("summer", DAY), ("fall_back", DST_DAYS["berlin_fall_back"][1]),
                      ("spring_forward", DST_DAYS["berlin_spring_forward"][1])):
        fleet = fleet_of("sma", 1, tz=BERLIN)
        out[name] = _local_day_body(sma_bodies(twin(fleet, day, now=day + pd.Timedelta(days=2)), day), day, BERLIN)
    return out


def _entry(i, key, value):
    def change(doc):
        doc["set"][i][key] = value
    return change


def _label(i, text):
    return _entry(i, "time", text)


def _noon_spike(doc):
    doc["set"][150]["pvGeneration"] = doc["set"][150]["pvGeneration"] * 100 + 5000


SUMMER_CASES = {  # name -> (change, read in arrays)
    "as_sent": (lambda d: None, True),
    "null_value": (_entry(100, "pvGeneration", None), True),
    "absent_value": (lambda d: d["set"][100].pop("pvGeneration"), True),
    "every_value_absent": (lambda d: [e.pop("pvGeneration") for e in d["set"]], False),
    "integer_value": (_entry(100, "pvGeneration", 12), True),
    "string_value": (_entry(100, "pvGeneration", "12"), False),
    "percent_string": (_entry(100, "pvGeneration", "12%"), False),
    "boolean_value": (_entry(100, "pvGeneration", True), False),
    "nan_string": (_entry(100, "pvGeneration", "nan"), False),
    "huge_value": (_entry(100, "pvGeneration", 1e300), False),
    "negative_value": (_entry(100, "pvGeneration", -40.5), True),
    "spike": (_noon_spike, True),
    "unknown_field": (_entry(3, "pvGenerationPower", 17.0), True),
    "reversed": (lambda d: d["set"].reverse(), False),
    "duplicate_entry": (lambda d: d["set"].insert(10, dict(d["set"][10])), False),
    "two_swapped": (lambda d: d["set"].__setitem__(slice(20, 22), d["set"][21:19:-1]), False),
    "entry_missing": (lambda d: d["set"].pop(50), True),  # a dropped step is simply not there
    "label_with_z": (_label(20, "2026-07-15T01:45:00Z"), False),
    "label_with_space": (_label(20, "2026-07-15 01:45:00"), False),
    "label_with_fraction": (_label(20, "2026-07-15T01:45:00.000"), False),
    "label_off_grid": (_label(20, "2026-07-15T01:47:00"), False),
    "label_hour_24": (_label(20, "2026-07-15T24:00:00"), False),
    "label_day_32": (_label(20, "2026-07-32T01:45:00"), False),
    "label_number": (_label(20, 1784079900), False),
    "label_null": (_label(20, None), False),
    "label_far_future": (_label(287, "2099-07-16T00:00:00"), False),
    "label_before_2000": (_label(0, "1999-07-15T00:05:00"), False),
    "other_set_type": (lambda d: d.update(setType="EnergyAndPowerConsumption"), False),
    "unknown_resolution": (lambda d: d.update(resolution="TenMinutes"), False),
    "quarter_hour_resolution_on_5_min_labels": (lambda d: d.update(resolution="FifteenMinutes"), False),
    "hourly": (lambda d: d.update(resolution="OneHour", set=d["set"][11::12]), True),
    "other_zone_in_payload": (lambda d: (d["plant"].update(timezone="Asia/Tokyo"),
                                         d["device"].update(timezone="Asia/Tokyo")), False),
    "zone_only_on_device": (lambda d: d["plant"].pop("timezone"), True),
    "no_zone_in_payload": (lambda d: (d.pop("plant"), d.pop("device")), True),
    "plant_not_object": (lambda d: d.update(plant="7190000"), False),
    "empty_set": (lambda d: d.update(set=[]), False),
    "set_not_list": (lambda d: d.update(set={"time": "2026-07-15T00:05:00"}), False),
    "entry_not_object": (lambda d: d["set"].__setitem__(3, ["2026-07-15T00:20:00", 1.0]), False),
    "no_set": (lambda d: d.pop("set"), False),
}


def _fall_back_once(doc):
    """The repeated hour listed once: the second pass of 02:00-02:55 taken out."""
    seen, out = set(), []
    for e in doc["set"]:
        if e["time"][11:13] == "02" and e["time"] in seen:
            continue
        seen.add(e["time"])
        out.append(e)
    doc["set"] = out


def _nonexistent(value):
    def change(doc):
        at = next(i for i, e in enumerate(doc["set"]) if e["time"].endswith("T03:00:00"))
        doc["set"].insert(at, {"time": doc["set"][at]["time"][:11] + "02:30:00", "pvGeneration": value})
    return change


DST_CASES = {  # name -> (base, change, read in arrays)
    "fall_back_as_sent": ("fall_back", lambda d: None, True),
    "fall_back_hour_listed_once": ("fall_back", _fall_back_once, True),  # first pass, flagged suspect
    "fall_back_reversed": ("fall_back", lambda d: d["set"].reverse(), False),
    "fall_back_second_pass_repeated": ("fall_back", lambda d: d["set"].extend(d["set"][-24:-12]), False),
    "spring_forward_as_sent": ("spring_forward", lambda d: None, True),
    "spring_forward_null_at_missing_hour": ("spring_forward", _nonexistent(None), True),  # dropped
    "spring_forward_zero_at_missing_hour": ("spring_forward", _nonexistent(0), True),  # dropped
    "spring_forward_energy_at_missing_hour": ("spring_forward", _nonexistent(12.5), False),  # an error
}


def _compact(doc) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def test_the_reader_reads_mutated_sets_as_the_parser(bases):
    base = bases["summer"]
    bodies = [_mutate(base, change) for change, _ in SUMMER_CASES.values()]
    bodies += [base[: len(base) // 2], json.dumps(json.loads(base), indent=2).encode(),
               base.replace(b"{", b'{"note":"\xff",', 1), base.replace(b'"pvGeneration":0.0', b'"pvGeneration":NaN', 1),
               base.decode()]
    expected = [ok for _, ok in SUMMER_CASES.values()] + [False, True, False, False, False]
    for name, (base_name, change, ok) in DST_CASES.items():
        bodies.append(_mutate(bases[base_name], change))
        expected.append(ok)
    names = list(SUMMER_CASES) + ["truncated", "indented", "bad_utf8", "nan_literal", "text"] + list(DST_CASES)
    assert b'"pvGeneration":NaN' in bodies[names.index("nan_literal")]
    taken = assert_reads_as_parser(read_measurements, "sma", "measurements", bodies, [BERLIN] * len(bodies), LATE)
    assert [names[j] for j in taken] == [n for n, ok in zip(names, expected) if ok]
    # each body alone gives the same verdict (nothing leaks across bodies)
    for j, body in enumerate(bodies):  # rows compared above
        alone = read_measurements([body], BatchContext(["S"], [BERLIN], np.array([LATE.value]))).taken.tolist()
        assert (alone == [0]) == (j in taken), names[j]


def test_a_repeated_hour_listed_once_is_kept_on_its_first_pass_and_flagged(bases):
    body = _mutate(bases["fall_back"], _fall_back_once)
    rows = one_body("sma", "measurements", body, BERLIN, LATE)["pv_kwh"]
    start = pd.to_datetime(rows[0], utc=True)
    # 02:00-02:55 CEST (00:00-00:55 UTC) are the first pass; their labels end 02:05..03:00 local
    suspect = [s for s, q in zip(start, rows[3]) if q == "suspect"]
    assert suspect == list(pd.date_range("2026-10-24T23:55Z", periods=12, freq="5min"))
    assert len(rows[0]) == 288 and pd.Timestamp("2026-10-25T01:00Z") not in set(start)  # the hour no one listed


def test_odd_sets_in_a_day_read_as_the_reference_reads_them(bases):
    """A day of one Berlin plant made of mutated sets: normalize_day equals the reference."""
    fleet = fleet_of("sma", 1, tz=BERLIN)
    site = fleet["site_id"].iloc[0]
    for name in ("spike", "reversed", "hourly", "every_value_absent"):
        change, _ = SUMMER_CASES[name]
        body = _mutate(bases["summer"], change)
        payloads = [landed([(site, BERLIN, body)], "sma", "measurements", _received(DAY))[0]]
        try:
            _fast_equals_reference(payloads, fleet, day_start=DAY, sources=["sma"], believed_at=_received(DAY))
        except AssertionError as exc:
            raise AssertionError(name) from exc


# ---- hypothesis -----------------------------------------------------------------------------

_clean = st.one_of(st.integers(0, 5000), st.floats(0, 1e4, allow_nan=False), st.none())
_odd = st.sampled_from([True, "12", "7%", "", "nan", "absent", -5, 1e16, 12.5])  # each a case of its own
_odd_step = st.sampled_from([600, 3600, 0, -300, -3600, -3300, 60])  # -3300 from 02:55 is the clock going back


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 30),
       first=st.sampled_from(["2026-10-25T01:30:00", "2026-10-25T02:45:00", "2026-03-29T01:30:00",
                              "2026-07-15T10:00:00"]),
       odd_steps=st.lists(st.tuples(st.integers(0, 29), _odd_step), max_size=2),
       values=st.lists(_clean, min_size=30, max_size=30),
       odd_values=st.lists(st.tuples(st.integers(0, 29), _odd), max_size=2),
       resolution=st.sampled_from(["FiveMinutes"] * 4 + ["FifteenMinutes", "OneHour", "Day"]),
       payload_tz=st.sampled_from([None, BERLIN, BERLIN, NEW_YORK]), indent=st.sampled_from([None, 1]))
def test_the_reader_never_reads_a_set_differently(n, first, odd_steps, values, odd_values, resolution, payload_tz,
                                                  indent):
    steps = [300] * 30
    for k, step in odd_steps:
        steps[k] = step
    for k, value in odd_values:
        values[k] = value
    t = pd.Timestamp(first)
    entries = []
    for k in range(n):
        entry = {"time": f"{t:%Y-%m-%dT%H:%M:%S}"}
        if values[k] != "absent":
            entry["pvGeneration"] = values[k]
        entries.append(entry)
        t += pd.Timedelta(seconds=steps[k])
    doc = {"setType": "EnergyAndPowerPv", "resolution": resolution, "set": entries}
    if payload_tz is not None:
        doc["plant"] = {"plantId": "7190000", "timezone": payload_tz}
    body = json.dumps(doc, indent=indent).encode()
    assert_reads_as_parser(read_measurements, "sma", "measurements", [body, body], [BERLIN, BERLIN], LATE)
