"""`der normalize` prints canonical CSV for a real payload and one line for a bad one."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from der_assets.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ESPI = FIXTURES / "greenbutton_espi" / "GreenButtonAlliance_OpenESPI" / "test_usage_data.xml"


def test_espi_file_to_canonical_csv(capsys):
    with pytest.raises(SystemExit) as info:
        main(["normalize", "--source", "greenbutton", "--endpoint", "espi", "--site-id", "S-1",
              "--received-at", "2026-11-28T00:00:00Z", str(ESPI)])
    out, _ = capsys.readouterr()
    assert info.value.code == 0
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns) == ["site_id", "device_id", "source", "channel", "interval_start", "interval_s",
                                   "value", "quality", "received_at", "revision"]
    assert set(frame["source"]) == {"ami"} and set(frame["site_id"]) == {"S-1"}
    assert frame["interval_start"].iloc[0] == "2012-03-01T05:00:00Z"
    assert (frame["received_at"] == "2026-11-28T00:00:00Z").all()


def test_truncated_payload_is_one_line(capsys, tmp_path):
    bad = tmp_path / "cut.json"
    bad.write_text('{"energyDetails": {"meters": [')
    with pytest.raises(SystemExit) as info:
        main(["normalize", "--source", "solaredge", "--endpoint", "energyDetails", "--tz", "America/New_York",
              "--site-id", "S-9", str(bad)])
    _, err = capsys.readouterr()
    assert info.value.code == 1
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"der: {bad}: solaredge/energyDetails site=S-9")
    assert "Traceback" not in err
