"""The fleet-scale path equals the readable one.

- enphase.parse_v4_many (all cloud v4 bodies of an endpoint at once) reads every body it takes
  exactly as parse_payload reads it, and leaves every body parse_payload rejects.
- dense.complete_day equals complete_grid + flag_suspect + review_items.
- normalize_day equals normalize_day_reference on a twin fleet-day pulled over the vendor APIs,
  with dropouts, late data, stuck registers, spikes, overlapping pulls and a truncated body.
"""

from __future__ import annotations

import asyncio
import json
import types

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from der_assets.connectors.pull import pull_source
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers import enphase as enphase_server
from der_assets.simulator.servers.runner import serving
from der_assets.simulator.service import build_http_apps, make_credentials
from der_assets.telemetry import ParseError, parse_payload
from der_assets.telemetry.daily import LandedPayload, normalize_day, normalize_day_reference
from der_assets.telemetry.dense import RowBlock, SeriesKeys, complete_day
from der_assets.telemetry.parsers.enphase import V4_MANY, parse_v4_many
from der_assets.telemetry.quality import SERIES_KEYS, complete_grid, flag_suspect, review_items
from der_assets.telemetry.schema import KEY_COLUMNS, QUALITIES

DAY = pd.Timestamp("2026-07-15T00:00Z")
RECEIVED = pd.Timestamp("2026-07-16T00:20Z")
STRINGS = ["site_id", "device_id", "source", "channel", "quality"]


