"""Green Button ESPI against Green Button Alliance samples (FIXTURE-VERIFIED), plus safe-XML
refusals and the documented reverse-flow case (DOC-BASED)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from der_assets.telemetry import ParseError

from ._helpers import channel, fixture_bytes, parse

GBA = ("greenbutton_espi", "GreenButtonAlliance_OpenESPI", "test_usage_data.xml")
VLAD = ("greenbutton_espi", "vladistan_greenbutton_objects")


def regex_values(xml: bytes) -> list:
    """Every IntervalReading <value>, read without the parser (to check its totals)."""
    text = xml.decode()
    return [int(v) for v in re.findall(r"<IntervalReading>.*?<value>(-?\d+)</value>", text, flags=re.S)]


def test_dst_day_block_gives_92_quarter_hours():
    raw = fixture_bytes(*GBA)
    assert b"<duration>82800</duration>" in raw
    grid = channel(parse("greenbutton", "espi", raw), "grid_kwh")
    local_day = grid["interval_start"].dt.tz_convert("America/New_York").dt.date
    dst_day = grid[local_day == pd.Timestamp("2012-03-11").date()]
    assert len(dst_day) == 92
    assert set(dst_day["interval_s"]) == {900}
    assert dst_day["interval_start"].iloc[0] == pd.Timestamp("2012-03-11T05:00:00Z")  # block start 1331442000
    assert dst_day["interval_start"].iloc[-1] == pd.Timestamp("2012-03-12T03:45:00Z")
    assert dst_day["value"].iloc[:3].tolist() == pytest.approx([0.327, 0.309, 0.273])  # read off the file


def test_whole_feed_totals_and_quality_codes():
    raw = fixture_bytes(*GBA)
    vals = regex_values(raw)
    grid = channel(parse("greenbutton", "espi", raw), "grid_kwh")
    assert len(grid) == len(vals) == 13 * 96 + 92
    assert grid["value"].sum() == pytest.approx(sum(vals) / 1000.0)
    assert (grid["value"] >= 0).all()  # forward flow only: import
    assert grid["interval_start"].iloc[0] == pd.Timestamp("2012-03-01T05:00:00Z")
    # first two readings carry ReadingQuality 8 (estimated from history) and 7 (human edited)
    assert grid["quality"].iloc[:3].tolist() == ["estimated", "estimated", "measured"]
    assert set(grid["source"]) == {"ami"}


def test_hourly_sample_with_prefixed_namespace():
    raw = fixture_bytes(*VLAD, "TestGBDataHourlyNineDaysBinnedDaily.xml")
    grid = channel(parse("greenbutton", "espi", raw), "grid_kwh")
    assert len(grid) == 9 * 24 and set(grid["interval_s"]) == {3600}
    assert grid["value"].sum() == pytest.approx(sum(regex_values(raw)) / 1000.0)
    raw = fixture_bytes(*VLAD, "electric_containerized.xml")
    assert len(parse("greenbutton", "espi", raw)) == 8


def test_gas_feed_is_refused_by_unit():
    with pytest.raises(ParseError, match="uom '169'"):
        parse("greenbutton", "espi", fixture_bytes(*VLAD, "gas_direct.xml"))


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><content>&xxe;</content></entry></feed>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<feed>&lol2;</feed>"""


@pytest.mark.parametrize("payload, match", [(XXE, "unsafe XML"), (LAUGHS, "unsafe XML"),
                                            (fixture_bytes(*GBA)[:5000], "malformed or truncated XML"),
                                            (b"", "empty payload")])
def test_unsafe_or_broken_xml_is_refused(payload, match):
    with pytest.raises(ParseError, match=match) as err:
        parse("greenbutton", "espi", payload)
    assert str(err.value).startswith("greenbutton/espi site=SITE-1")


def espi(direction: str, values, power=0) -> str:
    readings = "".join(
        f"<IntervalReading><timePeriod><duration>900</duration><start>{1717999200 + 900 * i}</start>"
        f"</timePeriod><value>{v}</value></IntervalReading>" for i, v in enumerate(values)
    )
    return f"""
  <entry><link rel="self" href="/UsagePoint/1/MeterReading/{direction}"/>
    <link rel="related" href="/UsagePoint/1/MeterReading/{direction}/IntervalBlock"/>
    <link rel="related" href="/ReadingType/{direction}"/>
    <content><MeterReading xmlns="http://naesb.org/espi"/></content></entry>
  <entry><link rel="self" href="/ReadingType/{direction}"/>
    <content><ReadingType xmlns="http://naesb.org/espi"><accumulationBehaviour>4</accumulationBehaviour>
      <commodity>1</commodity><flowDirection>{direction}</flowDirection><intervalLength>900</intervalLength>
      <kind>12</kind><powerOfTenMultiplier>{power}</powerOfTenMultiplier><uom>72</uom></ReadingType></content></entry>
  <entry><link rel="self" href="/UsagePoint/1/MeterReading/{direction}/IntervalBlock/1"/>
    <link rel="up" href="/UsagePoint/1/MeterReading/{direction}/IntervalBlock"/>
    <content><IntervalBlock xmlns="http://naesb.org/espi"><interval><duration>{900 * len(values)}</duration>
      <start>1717999200</start></interval>{readings}</IntervalBlock></content></entry>"""


def feed(*entries) -> bytes:
    return f'<feed xmlns="http://www.w3.org/2005/Atom">{"".join(entries)}</feed>'.encode()


def test_forward_and_reverse_flow_are_netted():
    grid = channel(parse("greenbutton", "espi", feed(espi("1", [500, 100, 0]), espi("19", [0, 300, 700]))), "grid_kwh")
    assert grid["value"].tolist() == pytest.approx([0.5, -0.2, -0.7])
    assert grid["interval_start"].iloc[0] == pd.Timestamp(1717999200, unit="s", tz="UTC")


def test_reverse_only_is_export_and_multiplier_applies():
    grid = channel(parse("greenbutton", "espi", feed(espi("19", [2, 3], power=3))), "grid_kwh")
    assert grid["value"].tolist() == pytest.approx([-2.0, -3.0])  # 2 x 10^3 Wh exported
