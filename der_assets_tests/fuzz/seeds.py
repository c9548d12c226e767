"""The payloads the fuzz suite mutates: real captures first, the fleet twin's answers where none exists.

Every seed parses to rows as it stands (test_fuzz_short holds that), so a mutation's verdict is
the mutation's. Snapshot endpoints are poll logs of several polls (normalize_day joins a day's
polls the same way): the real capture, then copies a quarter-hour later with counters advanced.

- real captures (der_assets_tests/fixtures, with SOURCE.md and licence beside them): Enphase IQ
  Gateway production.json and ivp/meters/readings (pyenphase), Fronius archive and power flow
  (akleber, pyfronius), sonnen status and powermeter (MarkusBiggus mocks), Green Button ESPI
  (Green Button Alliance, greenbutton_objects);
- the fleet twin over HTTP (seeds/, fuzz/capture_seeds.py): SolarEdge energyDetails and
  storageData, SMA measurements, Enphase v4 production_micro, consumption_meter and battery, a
  Fronius archive;
- written to the documented shape (reference/vendor-formats.md; these endpoints have neither):
  SolarEdge meters, powerDetails and equipmentData, Enphase v4 production_meter, the SunSpec
  snapshot the connector writes.
"""

from __future__ import annotations

import ast
import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import pandas as pd

from der_assets.telemetry.parsers.sunspec import FORMAT as SUNSPEC_FORMAT

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "fixtures"
TWIN = HERE / "seeds"
GW = FIXTURES / "enphase_envoy_local"
FRONIUS = FIXTURES / "fronius_solar_api_v1_local"
SONNEN = FIXTURES / "sonnen_local_api" / "MarkusBiggus_sonnen_api_v2"
ESPI = FIXTURES / "greenbutton_espi"
POLL_S = 900


@dataclass(frozen=True)
class Seed:
    name: str
    source: str
    endpoint: str
    payload: bytes
    received_at: pd.Timestamp
    tz: str | None = None
    site_id: str = "FUZZ-1"

    @property
    def is_xml(self) -> bool:
        return self.source == "greenbutton"


def _log(bodies) -> bytes:
    return "\n".join(json.dumps(b) for b in bodies).encode()


def _gateway_production(name: str) -> Seed:
    body = json.loads((GW / name / "production.json").read_bytes())
    polls = []
    for k in range(3):
        b = copy.deepcopy(body)
        for section in ("production", "consumption"):
            for blk in b.get(section, []):
                if blk.get("readingTime"):
                    blk["readingTime"] += POLL_S * k
                blk["whLifetime"] += 40.0 * k
        polls.append(b)
    last = max(blk.get("readingTime") or 0 for b in polls for s in ("production", "consumption") for blk in b.get(s, []))
    return Seed(f"enphase_production_json_{name}", "enphase", "production.json", _log(polls),
                pd.Timestamp(last, unit="s", tz="UTC") + pd.Timedelta(hours=1))


def _gateway_meters(name: str, config: str = "ivp_meters", readings: str = "ivp_meters_readings") -> Seed:
    cfg = json.loads((GW / name / config).read_bytes())
    base = json.loads((GW / name / readings).read_bytes())
    polls = [cfg]
    for k in range(3):
        b = copy.deepcopy(base)
        for m in b:
            m["timestamp"] += POLL_S * k
            m["actEnergyDlvd"] += 25.0 * k
            m["actEnergyRcvd"] += 5.0 * k
        polls.append(b)
    last = max(m["timestamp"] for m in polls[-1])
    return Seed(f"enphase_ivp_{name}", "enphase", "ivp_meters_readings", _log(polls),
                pd.Timestamp(last, unit="s", tz="UTC") + pd.Timedelta(hours=1))


