"""SolarEdge (DOC-BASED: payloads written to the shape in reference/vendor-formats.md §1).

Covers the local-time DST cases: the fall-back day where SolarEdge sums the repeated hour,
the same day listed twice, and the spring-forward day with empty slots.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from der_assets.telemetry import ParseError

from ._helpers import channel, parse

NY = "America/New_York"


def day_labels(day: str, hours=range(24), skip=()):
    return [f"{day} {h:02d}:{m:02d}:00" for h in hours for m in (0, 15, 30, 45) if (h, m) not in skip]


def energy_details(meters: dict, unit="Wh", time_unit="QUARTER_OF_AN_HOUR") -> bytes:
    return json.dumps(
        {"energyDetails": {"timeUnit": time_unit, "unit": unit,
                           "meters": [{"type": k, "values": v} for k, v in meters.items()]}}
    ).encode()


def values(labels, fn):
    return [{"date": d, "value": fn(i)} for i, d in enumerate(labels)]


def test_ordinary_day_totals_signs_and_missing():
    labels = day_labels("2024-06-12")
    prod = values(labels, lambda i: 100.0 if 40 <= i < 60 else 0.0)  # 20 slots x 100 Wh
    purchased = values(labels, lambda i: 50.0)
    feedin = values(labels, lambda i: 80.0 if 40 <= i < 60 else 0.0)
    feedin[10] = {"date": labels[10]}  # no "value" key: missing, not zero
    prod[5]["value"] = None
    df = parse("solaredge", "energyDetails", energy_details({"Production": prod, "Purchased": purchased, "FeedIn": feedin}), tz=NY)
    pv, grid = channel(df, "pv_kwh"), channel(df, "grid_kwh")
    assert len(pv) == len(grid) == 96
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2024-06-12T04:00Z")  # 00:00 EDT, interval-beginning
    assert pv["interval_start"].iloc[-1] == pd.Timestamp("2024-06-13T03:45Z")
    assert pv["value"].sum() == pytest.approx(2.0)
    assert pv.loc[5, "quality"] == "missing" and np.isnan(pv.loc[5, "value"])
    # grid = Purchased - FeedIn: +0.05 at night, 0.05 - 0.08 = -0.03 (export) midday
    assert grid.loc[0, "value"] == pytest.approx(0.05)
    assert grid.loc[45, "value"] == pytest.approx(-0.03)
    assert grid.loc[10, "quality"] == "missing"
    assert grid["value"].sum() == pytest.approx(95 * 0.05 - 20 * 0.08)


def test_fall_back_summed_hour_is_split_over_both_passes():
    # 2024-11-03 America/New_York: 01:00-01:59 happens twice; SolarEdge lists it once, summed
    labels = day_labels("2024-11-03")
    df = parse("solaredge", "energyDetails", energy_details({"Production": values(labels, lambda i: 10.0)}), tz=NY)
    pv = channel(df, "pv_kwh")
    assert len(pv) == 100  # a 25-hour day
    assert pv["value"].sum() == pytest.approx(96 * 0.010)  # energy conserved
    split = pv[pv["quality"] == "estimated"]
    assert len(split) == 8
    assert split["value"].tolist() == pytest.approx([0.005] * 8)
    assert split["interval_start"].min() == pd.Timestamp("2024-11-03T05:00Z")  # 01:00 EDT
    assert split["interval_start"].max() == pd.Timestamp("2024-11-03T06:45Z")  # 01:45 EST
    assert pv["interval_start"].is_unique
    assert pv["interval_start"].iloc[-1] == pd.Timestamp("2024-11-04T04:45Z")


def test_fall_back_hour_listed_twice_is_measured_by_order():
    labels = day_labels("2024-11-03", hours=range(0, 4))
    labels = labels[:8] + labels[4:8] + labels[8:]  # 01:00..01:45 appear twice, in order
    vals = values(labels, lambda i: float(i))
    df = parse("solaredge", "energyDetails", energy_details({"Consumption": vals}), tz=NY)
    load = channel(df, "load_kwh")
    assert len(load) == 20 and (load["quality"] == "measured").all()
    # second 01:00 (index 8 in the payload, value 8 Wh) is 01:00 EST = 06:00Z
    assert load.set_index("interval_start").loc[pd.Timestamp("2024-11-03T06:00Z"), "value"] == pytest.approx(0.008)


def test_spring_forward_empty_slots_are_dropped_not_zeroed():
    labels = day_labels("2024-03-10")
    vals = values(labels, lambda i: 20.0)
    for v in vals:
        if v["date"].startswith("2024-03-10 02:"):
            v["value"] = None
    df = parse("solaredge", "energyDetails", energy_details({"Production": vals}), tz=NY)
    pv = channel(df, "pv_kwh")
    assert len(pv) == 92  # a 23-hour day
    assert (pv["quality"] == "measured").all()
    assert pv["interval_start"].iloc[8] == pd.Timestamp("2024-03-10T07:00Z")  # 03:00 EDT follows 01:45 EST


def test_spring_forward_nonzero_value_at_impossible_time_is_refused():
    labels = day_labels("2024-03-10", hours=range(0, 4))
    with pytest.raises(ParseError, match="nonexistent local time"):
        parse("solaredge", "energyDetails", energy_details({"Production": values(labels, lambda i: 5.0)}), tz=NY)


@pytest.mark.parametrize(
    "payload, match",
    [
        (energy_details({"Production": []}, unit="kW"), "not an energy unit"),
        (energy_details({"Production": []}, time_unit="DAY"), "timeUnit"),
        (energy_details({"Purchased": [{"date": "2024-06-12 00:00:00", "value": 1}]}), "both Purchased and FeedIn"),
        (energy_details({"Batteryish": []}), "unknown meter type"),
        (b'{"energyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh", "meters": [', "truncated"),
        (b'{"energy": {}}', "missing required field"),
    ],
)
def test_bad_payloads_raise_parse_error(payload, match):
    with pytest.raises(ParseError, match=match) as err:
        parse("solaredge", "energyDetails", payload, tz=NY)
    assert "solaredge/energyDetails site=SITE-1" in str(err.value)


def test_local_time_without_tz_is_refused():
    with pytest.raises(ParseError, match="needs the site time zone"):
        parse("solaredge", "energyDetails", energy_details({"Production": values(day_labels("2024-06-12")[:2], float)}))


def test_power_details_integrates_average_watts_as_estimated():
    labels = day_labels("2024-06-12", hours=[16])
    body = {"powerDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "W",
                             "meters": [{"type": "Production", "values": values(labels, lambda i: [1720.0, 1361.0, 400.0, 0.0][i])}]}}
    pv = channel(parse("solaredge", "powerDetails", json.dumps(body).encode(), tz=NY), "pv_kwh")
    assert pv["value"].tolist() == pytest.approx([0.430, 0.34025, 0.100, 0.0])  # W x 0.25 h
    assert (pv["quality"] == "estimated").all()
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2024-06-12T20:00Z")


def meters_payload(readings: dict) -> bytes:
    meters = [
        {"meterSerialNumber": "606A1234", "connectedSolaredgeDeviceSN": "7E0000-01", "model": "SE-MTR",
         "meterType": mtype, "values": [{"date": d, "value": v} for d, v in vals]}
        for mtype, vals in readings.items()
    ]
    return json.dumps({"meterEnergyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh", "meters": meters}}).encode()


def test_meters_lifetime_registers_become_interval_energy():
    stamps = ["2024-06-12 16:00:00", "2024-06-12 16:15:00", "2024-06-12 16:30:00", "2024-06-12 16:45:00"]
    df = parse("solaredge", "meters", meters_payload({
        "Production": list(zip(stamps, [3.7539808e7, 3.7540308e7, 3.7540708e7, 3.7540908e7])),
        "Purchased": list(zip(stamps, [1.0e6, 1.0e6, 1.0001e6, 1.0003e6])),
        "FeedIn": list(zip(stamps, [2.0e6, 2.0002e6, 2.0003e6, 2.0003e6])),
    }), tz=NY)
    pv, grid = channel(df, "pv_kwh"), channel(df, "grid_kwh")
    assert pv["value"].tolist() == pytest.approx([0.5, 0.4, 0.2])
    assert grid["value"].tolist() == pytest.approx([-0.2, 0.0, 0.2])
    assert pv["interval_start"].iloc[0] == pd.Timestamp("2024-06-12T20:00Z")
    assert set(df["device_id"]) == {"606A1234"}


def test_meters_replacement_reset_is_flagged_and_negative_register_refused():
    stamps = ["2024-06-12 16:00:00", "2024-06-12 16:15:00", "2024-06-12 16:30:00", "2024-06-12 16:45:00"]
    pv = channel(parse("solaredge", "meters", meters_payload(
        {"Production": list(zip(stamps, [5000.0, 5400.0, 100.0, 300.0]))}), tz=NY), "pv_kwh")
    assert pv["quality"].tolist() == ["measured", "missing", "measured"]
    assert pv["value"].iloc[[0, 2]].tolist() == pytest.approx([0.4, 0.2])
    with pytest.raises(ParseError, match="negative lifetime counter"):
        parse("solaredge", "meters", meters_payload({"Production": list(zip(stamps, [-1.0, 0, 1, 2]))}), tz=NY)


def test_storage_data_battery_sign_and_soc():
    tel = []
    # 5-min telemetry at irregular seconds; charges 100 Wh per 5 min, then discharges 50 Wh
    charged, discharged = 10_000.0, 20_000.0
    for i in range(7):
        tel.append({"timeStamp": f"2024-06-12 12:{5 * i:02d}:00", "power": 0.0, "batteryState": 3,
                    "lifeTimeEnergyCharged": charged, "lifeTimeEnergyDischarged": discharged,
                    "batteryPercentageState": 50.0 + i, "fullPackEnergyAvailable": 9800, "internalTemp": 30,
                    "ACGridCharging": 0})
        if i < 3:
            charged += 100.0
        else:
            discharged += 50.0
    body = {"storageData": {"batteryCount": 1, "batteries": [
        {"nameplate": 10000, "serialNumber": "BAT-1", "modelNumber": "LG", "telemetryCount": 7, "telemetries": tel}]}}
    df = parse("solaredge", "storageData", json.dumps(body).encode(), tz=NY)
    bat, soc = channel(df, "battery_kwh"), channel(df, "soc_pct")
    assert bat["value"].tolist() == pytest.approx([-0.1, -0.1, -0.1, 0.05, 0.05, 0.05])
    assert bat["interval_start"].iloc[0] == pd.Timestamp("2024-06-12T16:00Z")
    # a snapshot exactly on a boundary is the SoC at the end of the interval before it
    assert soc.set_index("interval_start").loc[pd.Timestamp("2024-06-12T16:00Z"), "value"] == 51.0
    assert set(df["device_id"]) == {"BAT-1"}


def test_equipment_data_total_energy_is_pv():
    tel = [{"date": f"2024-06-12 16:{m:02d}:00", "totalActivePower": 2000.0, "totalEnergy": 1.0e6 + 150.0 * k}
           for k, m in enumerate(range(0, 30, 5))]
    pv = channel(parse("solaredge", "equipmentData", json.dumps({"data": {"count": 6, "telemetries": tel}}).encode(), tz=NY), "pv_kwh")
    assert len(pv) == 5 and pv["value"].tolist() == pytest.approx([0.15] * 5)
    assert (pv["quality"] == "measured").all()
