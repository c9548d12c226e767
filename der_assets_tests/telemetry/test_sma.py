"""SMA ennexOS measurements (DOC-BASED), with the local-time DST days and the absurd first reading."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from der_assets.telemetry import ParseError

from ._helpers import channel, parse

TZ = "Europe/Berlin"


def body(times, wh, tz=TZ, resolution="FifteenMinutes", set_type="EnergyAndPowerPv"):
    return json.dumps({
        "plant": {"plantId": "7190", "name": "Roof", "timezone": tz},
        "device": {"deviceId": "9001", "name": "STP", "timezone": tz},
        "setType": set_type, "resolution": resolution,
        "set": [{"time": t, "pvGeneration": v} for t, v in zip(times, wh)],
    }).encode()


def labels(day, step_min=15, hours=range(24)):
    return [f"{day}T{h:02d}:{m:02d}:00" for h in hours for m in range(0, 60, step_min)]


def test_day_of_five_minute_energy():
    t = labels("2025-03-28", 5)
    wh = [0.0] * 72 + [300.0] * 144 + [0.0] * 72
    wh[100] = None
    pv = channel(parse("sma", "measurements", body(t, wh, resolution="FiveMinutes"), tz=TZ), "pv_kwh")
    assert len(pv) == 288 and set(pv["interval_s"]) == {300}
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2025-03-27T23:00Z")  # 00:00 CET
    assert pv["value"].sum() == pytest.approx(143 * 0.3)
    assert pv.loc[100, "quality"] == "missing"


def test_absurd_first_reading_is_kept_and_flagged():
    t = labels("2025-03-28", 5, hours=range(7, 12))
    wh = [1024843.0] + [250.0] * 59
    pv = channel(parse("sma", "measurements", body(t, wh, resolution="FiveMinutes"), tz=TZ), "pv_kwh")
    assert pv.loc[0, "quality"] == "suspect" and pv.loc[0, "value"] == pytest.approx(1024.843)
    assert (pv.loc[1:, "quality"] == "measured").all()


def test_spring_forward_day_has_92_quarter_hours():
    t = labels("2025-03-30")
    wh = [None if s.startswith("2025-03-30T02:") else 10.0 for s in t]
    pv = channel(parse("sma", "measurements", body(t, wh), tz=TZ), "pv_kwh")
    assert len(pv) == 92 and pv["value"].sum() == pytest.approx(0.92)
    assert pv["interval_start"].iloc[8] == pd.Timestamp("2025-03-30T01:00Z")  # 03:00 CEST after 01:45 CET


def test_fall_back_day_listed_twice_has_100_quarter_hours():
    t = labels("2025-10-26")
    t = t[:12] + t[8:12] + t[12:]  # 02:00-02:45 twice
    pv = channel(parse("sma", "measurements", body(t, [5.0] * len(t)), tz=TZ), "pv_kwh")
    assert len(pv) == 100 and pv["interval_start"].is_unique and (pv["quality"] == "measured").all()
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2025-10-25T22:00Z")
    assert pv["interval_start"].iloc[-1] == pd.Timestamp("2025-10-26T22:45Z")


def test_fall_back_hour_listed_once_is_suspect():
    t = labels("2025-10-26")
    pv = channel(parse("sma", "measurements", body(t, [5.0] * 96), tz=TZ), "pv_kwh")
    assert (pv["quality"] == "suspect").sum() == 4


@pytest.mark.parametrize(
    "kwargs, tz, match",
    [
        ({"tz": "Europe/Vienna"}, TZ, "disagrees"),
        ({"set_type": "PowerAc"}, TZ, "setType"),
        ({"resolution": "OneDay"}, TZ, "resolution"),
    ],
)
def test_refusals(kwargs, tz, match):
    with pytest.raises(ParseError, match=match):
        parse("sma", "measurements", body(labels("2025-03-28")[:4], [1, 2, 3, 4], **kwargs), tz=tz)


def test_missing_energy_values_are_refused():
    raw = json.loads(body(labels("2025-03-28")[:2], [1, 2]))
    for e in raw["set"]:
        e["pvPower"] = e.pop("pvGeneration")
    with pytest.raises(ParseError, match="ReturnEnergyValues"):
        parse("sma", "measurements", json.dumps(raw).encode(), tz=TZ)
