"""Fronius archive PV: the inverters' per-step EnergyReal_WAC_Sum_Produced is the site's pv_kwh.

The archive day of the real 2017-08-30 capture (meter registers only) with inverter nodes added
in the documented shape (reference/vendor-formats.md section 5): Wh per 5-minute step keyed by
seconds since Start.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry import ParseError

from ._helpers import channel, fixture_json, parse

ARCHIVE = ("fronius_solar_api_v1_local", "akleber_fronius-json-tools", "archivedata_day_2017-08-30.json")
START = pd.Timestamp("2017-08-29T22:00Z")  # 2017-08-30T00:00+02:00


def _with_inverters(*values_by_node: dict) -> bytes:
    doc = copy.deepcopy(fixture_json(*ARCHIVE))
    meter = doc["Body"]["Data"]["meter:16220118"]
    for n, values in enumerate(values_by_node, start=1):
        doc["Body"]["Data"][f"inverter/{n}"] = {
            "Data": {"EnergyReal_WAC_Sum_Produced": {"Unit": "Wh", "Values": values, "_comment": "channelId=67830024"}},
            "DeviceType": 83, "End": meter["End"], "NodeType": 97, "Start": meter["Start"]}
    return json.dumps(doc).encode()


def test_per_step_energy_is_measured_pv_for_every_step_of_the_day():
    # noon to 13:00 local: 100 Wh a step on inverter 1, 50 Wh on inverter 2; night steps log 0
    steps = {str(k): 0.0 for k in range(0, 86400, 300)}
    one = dict(steps, **{str(k): 100.0 for k in range(43200, 46800, 300)})
    two = dict(steps, **{str(k): 50.0 for k in range(43200, 46800, 300)})
    del two["45000"]  # inverter 2 did not log 12:30: the site's sum for that step is unknown
    pv = channel(parse("fronius", "GetArchiveData", _with_inverters(one, two)), "pv_kwh")
    assert len(pv) == 288 and set(pv["interval_s"]) == {300}
    assert pv["interval_start"].iloc[0] == START and pv["interval_start"].iloc[-1] == START + pd.Timedelta("23h55min")
    at = pv.set_index("interval_start")
    noon = START + pd.Timedelta(hours=12)
    assert at.loc[noon, "value"] == pytest.approx(0.150) and at.loc[noon, "quality"] == "measured"
    assert at.loc[noon + pd.Timedelta(minutes=30), "quality"] == "missing"
    assert np.isnan(at.loc[noon + pd.Timedelta(minutes=30), "value"])  # not 0.100, not 0
    # 11 whole steps of 150 Wh; every other step a measured 0
    assert pv["value"].sum() == pytest.approx(11 * 0.150)
    assert (pv["quality"] == "measured").sum() == 287
    # the meter's registers are still read from the same payload
    assert len(channel(parse("fronius", "GetArchiveData", _with_inverters(one)), "grid_kwh")) == 288


def test_a_step_no_inverter_logged_is_missing_and_an_odd_step_is_regridded():
    sparse = {"0": 10.0, "600": 10.0}  # 00:00 and 00:10 logged, 00:05 not
    pv = channel(parse("fronius", "GetArchiveData", _with_inverters(sparse | {"300": None})), "pv_kwh")
    assert pv["quality"].iloc[:3].tolist() == ["measured", "missing", "measured"]
    # a 10-minute logging step: three steps of 30 Wh make 45 Wh per quarter-hour
    tenth = {str(k): 30.0 for k in range(0, 86400, 600)}
    pv = channel(parse("fronius", "GetArchiveData", _with_inverters(tenth)), "pv_kwh")
    assert set(pv["interval_s"]) == {900}
    assert pv[pv["quality"] != "missing"]["value"].head(4).tolist() == pytest.approx([0.045] * 4)


def test_inverter_keys_off_the_step_are_refused():
    with pytest.raises(ParseError, match="inverter archive keys"):
        parse("fronius", "GetArchiveData", _with_inverters({"0": 1.0, "300": 1.0, "450": 1.0, "86700": 1.0}))
