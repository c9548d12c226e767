"""The Fronius archive batch reader (telemetry/batch/fronius.py) reads as the one-body parser reads.

- Every GetArchiveData body the reader takes gives the rows parse_payload gives it (grid_kwh from
  the meter's lifetime registers, pv_kwh from the inverter's per-step energy), and every body
  parse_payload rejects is left to it: on twin bodies with the twin's faults, on the real
  akleber capture, on local days whose clocks change, on a mutation list and on hypothesis-made
  bodies.
- normalize_day equals normalize_day_reference row for row on those days.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from der_assets.simulator.servers import fronius as server
from der_assets.telemetry.batch import BatchContext
from der_assets.telemetry.batch.fronius import read_archive
from der_assets.telemetry.parsers.fronius import MINUS, PLUS, PRODUCED

from ._helpers import fixture_bytes
from .batch_sma_fronius import assert_reads_as_parser, day_faults, fleet_of, fronius_bodies, landed, one_body, twin
from .test_fleet_day import _fast_equals_reference, _mutate

DAY = pd.Timestamp("2026-07-15T00:00Z")
LATE = pd.Timestamp("2027-01-01T00:00Z")  # received after every day below: the time rule admits them all
ENDPOINT = "GetArchiveData"
METER = "meter:16220118"  # the akleber capture's meter node


def _received(day):
    return day + pd.Timedelta(days=1, hours=1)


def _read(bodies, received=LATE):
    return assert_reads_as_parser(read_archive, "fronius", ENDPOINT, bodies, [None] * len(bodies), received)


# ---- a twin day with the twin's faults ------------------------------------------------------

@pytest.fixture(scope="module")
def faulted_day():
    fleet = fleet_of("fronius", 6)
    sites = fleet.loc[fleet["telemetry_source"] == "fronius", "site_id"].drop_duplicates().tolist()
    faults = day_faults("fronius", DAY, sites, {"kind": "counter_reset", "start": f"{DAY:%Y-%m-%d}T12:00Z"})
    items = fronius_bodies(twin(fleet, DAY, faults), DAY)
    dropped = [k for k, (site, _, _) in enumerate(items) if site == sites[0]]
    site, tz, body = items[-1]
    items.append((site, tz, body[: len(body) // 2]))  # a body cut in half in transit
    return fleet, items, dropped


def test_the_reader_reads_a_faulted_twin_day_as_the_parser(faulted_day):
    fleet, items, dropped = faulted_day
    taken = _read([b for _, _, b in items], _received(DAY))
    # left to the parser: the truncated body, and the dropout's meter hole (the counter spreads
    # the energy over it); the reset, the spike, the stuck and the late site are read here
    assert sorted(taken) == sorted(set(range(len(items) - 1)) - set(dropped))


def test_normalize_day_equals_the_reference_on_a_faulted_twin_day(faulted_day):
    fleet, items, _ = faulted_day
    payloads = landed(items, "fronius", ENDPOINT, _received(DAY))
    fast = _fast_equals_reference(payloads, fleet, day_start=DAY, sources=["fronius"], believed_at=_received(DAY))
    assert [q["payload_id"] for q in fast.quarantined] == [len(items) - 1]
    stats = fast.stats()
    assert stats["suspect"] > 0 and stats["missing"] > 0
    assert {"gap", "suspect_spike"} <= set(fast.review["issue"])


def test_a_counter_reset_is_a_missing_interval_read_in_arrays():
    fleet = fleet_of("fronius", 1)
    faults = {"seed": 0, "rules": [{"kind": "counter_reset", "vendor": "fronius", "start": "2026-07-15T12:00Z"}]}
    ((_, _, body),) = fronius_bodies(twin(fleet, DAY, faults), DAY)
    assert _read([body], _received(DAY)) == [0]
    grid = one_body("fronius", ENDPOINT, body, None, _received(DAY))["grid_kwh"]
    start = pd.to_datetime(grid[0], utc=True)
    missing = [s for s, q in zip(start, grid[3]) if q == "missing"]
    # the registers restart from zero in the interval from 12:00 (the twin's fault): they fall
    # between its opening and closing readings; the window's last interval (from End on) has no
    # closing reading
    assert missing == [pd.Timestamp("2026-07-15T12:00Z"), pd.Timestamp("2026-07-16T00:00Z")]


# ---- the real capture -----------------------------------------------------------------------

def test_the_real_capture_is_read_in_arrays():
    body = fixture_bytes("fronius_solar_api_v1_local", "akleber_fronius-json-tools", "archivedata_day_2017-08-30.json")
    assert _read([body]) == [0]
    grid = one_body("fronius", ENDPOINT, body, None, LATE)["grid_kwh"]
    doc = json.loads(body)["Body"]["Data"][METER]["Data"]
    plus, minus = ({int(k): v for k, v in doc[c]["Values"].items()} for c in (PLUS, MINUS))
    # 288 readings from 00:00 to 23:55 local (+02:00): 287 intervals between readings, and the last
    # one (23:55-24:00) has none to close it. By hand: the interval from 12:00 local (10:00Z)
    k = 12 * 3600
    at = grid[0].index(pd.Timestamp("2017-08-30T10:00Z").value)
    assert grid[1][at] == 300 and len(grid[0]) == 288 and grid[3][-1] == "missing"
    assert grid[2][at] == pytest.approx(((plus[k + 300] - plus[k]) - (minus[k + 300] - minus[k])) / 1000.0)


# ---- local days whose clocks change ---------------------------------------------------------

@pytest.mark.parametrize("tz, date, hours", [("Europe/Berlin", "2026-10-25", 25),
                                             ("America/New_York", "2026-03-08", 23)])
def test_a_local_day_with_a_clock_change_is_read_in_arrays(tz, date, hours):
    """Keys are seconds since Start, so a local day is 82800 or 90000 s long: one row per step of
    it and one for the step from End on (no reading closes it)."""
    fleet = fleet_of("fronius", 2, tz=tz)
    day = pd.Timestamp(date, tz="UTC")
    hub = twin(fleet, day, now=day + pd.Timedelta(days=2))
    items = []
    for _, row in fleet[fleet["telemetry_source"] == "fronius"].drop_duplicates("site_id").iterrows():
        site = server._Site(row, hub)
        query = QueryParams([("Scope", "System"), ("SeriesType", "Detail"), ("StartDate", date),
                             ("EndDate", (day + pd.Timedelta(days=1)).strftime("%Y-%m-%d")),
                             *(("Channel", c) for c in (PLUS, MINUS, PRODUCED))])
        items.append((site.site_id, tz, json.dumps(server.archive_body(hub, site, query)).encode()))
    received = day + pd.Timedelta(days=2)
    assert _read([b for _, _, b in items], received) == list(range(len(items)))
    rows = one_body("fronius", ENDPOINT, items[0][2], None, received)
    # the local date through the next one (EndDate a date means 23:59:59 of it): 24 h more
    assert len(rows["grid_kwh"][0]) == (hours + 24) * 12 and len(rows["pv_kwh"][0]) == (hours + 24) * 12
    _fast_equals_reference(landed(items, "fronius", ENDPOINT, received), fleet, day_start=day,
                           sources=["fronius"], believed_at=received)


# ---- mutations ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base():
    ((_, _, body),) = fronius_bodies(twin(fleet_of("fronius", 1), DAY), DAY)
    return body


def _meter(doc):
    return next(n for k, n in doc["Body"]["Data"].items() if k.startswith("meter:"))


def _inverter(doc):
    return doc["Body"]["Data"]["inverter/1"]


def _values(node_of, channel, change):
    def mutate(doc):
        values = node_of(doc)["Data"][channel]["Values"]
        node_of(doc)["Data"][channel]["Values"] = change(values) or values
    return mutate


def _set_value(node_of, channel, key, value):
    return _values(node_of, channel, lambda v: v.__setitem__(key, value))


def _rekey(node_of, channel, key, new):
    return _values(node_of, channel, lambda v: {(new if k == key else k): x for k, x in v.items()})


def _fall(doc):
    """The import register falls at 36000 s and rises from there (a reset)."""
    values = _meter(doc)["Data"][PLUS]["Values"]
    for k in values:
        if int(k) >= 36000:
            values[k] -= 1000


def _both(node_of, channels, change):
    def mutate(doc):
        for c in channels:
            _values(node_of, c, change)(doc)
    return mutate


CASES = {  # name -> (change, read in arrays)
    "as_sent": (lambda d: None, True),
    "status_error": (lambda d: d["Head"]["Status"].update(Code=255, Reason="Query interval is restricted"), False),
    "status_as_string": (lambda d: d["Head"]["Status"].update(Code="0"), False),
    "status_false": (lambda d: d["Head"]["Status"].update(Code=False), False),
    "no_status_code": (lambda d: d["Head"]["Status"].pop("Code"), False),
    "daily_sum": (lambda d: d["Head"]["RequestArguments"].update(SeriesType="DailySum"), False),
    "no_request_arguments": (lambda d: d["Head"].pop("RequestArguments"), True),
    "null_register": (_set_value(_meter, PLUS, "3600", None), False),  # a hole the counter spreads
    "null_inverter_step": (_set_value(_inverter, PRODUCED, "3600", None), True),  # a missing row
    "string_register": (_set_value(_meter, PLUS, "3600", "1234"), False),
    "boolean_inverter_step": (_set_value(_inverter, PRODUCED, "3600", True), False),
    "fractional_register": (_values(_meter, MINUS, lambda v: {k: x + 0.25 for k, x in v.items()}), True),
    "negative_register": (_set_value(_meter, MINUS, "0", -1), False),
    "register_falls": (_fall, True),  # a reset: its interval missing
    "negative_inverter_step": (_set_value(_inverter, PRODUCED, "3600", -2.5), True),  # kept, suspect
    "huge_inverter_step": (_set_value(_inverter, PRODUCED, "3600", 1e300), False),
    "key_with_zero": (_rekey(_inverter, PRODUCED, "3600", "03600"), False),
    "key_with_plus": (_rekey(_inverter, PRODUCED, "3600", "+3600"), False),
    "key_minus_zero": (_rekey(_inverter, PRODUCED, "0", "-0"), False),
    "key_off_step": (_rekey(_inverter, PRODUCED, "3600", "3601"), False),
    "key_fraction": (_rekey(_inverter, PRODUCED, "3600", "3600.0"), False),
    "meter_key_missing": (_both(_meter, (PLUS, MINUS), lambda v: v.pop("3600")), False),  # a hole
    "inverter_key_missing": (_values(_inverter, PRODUCED, lambda v: v.pop("3600")), True),  # a missing row
    "registers_on_other_keys": (_values(_meter, MINUS, lambda v: v.pop("3600")), False),
    "keys_reversed": (_both(_meter, (PLUS, MINUS), lambda v: dict(reversed(list(v.items())))), True),
    "hourly_meter": (_both(_meter, (PLUS, MINUS), lambda v: {k: x for k, x in v.items() if int(k) % 3600 == 0}), True),
    "ten_minute_meter": (_both(_meter, (PLUS, MINUS), lambda v: {k: x for k, x in v.items() if int(k) % 600 == 0}),
                         False),  # re-gridded to 900 s by interpolation
    "unit_kwh": (lambda d: _meter(d)["Data"][PLUS].update(Unit="kWh"), True),
    "unit_lowercase": (lambda d: _inverter(d)["Data"][PRODUCED].update(Unit=" wh "), True),
    "unit_watts": (lambda d: _meter(d)["Data"][PLUS].update(Unit="W"), False),
    "no_unit": (lambda d: _meter(d)["Data"][PLUS].pop("Unit"), False),
    "null_values": (lambda d: _inverter(d)["Data"][PRODUCED].update(Values=None), True),  # no pv rows, as read
    "start_without_offset": (lambda d: _meter(d).update(Start=_meter(d)["Start"][:19]), False),
    "start_in_utc": (lambda d: _meter(d).update(Start=pd.Timestamp(_meter(d)["Start"]).strftime("%Y-%m-%dT%H:%M:%SZ")),
                     True),
    "end_before_start": (lambda d: _inverter(d).update(End="2026-07-14T00:00:00-05:00"), False),
    "start_in_2099": (lambda d: _inverter(d).update(Start="2099-07-15T00:00:00-05:00"), False),
    "meter_without_export": (lambda d: _meter(d)["Data"].pop(MINUS), False),
    "meter_only": (lambda d: d["Body"]["Data"].pop("inverter/1"), True),
    "inverter_only": (lambda d: [d["Body"]["Data"].pop(k) for k in list(d["Body"]["Data"]) if k.startswith("meter")],
                      True),
    "two_inverters": (lambda d: d["Body"]["Data"].update({"inverter/2": _inverter(d)}), False),
    "an_unknown_node": (lambda d: d["Body"]["Data"].update({"ohmpilot/1": {"Data": {"Temperature": {"Unit": "C"}}}}),
                        True),
    "no_channels": (lambda d: d["Body"].update(Data={}), False),
    "node_not_object": (lambda d: d["Body"]["Data"].update({"inverter/1": [1, 2]}), False),
}


def test_the_reader_reads_mutated_archives_as_the_parser(base):
    bodies = [_mutate(base, change) for change, _ in CASES.values()]
    key = b'"EnergyReal_WAC_Sum_Produced":{"Unit":"Wh","Values":{"0":'
    assert key in base
    bodies += [base[: len(base) // 2], json.dumps(json.loads(base), indent=2).encode(),
               base.replace(key, key + b'1.0,"0":', 1),  # a key given twice: the last value counts
               base.replace(b"{", b'{"note":"\xff",', 1), base.decode()]
    names = list(CASES) + ["truncated", "indented", "key_given_twice", "bad_utf8", "text"]
    expected = [ok for _, ok in CASES.values()] + [False, True, True, False, False]
    taken = _read(bodies)
    assert [names[j] for j in taken] == [n for n, ok in zip(names, expected) if ok]
    for j, body in enumerate(bodies):  # each body alone gives the same verdict (rows compared above)
        alone = read_archive([body], BatchContext(["S"], [None], np.array([LATE.value]))).taken.tolist()
        assert (alone == [0]) == (j in taken), names[j]
    # hand checks: a null step is a missing row, a negative one is kept and flagged
    pv = one_body("fronius", ENDPOINT, bodies[names.index("negative_inverter_step")], None, LATE)["pv_kwh"]
    at = pv[0].index(pd.Timestamp("2026-07-15T01:00Z").value)
    assert (pv[2][at], pv[3][at]) == (-0.0025, "suspect")
    pv = one_body("fronius", ENDPOINT, bodies[names.index("null_inverter_step")], None, LATE)["pv_kwh"]
    assert np.isnan(pv[2][at]) and pv[3][at] == "missing"


def test_odd_archives_in_a_day_read_as_the_reference_reads_them(base):
    fleet = fleet_of("fronius", 1)
    site = fleet.loc[fleet["telemetry_source"] == "fronius", "site_id"].iloc[0]
    for name in ("register_falls", "null_register", "ten_minute_meter", "two_inverters", "status_error"):
        body = _mutate(base, CASES[name][0])
        payloads = landed([(site, None, body)], "fronius", ENDPOINT, _received(DAY))
        try:
            _fast_equals_reference(payloads, fleet, day_start=DAY, sources=["fronius"], believed_at=_received(DAY))
        except AssertionError as exc:
            raise AssertionError(name) from exc


# ---- hypothesis -----------------------------------------------------------------------------

_register = st.one_of(st.integers(0, 40), st.floats(0, 40, allow_nan=False))  # Wh per step, made a register below
_odd = st.sampled_from([None, True, "5", -1e6, 1e17, 2.5])
_key_form = st.sampled_from(["{}", "{}", "{}", "{}", "0{}", "+{}", "{}.0"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 14), step=st.sampled_from([300, 300, 300, 900, 3600, 600]),
       first_key=st.sampled_from([0, 0, 0, 300, 150]), rises=st.lists(_register, min_size=14, max_size=14),
       odd=st.lists(st.tuples(st.integers(0, 13), _odd), max_size=2),
       holes=st.lists(st.integers(0, 13), max_size=2), key_form=_key_form,
       start=st.sampled_from(["2026-07-15T00:00:00-05:00", "2026-07-15T00:00:00+05:30", "2026-07-15T05:00:00Z",
                              "2026-07-15T00:02:00+00:00", "2026-07-15 00:00:00-05:00"]),
       span_h=st.sampled_from([1, 2, 24]), channels=st.sampled_from(["both", "meter", "inverter"]),
       unit=st.sampled_from(["Wh", "Wh", "kWh", "W"]), indent=st.sampled_from([None, 1]))
def test_the_reader_never_reads_an_archive_differently(n, step, first_key, rises, odd, holes, key_form, start, span_h,
                                                      channels, unit, indent):
    registers = np.cumsum([1000.0] + rises).tolist()
    values = {k: (1_000_000 + registers[k], 500_000 + registers[k] / 2, rises[k]) for k in range(n)}
    for k, v in odd:
        if k in values:
            values[k] = (v, values[k][1], v)
    for k in holes:
        values.pop(k, None)
    keys = {k: key_form.format(first_key + k * step) for k in values}
    end = (pd.Timestamp(start.replace(" ", "T")) + pd.Timedelta(hours=span_h)).isoformat()
    data = {}
    if channels in ("both", "meter"):
        data["meter:1"] = {"Start": start, "End": end, "Data": {
            PLUS: {"Unit": unit, "Values": {keys[k]: v[0] for k, v in values.items()}},
            MINUS: {"Unit": unit, "Values": {keys[k]: v[1] for k, v in values.items()}}}}
    if channels in ("both", "inverter"):
        data["inverter/1"] = {"Start": start, "End": end, "Data": {
            PRODUCED: {"Unit": unit, "Values": {keys[k]: v[2] for k, v in values.items()}}}}
    doc = {"Body": {"Data": data}, "Head": {"RequestArguments": {"SeriesType": "Detail"}, "Status": {"Code": 0}}}
    body = json.dumps(doc, indent=indent).encode()
    _read([body, body])