def _power_flow(path: Path, name: str) -> Seed:
    body = json.loads(path.read_bytes())
    stamp = pd.Timestamp(body["Head"]["Timestamp"])
    polls = []
    for k in range(4):
        b = copy.deepcopy(body)
        b["Head"]["Timestamp"] = (stamp + pd.Timedelta(seconds=POLL_S * k)).isoformat()
        if b["Body"]["Data"]["Site"].get("E_Total") is not None:
            b["Body"]["Data"]["Site"]["E_Total"] += 150.0 * k
        polls.append(b)
    return Seed(f"fronius_power_flow_{name}", "fronius", "GetPowerFlowRealtimeData", _log(polls),
                stamp.tz_convert("UTC") + pd.Timedelta(hours=2))


def _mock(filename: str, func: str):
    """The dict a MarkusBiggus mock returns, read with ast (the file is never executed)."""
    for node in ast.parse((SONNEN / filename).read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == func:
            return ast.literal_eval(next(n for n in node.body if isinstance(n, ast.Return)).value)
    raise KeyError(func)


def _sonnen_status(filename: str, func: str) -> Seed:
    body = _mock(filename, func)
    stamp = pd.Timestamp(body["Timestamp"])
    polls = [dict(body, Timestamp=(stamp + pd.Timedelta(seconds=300 * k)).strftime("%Y-%m-%d %H:%M:%S"),
                  Production_W=body["Production_W"] + 7 * k) for k in range(6)]
    received = (stamp + pd.Timedelta(hours=1)).tz_localize("Europe/Athens").tz_convert("UTC")
    return Seed(f"sonnen_status_{func}", "sonnen", "status", _log(polls), received, tz="Europe/Athens")


def _sonnen_powermeter() -> Seed:
    body = _mock("mock_sonnenbatterie_v2_charging.py", "__mock_powermeter")
    t0 = pd.Timestamp("2023-11-20T10:00:00+00:00")
    polls = []
    for k in range(4):
        b = copy.deepcopy(body)
        for m in b:
            m["kwh_imported"] += 0.15 * k
        polls.append({"polled_at": (t0 + pd.Timedelta(seconds=POLL_S * k)).isoformat(), "body": b})
    return Seed("sonnen_powermeter_charging", "sonnen", "powermeter", _log(polls), t0 + pd.Timedelta(hours=2))


def _sunspec(source: str) -> Seed:
    t0 = pd.Timestamp("2026-07-15T12:00:00+00:00")
    polls = [{"format": SUNSPEC_FORMAT, "polled_at": (t0 + pd.Timedelta(seconds=POLL_S * k)).isoformat(),
              "unit_id": 1, "base_address": 40000,
              "models": [{"id": 1, "address": 40002, "length": 66, "points": {"Mn": "Generac", "Md": "PWRcell"}},
                         {"id": 103, "address": 40070, "length": 50,
                          "points": {"W": 4810.0 + 10 * k, "WH": 45012345.0 + 1200.0 * k, "WH_SF": 0, "St": 4},
                          "registers": [0] * 8},
                         {"id": 802, "address": 40122, "length": 62, "points": {"SoC": 55.0 + k, "W": -1200.0}},
                         {"id": 64110, "address": 40186, "length": 10, "points": None}]}
             for k in range(5)]
    return Seed(f"{source}_snapshot", source, "snapshot", _log(polls), t0 + pd.Timedelta(hours=2))


def _solaredge_documented() -> list[Seed]:
    day = pd.date_range("2024-06-12 10:00", periods=24, freq="15min")
    labels = [t.strftime("%Y-%m-%d %H:%M:%S") for t in day]
    received = pd.Timestamp("2024-06-13T00:00Z")
    meters = {"meterEnergyDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "Wh", "meters": [
        {"meterSerialNumber": "606A1234", "connectedSolaredgeDeviceSN": "7E0000-01", "model": "SE-MTR",
         "meterType": mtype, "values": [{"date": d, "value": start + step * k} for k, d in enumerate(labels)]}
        for mtype, start, step in (("Production", 3.7539808e7, 410.0), ("Consumption", 2.1e7, 300.0),
                                   ("Purchased", 1.0e6, 40.0), ("FeedIn", 2.0e6, 150.0))]}}
    power = {"powerDetails": {"timeUnit": "QUARTER_OF_AN_HOUR", "unit": "W", "meters": [
        {"type": mtype, "values": [{"date": d, "value": base + 10.0 * k} for k, d in enumerate(labels)]}
        for mtype, base in (("Production", 1720.0), ("Consumption", 900.0), ("FeedIn", 820.0), ("Purchased", 0.0))]}}
    stamps = pd.date_range("2024-06-12 10:00", periods=36, freq="5min")
    equipment = {"data": {"count": len(stamps), "telemetries": [
        {"date": t.strftime("%Y-%m-%d %H:%M:%S"), "totalActivePower": 1500.0 + k, "totalEnergy": 9.8e6 + 125.0 * k}
        for k, t in enumerate(stamps)]}}
    ny = "America/New_York"
    return [Seed("solaredge_meters_documented", "solaredge", "meters", json.dumps(meters).encode(), received, ny),
            Seed("solaredge_power_details_documented", "solaredge", "powerDetails", json.dumps(power).encode(),
                 received, ny),
            Seed("solaredge_equipment_documented", "solaredge", "equipmentData", json.dumps(equipment).encode(),
                 received, ny)]


