"""The dispatch table, the CSV contract for `der normalize`, and the ParseError contract."""

from __future__ import annotations

import io
import pickle

import pandas as pd
import pytest

from der_assets.telemetry import CANONICAL_COLUMNS, ParseError, normalize_to_csv, parse_payload, supported_endpoints
from der_assets.telemetry.schema import validate

from ._helpers import RECEIVED, fixture_bytes

GBA = ("greenbutton_espi", "GreenButtonAlliance_OpenESPI", "test_usage_data.xml")


def test_every_requested_endpoint_is_registered():
    assert supported_endpoints() == {
        "solaredge": ["energyDetails", "powerDetails", "meters", "storageData", "equipmentData"],
        "enphase": ["production_micro", "production_meter", "consumption_meter", "battery",
                    "production.json", "ivp_meters_readings"],
        "sma": ["measurements"],
        "sonnen": ["status", "powermeter"],
        "fronius": ["GetArchiveData", "GetPowerFlowRealtimeData"],
        "greenbutton": ["espi"],
        "utility_csv": ["comed", "peco", "sce"],  # one endpoint per mapping in telemetry/data/utility_csv
        "sunspec": ["snapshot"],  # the connector's JSON snapshot of a Modbus poll (parsers/sunspec.py)
        "generac": ["snapshot"],
    }


def test_normalize_to_csv_has_canonical_columns_in_order():
    text = normalize_to_csv("greenbutton", "espi", fixture_bytes(*GBA), site_id="S-9", received_at=RECEIVED)
    header, first = text.splitlines()[:2]
    assert header.split(",") == CANONICAL_COLUMNS
    # first reading in the file: value 282 Wh, ReadingQuality 8, start 1330578000
    assert first == "S-9,S-9,ami,grid_kwh,2012-03-01T05:00:00Z,900,0.282,estimated,2026-01-01T00:00:00Z,0"
    back = pd.read_csv(io.StringIO(text))
    assert len(back) == 1340


def test_missing_values_are_empty_in_csv_never_zero():
    raw = fixture_bytes("fronius_solar_api_v1_local", "akleber_fronius-json-tools", "archivedata_day_2017-08-30.json")
    text = normalize_to_csv("fronius", "GetArchiveData", raw, site_id="F", received_at=RECEIVED)
    assert text.splitlines()[-1] == "F,16220118,fronius,grid_kwh,2017-08-30T21:55:00Z,300,,missing,2026-01-01T00:00:00Z,0"


def test_output_validates_against_the_schema():
    df = parse_payload("greenbutton", "espi", fixture_bytes(*GBA), site_id="S", received_at=RECEIVED)
    validate(df)
    assert str(df["interval_start"].dtype) == "datetime64[ns, UTC]"


def test_schema_rejects_a_silent_zero_and_bad_signs():
    df = parse_payload("greenbutton", "espi", fixture_bytes(*GBA), site_id="S", received_at=RECEIVED).head(3).copy()
    bad = df.copy()
    bad.loc[0, "quality"] = "missing"  # a missing row must have a null value
    with pytest.raises(Exception):
        validate(bad)
    bad = df.copy()
    bad.loc[0, ["channel", "value"]] = ["pv_kwh", -1.0]
    with pytest.raises(Exception):
        validate(bad)


@pytest.mark.parametrize("source, endpoint, match", [("tesla", "x", "unknown source"), ("sma", "plants", "unknown endpoint")])
def test_unknown_source_or_endpoint(source, endpoint, match):
    with pytest.raises(ParseError, match=match):
        parse_payload(source, endpoint, b"{}", site_id="S", received_at=RECEIVED)


def test_received_at_must_be_aware():
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_payload("greenbutton", "espi", b"<feed/>", site_id="S", received_at=pd.Timestamp("2026-01-01"))


def test_parse_error_is_one_line_typed_and_picklable():
    with pytest.raises(ParseError) as err:
        parse_payload("fronius", "GetArchiveData.cgi", b'{"Head": {"Status": {"Code": 0}}, "Body": {"Data": {}}',
                      site_id="F-7", received_at=RECEIVED)
    e = err.value
    assert (e.source, e.endpoint, e.site_id) == ("fronius", "GetArchiveData", "F-7")
    assert "\n" not in str(e) and str(e).startswith("fronius/GetArchiveData site=F-7 window=")
    assert str(pickle.loads(pickle.dumps(e))) == str(e)