def _canonical(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.astype({c: object for c in STRINGS})
    return rows.sort_values(KEY_COLUMNS).reset_index(drop=True)


def _review(items: pd.DataFrame) -> pd.DataFrame:
    if items.empty:
        return items.iloc[0:0].reset_index(drop=True)
    items = items.astype({c: object for c in [*SERIES_KEYS, "issue"]})
    return items.sort_values([*SERIES_KEYS, "first_interval", "issue"]).reset_index(drop=True)


# ---- parse_v4_many against parse_payload -------------------------------------------------

@pytest.fixture(scope="module")
def cloud_bodies():
    """Twin-made v4 bodies of one UTC day for a few Enphase sites, per endpoint."""
    registry = demo_fleet(60)
    registry = registry[registry["telemetry_source"] == "enphase"].reset_index(drop=True)
    hub = TwinHub(registry, start=DAY, clock=ManualClock(DAY + pd.Timedelta(days=1)), seed=3)
    fleet = enphase_server._Fleet(hub)
    cloud = enphase_server._Cloud(hub, fleet)
    out = {}
    for kind in ("production_micro", "production_meter", "consumption_meter", "battery"):
        bodies = []
        for system in list(fleet.by_site.values())[:4]:
            request = types.SimpleNamespace(path_params={"system_id": system.system_id, "kind": kind},
                                            query_params={"start_at": str(int(DAY.timestamp())), "granularity": "day"})
            bodies.append(bytes(cloud.telemetry(request).body))
        out[kind] = bodies
    return out


def _one_at_a_time(endpoint: str, body: bytes):
    try:
        return parse_payload("enphase", endpoint, body, site_id="S", received_at=RECEIVED)
    except ParseError:
        return None


def _assert_same_rows(endpoint: str, bodies: list[bytes]):
    """Every body parse_v4_many takes reads as parse_payload reads it; every body parse_payload
    rejects is left. Returns the taken indices."""
    cols = parse_v4_many(endpoint, bodies)
    offsets = np.concatenate([[0], np.cumsum(cols.lengths)])
    taken = cols.taken.tolist()
    for j, body in enumerate(bodies):
        expected = _one_at_a_time(endpoint, body)
        if j not in taken:
            continue
        assert expected is not None, f"body {j} was taken but parse_payload rejects it"
        k = taken.index(j)
        rows = slice(offsets[k], offsets[k + 1])
        for channel, (value, quality) in cols.channels.items():
            want = expected[expected["channel"] == channel].sort_values("interval_start")
            got_start = cols.start_ns[rows]
            order = np.argsort(got_start, kind="stable")
            assert want["interval_start"].array.asi8.tolist() == got_start[order].tolist(), (j, channel)
            np.testing.assert_array_equal(want["value"].to_numpy(), value[rows][order], err_msg=f"{j} {channel}")
            assert want["quality"].tolist() == [QUALITIES[q] for q in quality[rows][order]], (j, channel)
            assert (want["interval_s"] == cols.interval_s).all()
    return taken


def _mutate(body: bytes, change) -> bytes:
    doc = json.loads(body)
    change(doc)
    return json.dumps(doc, separators=(",", ":")).encode()


def _set(i, key, value, nested=None):
    def change(doc):
        item = doc["intervals"][i]
        if nested:
            item[key][nested] = value
        else:
            item[key] = value
    return change


MICRO_CASES = {  # name -> (change, taken by the batch path)
    "as_sent": (lambda d: None, True),
    "null_value": (_set(100, "enwh", None), True),
    "partial_devices": (_set(5, "devices_reporting", 1), True),
    "null_devices": (_set(6, "devices_reporting", None), True),
    "no_total_devices": (lambda d: d.pop("total_devices"), True),
    "total_devices_last": (lambda d: d.update(total_devices=d.pop("total_devices")), True),
    "spike": (lambda d: d["intervals"][150].update(enwh=d["intervals"][150]["enwh"] * 100 + 5000), True),
    "negative": (_set(150, "enwh", -40), True),
    # an interval the envelope declares and the body skips is a missing row: the one-body parser's
    "gap": (lambda d: d["intervals"].pop(50), False),
    "gap_without_envelope": (lambda d: (d["intervals"].pop(50), d.pop("end_at")), True),
    "gap_after_envelope_end": (lambda d: (d["intervals"].pop(), d.update(end_at=d["intervals"][-1]["end_at"])), True),
    "float_envelope": (lambda d: d.update(start_at=float(d["start_at"])), False),
    "unknown_field": (_set(3, "vendor_note", "x"), True),
    "empty": (lambda d: d.update(intervals=[]), False),  # the whole declared window is missing rows
    "empty_without_envelope": (lambda d: (d.update(intervals=[]), d.pop("start_at")), True),
    "string_value": (_set(100, "enwh", "12"), False),
    "percent_string": (_set(100, "enwh", "12%"), False),
    "float_value": (_set(100, "enwh", 12.5), False),
    "boolean_value": (_set(100, "enwh", True), False),
    "nan_string": (_set(100, "enwh", "nan"), False),
    "reversed": (lambda d: d["intervals"].reverse(), False),
    "duplicate": (lambda d: d["intervals"].insert(10, dict(d["intervals"][10])), False),
    "misaligned": (lambda d: d["intervals"][20].update(end_at=d["intervals"][20]["end_at"] + 60), False),
    "float_end": (lambda d: d["intervals"][20].update(end_at=float(d["intervals"][20]["end_at"])), False),
    "no_end": (lambda d: d["intervals"][20].pop("end_at"), False),
    "no_intervals": (lambda d: d.pop("intervals"), False),
    "item_not_object": (lambda d: d["intervals"].__setitem__(3, [1, 2]), False),
}


def test_v4_many_reads_micro_bodies_as_parse_payload_does(cloud_bodies):
    base = cloud_bodies["production_micro"][0]
    bodies = [_mutate(base, change) for change, _ in MICRO_CASES.values()]
    bodies += [base[: len(base) // 2], json.dumps(json.loads(base), indent=2).encode()]
    taken = _assert_same_rows("production_micro", bodies)
    names = list(MICRO_CASES)
    assert [names[j] for j in taken if j < len(names)] == [n for n, (_, ok) in MICRO_CASES.items() if ok]
    assert len(bodies) - 1 in taken  # pretty-printed JSON is still JSON
    assert len(bodies) - 2 not in taken  # the truncated body
    # each body alone gives the same verdict as in the batch (no leak across body boundaries)
    for j, body in enumerate(bodies):
        assert (parse_v4_many("production_micro", [body]).taken.tolist() == [0]) == (j in taken)


def test_v4_many_flags_partial_and_spikes_as_parse_payload_does(cloud_bodies):
    base = cloud_bodies["production_micro"][1]
    partial = _mutate(base, _set(5, "devices_reporting", 1))
    cols = parse_v4_many("production_micro", [partial])
    quality = [QUALITIES[q] for q in cols.channels["pv_kwh"][1]]
    assert quality[5] == "suspect" and quality.count("suspect") >= 1
    assert _one_at_a_time("production_micro", partial)["quality"].iloc[5] == "suspect"


def test_v4_many_reads_every_twin_endpoint_as_parse_payload_does(cloud_bodies):
    for endpoint in V4_MANY:
        bodies = cloud_bodies[endpoint]
        assert _assert_same_rows(endpoint, bodies) == list(range(len(bodies)))


BATTERY_CASES = {
    "as_sent": (lambda d: None, True),
    "null_soc": (_set(7, "soc", None), True),
    "no_charge": (lambda d: d["intervals"][8].pop("charge"), True),
    "null_enwh": (_set(9, "discharge", None, nested="enwh"), True),
    "soc_over_100": (_set(10, "soc", 140, nested="percent"), True),
    "soc_percent_string": (_set(10, "soc", "97%", nested="percent"), False),
    "empty_charge_object": (_set(11, "charge", {}), True),
    "charge_list": (_set(11, "charge", []), False),
}


def test_v4_many_reads_battery_bodies_as_parse_payload_does(cloud_bodies):
    base = cloud_bodies["battery"][0]
    bodies = [_mutate(base, change) for change, _ in BATTERY_CASES.values()]
    taken = _assert_same_rows("battery", bodies)
    assert [list(BATTERY_CASES)[j] for j in taken] == [n for n, (_, ok) in BATTERY_CASES.items() if ok]


_number = st.one_of(st.integers(-50, 5000), st.none(), st.floats(-10, 10, allow_nan=False), st.booleans(),
                    st.sampled_from(["12", "7%", "", "nan", " 3 "]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 20), steps=st.lists(st.sampled_from([300, 300, 300, 600, 0, -300, 60]), min_size=20, max_size=20),
       values=st.lists(_number, min_size=20, max_size=20), reporting=st.lists(st.one_of(st.integers(0, 6), st.none()),
                                                                              min_size=20, max_size=20),
       total=st.one_of(st.none(), st.integers(0, 6), st.just("6")), indent=st.sampled_from([None, 1]),
       envelope=st.one_of(st.none(), st.tuples(st.integers(-3, 40), st.integers(-3, 40)),
                          st.tuples(st.just(0.5), st.integers(0, 40))))
def test_v4_many_never_reads_a_body_differently(n, steps, values, reporting, total, indent, envelope):
    end = int(DAY.timestamp()) + 300
    items = []
    for k in range(n):
        items.append({"end_at": end, "devices_reporting": reporting[k], "enwh": values[k]})
        end += steps[k]
    doc = {"system_id": 1, "granularity": "day", "intervals": items}
    if envelope is not None:  # a declared window, in 5-minute steps from the day's start (or a float)
        doc["start_at"], doc["end_at"] = (int(DAY.timestamp()) + 300 * k if isinstance(k, int) else k for k in envelope)
    if total is not None:
        doc["total_devices"] = total
    body = json.dumps(doc, indent=indent).encode()
    _assert_same_rows("production_micro", [body, body])


# ---- complete_day against the pandas definitions -----------------------------------------

def _random_rows(rng: np.random.Generator, n_series: int) -> pd.DataFrame:
    frames = []
    for s in range(n_series):
        interval = int(rng.choice([300, 900]))
        channel = str(rng.choice(["pv_kwh", "battery_kwh", "load_kwh", "soc_pct"]))
        grid = pd.date_range(DAY - pd.Timedelta(hours=1), DAY + pd.Timedelta(hours=25), freq=f"{interval}s")
        keep = rng.random(len(grid)) < 0.8
        value = np.round(rng.random(len(grid)) * 2, 1)  # coarse, so runs of equal values happen
        value[rng.random(len(grid)) < 0.05] = np.nan
        value[rng.random(len(grid)) < 0.02] = 40.0  # above any nameplate below
        stuck_at = rng.integers(0, len(grid) - 10)
        value[stuck_at: stuck_at + int(rng.integers(3, 10))] = 0.7
        for pull in range(int(rng.integers(1, 3))):  # overlapping pulls, later beliefs
            frames.append(pd.DataFrame({
                "site_id": f"S{s % 3}", "device_id": f"S{s % 3}-D{s}", "source": "enphase", "channel": channel,
                "interval_start": grid[keep], "interval_s": interval, "value": value[keep] + pull * 0.1 * (pull % 2),
                "quality": np.where(np.isnan(value[keep]), "missing", "measured"),
                "received_at": RECEIVED + pd.Timedelta(minutes=int(rng.integers(0, 3)) * 10), "revision": 0}))
    return pd.concat(frames, ignore_index=True)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n_series=st.integers(1, 6))
def test_complete_day_equals_the_pandas_definitions(seed, n_series):
    rng = np.random.default_rng(seed)
    rows = _random_rows(rng, n_series)
    series = rows.drop_duplicates(SERIES_KEYS)
    expected = series[SERIES_KEYS + ["interval_s"]].iloc[::2]
    expected = pd.concat([expected, pd.DataFrame([{"site_id": "S9", "device_id": "S9-PV", "source": "enphase",
                                                   "channel": "pv_kwh", "interval_s": 300}])], ignore_index=True)
    nameplate = pd.Series({d: 7.6 for d in series["device_id"]})
    end = DAY + pd.Timedelta(days=1)
    belief = RECEIVED + pd.Timedelta(hours=1)
    ref = flag_suspect(complete_grid(rows, expected, day_start=DAY, day_end=end, believed_at=belief), nameplate)

    keys = SeriesKeys()
    blocks = [RowBlock.from_frame(frame, keys, order) for order, (_, frame) in
              enumerate(rows.groupby((rows["received_at"] != rows["received_at"].shift()).cumsum()))]
    day = complete_day(blocks, keys, expected, day_start=DAY, day_end=end, believed_at=belief, nameplate_kw=nameplate)
    pd.testing.assert_frame_equal(_canonical(day.frame()), _canonical(ref[rows.columns.tolist()]))
    pd.testing.assert_frame_equal(_review(day.review()), _review(review_items(ref)), check_dtype=False)


# ---- normalize_day against normalize_day_reference on a twin day -------------------------

HISTORY = ["solaredge", "enphase", "sma", "fronius"]


@pytest.fixture(scope="module")
def twin_day(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("twin")
    fleet = demo_fleet(30)
    enphase_sites = fleet.loc[fleet.telemetry_source == "enphase", "site_id"].drop_duplicates().tolist()
    day = f"{DAY:%Y-%m-%d}"
    faults = FaultPlan.from_dict({"seed": 4, "rules": [
        {"kind": "dropout", "vendor": "enphase", "sites": enphase_sites[:1], "start": f"{day}T15:00Z", "end": f"{day}T16:00Z"},
        {"kind": "stuck", "vendor": "enphase", "sites": enphase_sites[1:2], "channel": "pv_kwh",
         "start": f"{day}T12:00Z", "end": f"{day}T14:00Z"},
        {"kind": "spike", "vendor": "enphase", "sites": enphase_sites[2:3], "channel": "pv_kwh", "factor": 40,
         "start": f"{day}T17:00Z", "end": f"{day}T17:10Z"},
        {"kind": "late", "vendor": "enphase", "sites": enphase_sites[3:4], "delay_s": 6 * 3600},
        {"kind": "dropout", "vendor": "solaredge", "start": f"{day}T09:00Z", "end": f"{day}T10:00Z"},
    ]})
    clock = ManualClock(DAY - pd.Timedelta(days=1))
    hub = TwinHub(fleet, start=clock(), clock=clock, faults=faults)
    creds = make_credentials(0)
    payloads = []
    with serving(build_http_apps(hub, creds)) as urls:
        ready = tmp / "ready.json"
        ready.write_text(json.dumps({"http": urls, "sunspec": [], "ami_inbox": str(tmp / "inbox"), "credentials": creds,
                                     "device_base_path": "/sites/{site_id}"}))
        mp = pytest.MonkeyPatch()
        mp.setenv("DER_TWIN_READY_FILE", str(ready))
        mp.setenv("DER_FRONIUS_ARCHIVE_GAP_S", "0")
        try:
            # an evening pull while the late site is still behind, then the next morning's pull
            for now in (DAY + pd.Timedelta(hours=20), DAY + pd.Timedelta(days=1, hours=8)):
                clock.set(now)
                hub.sync()
                for source in HISTORY if now.hour == 8 else ["enphase"]:
                    result = asyncio.run(pull_source(source, fleet, DAY, min(now, DAY + pd.Timedelta(days=1))))
                    payloads += [LandedPayload(len(payloads) + i, p.source, p.endpoint, p.site_id,
                                               pd.Timestamp(p.received_at), p.content)
                                 for i, p in enumerate(result.payloads)]
        finally:
            mp.undo()
    # one Enphase body arrives cut in half: quarantined on both paths
    cut = next(p for p in payloads if p.source == "enphase" and p.endpoint == "production_micro")
    payloads.append(LandedPayload(len(payloads), cut.source, cut.endpoint, cut.site_id,
                                  cut.received_at + pd.Timedelta(minutes=1), cut.content[: len(cut.content) // 2]))
    return fleet, payloads, hub.now()


def test_normalize_day_equals_the_reference_on_a_twin_day(twin_day):
    fleet, payloads, now = twin_day
    kwargs = dict(day_start=DAY, believed_at=now, sources=HISTORY)
    fast = normalize_day(payloads, fleet, **kwargs)
    ref = normalize_day_reference(payloads, fleet, **kwargs)
    pd.testing.assert_frame_equal(_canonical(fast.rows), _canonical(ref.rows))
    pd.testing.assert_frame_equal(_review(fast.review), _review(ref.review), check_dtype=False)
    assert sorted(fast.parsed_ids) == sorted(ref.parsed_ids)
    assert sorted(q["payload_id"] for q in fast.quarantined) == sorted(q["payload_id"] for q in ref.quarantined)
    assert fast.stats() == ref.stats()
    # the faults are visible, not repaired
    stats = fast.stats()
    assert stats["quarantined_payloads"] == 1 and stats["suspect"] > 0 and stats["missing"] > 0
    issues = set(fast.review["issue"])
    assert {"gap", "suspect_stuck", "suspect_spike"} <= issues


def test_the_fleet_day_frame_passes_the_canonical_schema_and_a_bad_category_does_not(twin_day):
    from der_assets.telemetry.schema import passes_fast, validate

    fleet, payloads, now = twin_day
    rows = normalize_day(payloads, fleet, day_start=DAY, believed_at=now, sources=HISTORY).rows
    assert isinstance(rows["site_id"].dtype, pd.CategoricalDtype)  # 5 M Python strings would not fit a fleet
    assert passes_fast(rows)
    validate(rows)
    bad = rows.copy()
    bad["quality"] = bad["quality"].cat.rename_categories({"measured": "fine"})
    assert not passes_fast(bad)
    with pytest.raises(Exception):
        validate(bad)


def test_a_payload_entirely_outside_the_day_adds_no_series_and_no_warning(cloud_bodies, recwarn):
    registry = demo_fleet(60)
    site = registry.loc[registry["telemetry_source"] == "enphase", "site_id"].iloc[0]
    # the twin's day, 2026-07-15; load is not a registry series, so only the payload could add it
    payloads = [LandedPayload(1, "enphase", "production_micro", site, RECEIVED, cloud_bodies["production_micro"][0]),
                LandedPayload(2, "enphase", "consumption_meter", site, RECEIVED, cloud_bodies["consumption_meter"][0])]
    result = normalize_day(payloads, registry, day_start=DAY + pd.Timedelta(days=3), believed_at=RECEIVED,
                           sources=["enphase"])
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    assert (result.rows["quality"] == "missing").all() and result.rows["value"].isna().all()
    assert "load_kwh" not in set(result.rows["channel"])
    assert sorted(result.parsed_ids) == [1, 2]


def _fast_equals_reference(payloads, registry, day_start=DAY, sources=("enphase",), believed_at=None):
    kwargs = dict(day_start=day_start, believed_at=believed_at or RECEIVED + pd.Timedelta(hours=1), sources=list(sources))
    fast, ref = normalize_day(payloads, registry, **kwargs), normalize_day_reference(payloads, registry, **kwargs)
    pd.testing.assert_frame_equal(_canonical(fast.rows), _canonical(ref.rows))
    pd.testing.assert_frame_equal(_review(fast.review), _review(ref.review), check_dtype=False)
    assert sorted(fast.parsed_ids) == sorted(ref.parsed_ids)
    assert sorted(q["payload_id"] for q in fast.quarantined) == sorted(q["payload_id"] for q in ref.quarantined)
    return fast


def test_odd_bodies_in_a_day_read_as_the_reference_reads_them(cloud_bodies):
    """Cases a review found: each once broke the fast path or read differently."""
    registry = demo_fleet(60)
    site = registry.loc[registry["telemetry_source"] == "enphase", "site_id"].iloc[0]
    registry = registry[registry["site_id"] == site]
    micro = cloud_bodies["production_micro"][0]
    meter = cloud_bodies["production_meter"][0]

    def landed(k, endpoint, content, received=RECEIVED):
        return LandedPayload(k, "enphase", endpoint, site, received, content)

    huge = micro.replace(b'"total_devices":', b'"total_devices":1' + b"0" * 400 + b',"x":', 1)
    deep = micro.replace(b'"intervals":', b'"deep":' + b"[" * 1000 + b"]" * 1000 + b',"intervals":', 1)
    cases = {
        "empty body after a full one": [landed(1, "production_micro", micro),
                                        landed(2, "production_micro", b'{"intervals":[]}')],
        "integer beyond a double": [landed(1, "production_micro", huge)],
        "nesting a thousand deep": [landed(1, "production_micro", deep)],
        "invalid UTF-8 in a skipped field": [landed(1, "production_micro", micro.replace(b"{", b'{"note":"\xff",', 1))],
        "text instead of bytes": [landed(1, "production_micro", micro.decode())],
        "meter then micro at another length": [landed(1, "production_meter", meter),
                                               landed(2, "production_micro", micro, RECEIVED + pd.Timedelta(hours=1))],
        "nanoseconds in received_at": [landed(1, "production_micro", micro, RECEIVED + pd.Timedelta(nanoseconds=500))],
    }
    results = {}
    for name, payloads in cases.items():
        try:
            results[name] = _fast_equals_reference(payloads, registry)
        except AssertionError as exc:
            raise AssertionError(name) from exc
    # the meter's quarter-hours are not placed in the 5-minute series, and the operator is told so
    review = results["meter then micro at another length"].review
    other = review[review["issue"] == "other_interval_length"]
    assert other[["channel", "n_intervals"]].values.tolist() == [["pv_kwh", 96]]
    assert other["first_interval"].iloc[0] == DAY and other["last_interval"].iloc[0] == DAY + pd.Timedelta(hours=23, minutes=45)
    # a body whose intervals straddle the day without one inside it (and no envelope) adds no series
    doc = json.loads(cloud_bodies["consumption_meter"][0])
    first = doc["intervals"][0]
    doc["intervals"] = [dict(first, end_at=first["end_at"] - 900), dict(first, end_at=first["end_at"] + 86400)]
    declared = dict(doc)
    doc.pop("start_at")
    fast = _fast_equals_reference([landed(1, "consumption_meter", json.dumps(doc).encode())], registry)
    assert "load_kwh" not in set(fast.rows["channel"])
    # with its envelope, the body declares the day it skips: every quarter-hour of it is a missing row
    fast = _fast_equals_reference([landed(1, "consumption_meter", json.dumps(declared).encode())], registry)
    load = fast.rows[fast.rows["channel"] == "load_kwh"]
    assert len(load) == 96 and (load["quality"] == "missing").all()