def _twin() -> list[Seed]:
    out = []
    for meta_path in sorted(TWIN.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        payload = meta_path.with_suffix(".bin").read_bytes()
        received = pd.Timestamp(meta["received_at"])
        out.append(Seed(f"twin_{meta_path.stem}", meta["source"], meta["endpoint"], payload, received, meta["tz"],
                        meta["site_id"]))
        if meta["endpoint"] == "consumption_meter":  # production_meter is the same body with wh_del
            out.append(Seed("twin_enphase__production_meter", "enphase", "production_meter",
                            payload.replace(b'"enwh"', b'"wh_del"'), received, meta["tz"], meta["site_id"]))
    return out


@lru_cache(maxsize=1)
def all_seeds() -> tuple[Seed, ...]:
    seeds = [
        _gateway_production("7.6.185_with_cts_and_battery_3t"),
        _gateway_production("8.3.5433_tot_is_net_cons"),
        _gateway_production("docs_json_data"),
        _gateway_meters("7.6.185_with_cts_and_battery_3t"),
        _gateway_meters("docs_json_data", "ivp_meters.json", "ivp_meters_readings.json"),
        Seed("fronius_archive_akleber_2017_08_30", "fronius", "GetArchiveData",
             (FRONIUS / "akleber_fronius-json-tools" / "archivedata_day_2017-08-30.json").read_bytes(),
             pd.Timestamp("2017-08-31T01:00Z")),
        _power_flow(FRONIUS / "akleber_fronius-json-tools" / "json__1.23.2-1__GetPowerFlowRealtimeData.json",
                    "akleber"),
        _power_flow(FRONIUS / "pyfronius" / "v1__solar_api__v1__GetPowerFlowRealtimeData.fcgi", "pyfronius"),
        _sonnen_status("mock_sonnenbatterie_v2_charging.py", "__mock_status_charging"),
        _sonnen_status("mock_sonnenbatterie_v2_discharging.py", "__mock_status_discharging"),
        _sonnen_powermeter(),
        Seed("greenbutton_electric_containerized", "greenbutton", "espi",
             (ESPI / "vladistan_greenbutton_objects" / "electric_containerized.xml").read_bytes(),
             pd.Timestamp("2011-12-01T00:00Z")),
        Seed("greenbutton_hourly_nine_days", "greenbutton", "espi",
             (ESPI / "vladistan_greenbutton_objects" / "TestGBDataHourlyNineDaysBinnedDaily.xml").read_bytes(),
             pd.Timestamp("2014-01-11T00:00Z")),
        _sunspec("sunspec"),
        _sunspec("generac"),
        *_solaredge_documented(),
        *_twin(),
    ]
    return tuple(seeds)


def sources() -> list[str]:
    return sorted({s.source for s in all_seeds()})
