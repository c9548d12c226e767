"""Green Button writer: late delivery on the twin's clock, DST days, structure against the
OpenESPI sample, and our parser reading the twin's grid energy back (import and export)."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from der_assets.simulator import greenbutton as gb
from der_assets.telemetry import parse_payload

from ._common import FIXTURES, fifteen_min, make_hub

ESPI = "{http://naesb.org/espi}"
ATOM = "{http://www.w3.org/2005/Atom}"
SAMPLE = FIXTURES / "greenbutton_espi" / "GreenButtonAlliance_OpenESPI" / "test_usage_data.xml"
SITE = "S-00019"  # America/New_York


def _readings(xml: bytes) -> dict[int, list[ET.Element]]:
    """flowDirection -> IntervalReadings (the file has one block per direction)."""
    root = ET.fromstring(xml)
    dirs = [int(rt.find(f"{ESPI}flowDirection").text) for rt in root.iter(f"{ESPI}ReadingType")]
    blocks = list(root.iter(f"{ESPI}IntervalBlock"))
    return {d: b.findall(f"{ESPI}IntervalReading") for d, b in zip(dirs, blocks, strict=True)}


def test_files_appear_only_after_the_per_meter_day_delay_and_never_twice(tmp_path):
    hub, clock = make_hub("2026-07-15T00:00Z")
    inbox = tmp_path / "inbox"
    meter = str(hub.sites.loc[SITE, "meter_id"])
    day = dt.date(2026, 7, 15)
    day_end = pd.Timestamp("2026-07-16T04:00Z")  # local midnight EDT
    delay = gb.delivery_delay(meter, day)
    assert pd.Timedelta(hours=24) <= delay <= pd.Timedelta(hours=48)
    assert gb.delivery_delay(meter, day) == delay  # deterministic
    clock.set(day_end + pd.Timedelta(hours=23, minutes=59))
    assert gb.deliver_due_files(hub, inbox) == []  # nobody is due before 24 h
    clock.set(day_end + delay - pd.Timedelta(minutes=1))
    gb.deliver_due_files(hub, inbox)
    target = inbox / gb.file_name(meter, day)
    assert not target.exists()
    clock.set(day_end + delay + pd.Timedelta(minutes=1))
    assert target in gb.deliver_due_files(hub, inbox)
    clock.set(day_end + pd.Timedelta(hours=49))  # Chicago's day ends an hour later
    first = gb.deliver_due_files(hub, inbox)
    assert target not in first
    assert len(list(inbox.glob("greenbutton_*_2026-07-15.xml"))) == len(hub.sites)  # every meter, once
    target.unlink()  # a consumer moved it away: still never written twice
    assert gb.deliver_due_files(hub, inbox) == [] and not target.exists()
    assert not list(inbox.glob(".*.tmp"))  # atomic writes leave no temporaries


@pytest.mark.parametrize("start, day, n, block_s", [
    ("2026-10-31T00:00Z", dt.date(2026, 11, 1), 100, 90000),  # fall back
    ("2026-03-07T00:00Z", dt.date(2026, 3, 8), 92, 82800),  # spring forward
])
def test_dst_days_have_100_and_92_quarter_hours(tmp_path, start, day, n, block_s):
    hub, clock = make_hub(start, advance_h=24 * 4)
    files = gb.deliver_due_files(hub, tmp_path)
    meter = str(hub.sites.loc[SITE, "meter_id"])
    xml = (tmp_path / gb.file_name(meter, day)).read_bytes()
    assert tmp_path / gb.file_name(meter, day) in files
    root = ET.fromstring(xml)
    for block in root.iter(f"{ESPI}IntervalBlock"):
        assert int(block.find(f"{ESPI}interval/{ESPI}duration").text) == block_s
        assert len(block.findall(f"{ESPI}IntervalReading")) == n
    df = parse_payload("greenbutton", "espi", xml, site_id=SITE, received_at=hub.now())
    assert len(df) == n and set(df["interval_s"]) == {900}


def test_structure_follows_the_openespi_sample():
    hub, _clock = make_hub("2026-07-15T00:00Z", advance_h=30)
    ours = ET.fromstring(gb.espi_day_xml(hub, SITE, dt.date(2026, 7, 15)))
    real = ET.fromstring(SAMPLE.read_bytes())
    assert ours.tag == real.tag == f"{ATOM}feed"

    def kinds(root):
        return {c.tag for e in root.findall(f"{ATOM}entry") for c in e.find(f"{ATOM}content")}

    assert kinds(ours) <= kinds(real)
    for tag in ("LocalTimeParameters", "ReadingType", "IntervalBlock", "UsagePoint"):
        o, r = next(ours.iter(f"{ESPI}{tag}")), next(real.iter(f"{ESPI}{tag}"))
        assert {c.tag for c in o} <= {c.tag for c in r}, tag
    ltp = {c.tag[len(ESPI):]: c.text for c in next(ours.iter(f"{ESPI}LocalTimeParameters"))}
    real_ltp = {c.tag[len(ESPI):]: c.text for c in next(real.iter(f"{ESPI}LocalTimeParameters"))}
    assert ltp == real_ltp  # New York rules encode exactly as the sample's North America rules
    rt = {c.tag[len(ESPI):]: c.text for c in next(ours.iter(f"{ESPI}ReadingType"))}
    assert rt["uom"] == "72" and rt["powerOfTenMultiplier"] == "0" and rt["intervalLength"] == "900"
    assert rt["accumulationBehaviour"] == "4" and rt["kind"] == "12"
    reading = next(ours.iter(f"{ESPI}IntervalReading"))
    real_reading = next(real.iter(f"{ESPI}IntervalReading"))
    assert {c.tag for c in reading} <= {c.tag for c in real_reading}
    assert reading.find(f"{ESPI}value").text.isdigit()  # whole Wh, as the sample
    assert [ln.get("rel") for ln in ours.find(f"{ATOM}entry").findall(f"{ATOM}link")][:2] == ["self", "up"]
    assert gb.local_time_parameters("America/Chicago", 2026)["tzOffset"] == -21600


def test_parser_reads_back_the_twin_grid_energy_with_export(tmp_path):
    hub, _clock = make_hub("2026-07-15T00:00Z", advance_h=30)
    day = dt.date(2026, 7, 15)
    exported = 0
    for site_id in hub.sites.index[:12]:
        tz = str(hub.sites.loc[site_id, "timezone"])
        start, end = gb.day_window(tz, day)
        xml = gb.espi_day_xml(hub, site_id, day)
        readings = _readings(xml)
        assert set(readings) == {1, 19}
        exported += sum(int(r.find(f"{ESPI}value").text) for r in readings[19])
        df = parse_payload("greenbutton", "espi", xml, site_id=site_id, received_at=hub.now())
        got = df[df["channel"] == "grid_kwh"].set_index("interval_start")["value"]
        truth = fifteen_min(hub.window(site_id, start, end, vendor="greenbutton"), "grid_kwh")
        assert len(got) == len(truth) == 96 and (df["source"] == "ami").all()
        # meter rounding: forward and reverse each within 1 Wh per quarter-hour and per day
        np.testing.assert_allclose(got.to_numpy(), truth.to_numpy(), atol=2e-3)
        assert abs(got.sum() - truth.sum()) < 2e-3
    assert exported > 1000  # some of these homes export on a July day: reverse flow is exercised
