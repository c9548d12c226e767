"""SMA ennexOS measurements (DOC-BASED), with the local-time DST days and the absurd first reading.

SMA labels the END of each interval (a Day runs 00:05 .. next 00:00), so payloads here are
built from interval-end labels."""

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
    """Interval-END wall labels of a day without a DST change: 00:15 .. next day 00:00."""
    start = pd.Timestamp(f"{day}T00:00")
    ends = [start + pd.Timedelta(hours=h, minutes=m + step_min) for h in hours for m in range(0, 60, step_min)]
    return [t.strftime("%Y-%m-%dT%H:%M:%S") for t in ends]


def dst_day_labels(day, tz, step_min):
    """The labels a real clock shows at each interval END of a local day (DST days included)."""
    d0 = pd.Timestamp(day).tz_localize(tz)
    d1 = (pd.Timestamp(day) + pd.Timedelta(days=1)).tz_localize(tz)
    ends = pd.date_range(d0.tz_convert("UTC"), d1.tz_convert("UTC"), freq=f"{step_min}min", inclusive="right")
    return [t.tz_convert(tz).strftime("%Y-%m-%dT%H:%M:%S") for t in ends], d0.tz_convert("UTC")


def test_day_of_five_minute_energy():
    t = labels("2025-03-28", 5)
    wh = [0.0] * 72 + [300.0] * 144 + [0.0] * 72
    wh[100] = None
    pv = channel(parse("sma", "measurements", body(t, wh, resolution="FiveMinutes"), tz=TZ), "pv_kwh")
    assert len(pv) == 288 and set(pv["interval_s"]) == {300}
    assert t[0] == "2025-03-28T00:05:00" and t[-1] == "2025-03-29T00:00:00"
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2025-03-27T23:00Z")  # 00:00 CET, labelled 00:05
    assert pv["interval_start"].iloc[-1] == pd.Timestamp("2025-03-28T22:55Z")  # 23:55 CET, labelled 24:00
    assert pv["value"].sum() == pytest.approx(143 * 0.3)
    assert pv.loc[100, "quality"] == "missing"


def test_absurd_first_reading_is_kept_and_flagged():
    t = labels("2025-03-28", 5, hours=range(7, 12))
    wh = [1024843.0] + [250.0] * 59
    pv = channel(parse("sma", "measurements", body(t, wh, resolution="FiveMinutes"), tz=TZ), "pv_kwh")
    assert pv.loc[0, "quality"] == "suspect" and pv.loc[0, "value"] == pytest.approx(1024.843)
    assert (pv.loc[1:, "quality"] == "measured").all()


def test_spring_forward_day_has_92_quarter_hours():
    t = labels("2025-03-30")  # naive wall labels: 02:15-03:00 do not exist (03:00 does: CEST)
    wh = [None if s.startswith("2025-03-30T02:") else 10.0 for s in t]
    pv = channel(parse("sma", "measurements", body(t, wh), tz=TZ), "pv_kwh")
    assert len(pv) == 92 and pv["value"].sum() == pytest.approx(0.92)
    # 02:00-02:45 name no instant and are dropped; 03:00 CEST ends the step that began 01:45 CET
    assert pv["interval_start"].iloc[7] == pd.Timestamp("2025-03-30T00:45Z")
    assert pv["interval_start"].iloc[8] == pd.Timestamp("2025-03-30T01:00Z")  # 03:00 CEST, labelled 03:15


def test_fall_back_day_listed_twice_has_100_quarter_hours():
    t, d0 = dst_day_labels("2025-10-26", TZ, 15)
    assert t.count("2025-10-26T02:15:00") == 2 and t[0] == "2025-10-26T00:15:00" and t[-1] == "2025-10-27T00:00:00"
    pv = channel(parse("sma", "measurements", body(t, [5.0] * len(t)), tz=TZ), "pv_kwh")
    assert len(pv) == 100 and pv["interval_start"].is_unique and (pv["quality"] == "measured").all()
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2025-10-25T22:00Z") == d0
    assert pv["interval_start"].iloc[-1] == pd.Timestamp("2025-10-26T22:45Z")


@pytest.mark.parametrize("day, n", [("2025-03-30", 276), ("2025-10-26", 300), ("2025-06-01", 288)])
def test_five_minute_dst_days_run_from_0005_to_2400_local(day, n):
    """A local day of 23 or 25 hours of 5-minute steps: labels 00:05 .. 24:00, rows 00:00 .. 23:55 local."""
    t, d0 = dst_day_labels(day, TZ, 5)
    assert len(t) == n and t[0] == f"{day}T00:05:00" and t[-1].endswith("T00:00:00") and t[-1][:10] > day
    wh = [float(k % 7) for k in range(n)]
    pv = channel(parse("sma", "measurements", body(t, wh, resolution="FiveMinutes"), tz=TZ), "pv_kwh")
    assert len(pv) == n and (pv["quality"] == "measured").all()
    assert pv["interval_start"].tolist() == list(pd.date_range(d0, periods=n, freq="5min"))
    local = pv["interval_start"].dt.tz_convert(TZ)
    assert local.iloc[0].strftime("%H:%M") == "00:00" and local.iloc[-1].strftime("%H:%M") == "23:55"
    assert (local.dt.date.astype(str) == day).all()  # the 24:00 label's step belongs to its own day
    assert pv["value"].tolist() == pytest.approx([v / 1000.0 for v in wh])


def test_fall_back_hour_listed_once_is_suspect():
    t = labels("2025-10-26")  # 02:15-03:00 once each: 02:15-02:45 cannot be placed (03:00 is CET)
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
