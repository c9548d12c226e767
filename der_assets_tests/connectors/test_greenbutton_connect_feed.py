"""The Connect feed shape of the Green Button Alliance's sample subscription feed, read by the ESPI parser.

Usage-Subscription-Feed-Anonymized.xml (OpenESPI sample-xml, a Batch/Subscription answer) differs from
the inbox files: hrefs are absolute, the UsagePoint links the MeterReading entry itself, and the
ReadingType is nested in the MeterReading's content instead of being an entry of its own. The sample
carries no IntervalBlock; the test adds one under the MeterReading's own IntervalBlock collection
(`.../MeterReading/{id}/IntervalBlock`, the OpenESPI route), values counted by hand.
"""

from __future__ import annotations

import pandas as pd
import pytest

from der_assets.telemetry import ParseError, parse_payload

from ..telemetry._helpers import fixture_bytes

SAMPLE = ("greenbutton_espi", "GreenButtonAlliance_OpenESPI", "Usage-Subscription-Feed-Anonymized.xml")
MR = ("https://test-datacustodian.example.com/espi/1_1/resource/Subscription/test-subscription-id/UsagePoint/"
      "test-usage-point-id/MeterReading/test-meter-reading-id")
START = 1_751_328_000  # 2025-07-01T00:00:00Z


def _with_block(raw: bytes, *, up: str) -> bytes:
    readings = "".join(f"<espi:IntervalReading><espi:timePeriod><espi:duration>3600</espi:duration>"
                       f"<espi:start>{START + 3600 * i}</espi:start></espi:timePeriod>"
                       f"<espi:value>{wh}</espi:value></espi:IntervalReading>"
                       for i, wh in enumerate((1250, 800, 0)))
    entry = (f'<entry xmlns:espi="http://naesb.org/espi"><id>urn:uuid:77777777-7777-7777-7777-777777777777</id>'
             f'<link href="{up}" rel="up" type="espi-feed/IntervalBlock"/>'
             f'<link href="{MR}/IntervalBlock/1" rel="self" type="espi-entry/IntervalBlock"/>'
             f"<content><espi:IntervalBlock><espi:interval><espi:duration>10800</espi:duration>"
             f"<espi:start>{START}</espi:start></espi:interval>{readings}</espi:IntervalBlock></content>"
             f"<published>2025-07-02T00:00:00Z</published><updated>2025-07-02T00:00:00Z</updated></entry>")
    assert raw.count(b"</feed>") == 1
    return raw.replace(b"</feed>", entry.encode() + b"</feed>")


def _parse(raw: bytes) -> pd.DataFrame:
    return parse_payload("greenbutton", "espi", raw, site_id="S-1", tz="America/New_York",
                         received_at=pd.Timestamp("2025-07-03T00:00Z").to_pydatetime())


def test_sample_subscription_feed_nests_the_reading_type_in_the_meter_reading():
    raw = fixture_bytes(*SAMPLE)
    assert b"<espi:MeterReading>\n\t\t\t\t<espi:ReadingType>" in raw  # the shape this test is about
    rows = _parse(_with_block(raw, up=f"{MR}/IntervalBlock"))
    grid = rows[rows["channel"] == "grid_kwh"].sort_values("interval_start")
    assert grid["interval_start"].tolist() == list(pd.date_range("2025-07-01T00:00Z", periods=3, freq="h"))
    assert grid["value"].tolist() == [1.25, 0.8, 0.0]  # Wh / 1000, forward flow = import
    assert set(grid["interval_s"]) == {3600} and set(grid["quality"]) == {"measured"}


def test_a_block_under_another_meter_reading_is_still_refused():
    raw = _with_block(fixture_bytes(*SAMPLE), up=f"{MR}-other/IntervalBlock")
    with pytest.raises(ParseError, match="cannot be linked to a ReadingType"):
        _parse(raw)
