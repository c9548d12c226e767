"""The demo fleet: PJM subscribers with rooftop PV and a 20 kWh battery, mixed hardware.

It follows the scenario the platform exists for: 200 subscriber accounts in PJM across two
utility territories (PECO around Philadelphia, ComEd around Chicago, so both Eastern and
Central time), each with rooftop PV and a 20 kWh battery. PV inverter models and AC ratings
come from the CEC inverter list that pvlib ships; battery configurations are the vendors'
stacks sized to 20 kWh. Everything is drawn from one seeded generator, vectorized, so the same
seed gives the same file; 10,000 sites take about 0.3 s to draw (README: the whole command).

Territory values (EDC names, zones, ZIP prefixes) are real; account numbers, meter ids,
serials and names are synthetic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from der_assets.registry.columns import COLUMN_NAMES

BATTERY_KWH = 20.0
# The demo fleet is one aggregation (one registration) across both zones; instructions name it.
DEMO_RESOURCE_ID = "AGG-1"


@dataclass(frozen=True)
class Territory:
    edc: str
    zone: str
    pnode: str
    timezone: str
    latitude: float
    longitude: float
    zip_prefixes: tuple[str, ...]
    meter_prefix: str
    streets: tuple[str, ...]


TERRITORIES = (
    Territory("PECO", "PECO", "PECO", "America/New_York", 39.95, -75.17,
              ("190", "191", "194"), "PE", ("Walnut", "Chestnut", "Spruce", "Pine", "Locust", "Lancaster")),
    Territory("ComEd", "COMED", "COMED", "America/Chicago", 41.88, -87.63,
              ("600", "601", "606"), "CE", ("Halsted", "Ashland", "Damen", "Western", "Cicero", "Harlem")),
)


@dataclass(frozen=True)
class Vendor:
    """One hardware family: how its PV inverter is picked and which battery stack it pairs with."""

    name: str
    share: float
    pv_make: str
    cec_prefix: str  # CEC inverter names to choose the PV inverter from
    micro: bool  # microinverters: one device row stands for the array of micros
    battery_make: str
    battery_model: str
    battery_kw: float
    pv_source: str
    battery_source: str


VENDORS = (
    Vendor("solaredge", 0.25, "SolarEdge", "SolarEdge_Technologies_Ltd___SE", False,
           "SolarEdge", "Home Battery 400V (2 x 10 kWh)", 10.0, "solaredge", "solaredge"),
    Vendor("enphase", 0.25, "Enphase", "Enphase_Energy_Inc___IQ7PLUS_72", True,
           "Enphase", "IQ Battery 5P (4 x 5 kWh)", 15.36, "enphase", "enphase"),
    Vendor("sma", 0.125, "SMA", "SMA_America__SB", False,
           "SMA", "Sunny Boy Storage 7.7-US + 20 kWh HV stack", 7.68, "sma", "sma"),
    Vendor("generac", 0.125, "Generac", "Pika_Energy__X76", False,
           "Generac", "PWRcell battery cabinet (20 kWh)", 9.0, "generac", "generac"),
    Vendor("sonnen", 0.125, "Fronius", "Fronius_International_GmbH__Fronius_Primo", False,
           "sonnen", "ecoLinx 20", 8.0, "sonnen", "sonnen"),
    Vendor("fronius", 0.075, "Fronius", "Fronius_International_GmbH__Fronius_Primo", False,
           "BYD", "Battery-Box Premium HVS (20 kWh)", 7.6, "fronius", "sunspec"),
    Vendor("abb", 0.05, "ABB", "ABB__PVI_", False,
           "ABB", "REACT2 (20 kWh)", 5.0, "sunspec", "sunspec"),
)

FIRST_NAMES = ("Alex", "Jordan", "Maria", "Wei", "Priya", "Sam", "Fatima", "Luis", "Grace", "Omar", "Hannah", "Kofi")
LAST_NAMES = ("Nguyen", "Smith", "Garcia", "Kowalski", "Okafor", "Patel", "Rossi", "Cohen", "Johnson", "Kim", "Murphy", "Silva")


CEC_INVERTER_FILE = "sam-library-cec-inverters-2019-03-05.csv"  # what pvlib's retrieve_sam("cecinverter") reads
_SAM_NAME_CHARS = str.maketrans(' -.()[]:+/",', "____________")  # pvlib's _normalize_sam_product_names


@lru_cache(maxsize=1)
def _cec_inverters() -> pd.DataFrame:
    """The 240 V entries of pvlib's CEC inverter list: name and AC rating.

    The CSV is read straight from pvlib's data folder: importing pvlib (and with it scipy) to call
    retrieve_sam took 1.2 s of a 10,000-site fleet's 2 s. Names are normalized as retrieve_sam
    does; a test holds the two equal. Without the file (another pvlib layout) retrieve_sam is used.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("pvlib")
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / "data" / CEC_INVERTER_FILE if folders else None
    if path is None or not path.is_file():
        import pvlib

        table = pvlib.pvsystem.retrieve_sam("cecinverter").T
        table = table[pd.to_numeric(table["Vac"], errors="coerce") == 240.0]
        return pd.DataFrame({"name": table.index, "paco_w": pd.to_numeric(table["Paco"]).to_numpy()})
    raw = pd.read_csv(path, skiprows=[1, 2], usecols=["Name", "Vac", "Paco"])
    raw = raw[pd.to_numeric(raw["Vac"], errors="coerce") == 240.0]
    names = raw["Name"].astype(str).str.translate(_SAM_NAME_CHARS).to_numpy(dtype=object)
    return pd.DataFrame({"name": names, "paco_w": pd.to_numeric(raw["Paco"]).to_numpy()})


def _model_label(cec_name: str) -> str:
    """'SolarEdge_Technologies_Ltd___SE7600H_US__240V_' -> 'SE7600H-US'."""
    body = cec_name.split("___", 1)[-1] if "___" in cec_name else cec_name.split("__", 1)[-1]
    body = body.replace("__240V_", "").replace("_240V_", "")
    return body.strip("_").replace("_", "-")


def _string_inverters(prefix: str) -> pd.DataFrame:
    cec = _cec_inverters()
    choices = cec[cec["name"].str.startswith(prefix) & cec["paco_w"].between(3000, 11500)]
    return choices.sort_values("paco_w").reset_index(drop=True)


def demo_fleet(n_sites: int = 200, seed: int = 7) -> pd.DataFrame:
    """The demo registry, one row per device, in the import file's columns."""
    if n_sites < 1:
        raise ValueError("n_sites must be at least 1")
    rng = np.random.default_rng(seed)
    idx = np.arange(1, n_sites + 1)
    width = max(5, len(str(n_sites)))
    site_id = np.char.add("S-", np.char.zfill(idx.astype(str), width))
    subscriber_id = np.char.add("SUB-", np.char.zfill(idx.astype(str), width))

    territory = rng.integers(0, len(TERRITORIES), n_sites)
    vendor = rng.choice(len(VENDORS), n_sites, p=[v.share for v in VENDORS])
    ter = [TERRITORIES[t] for t in territory]
    ven = [VENDORS[v] for v in vendor]

    latitude = np.round(np.array([t.latitude for t in ter]) + rng.normal(0, 0.08, n_sites), 5)
    longitude = np.round(np.array([t.longitude for t in ter]) + rng.normal(0, 0.10, n_sites), 5)
    zip_code = [t.zip_prefixes[i % len(t.zip_prefixes)] + f"{z:02d}" for i, (t, z) in
                enumerate(zip(ter, rng.integers(1, 99, n_sites), strict=True))]
    street_no = rng.integers(100, 9999, n_sites)
    street = [t.streets[s % len(t.streets)] for t, s in zip(ter, rng.integers(0, 64, n_sites), strict=True)]
    address = [f"{n} {s} St" for n, s in zip(street_no, street, strict=True)]

    interconnection = rng.choice(["nem", "non_nem", "shared_facility"], n_sites, p=[0.7, 0.2, 0.1])
    export_allowed = interconnection != "non_nem"
    reserve = rng.choice([20.0, 30.0, 50.0], n_sites, p=[0.5, 0.35, 0.15])
    max_events = rng.choice([4, 6, 10], n_sites, p=[0.3, 0.5, 0.2])
    max_hours = rng.choice([2.0, 3.0, 4.0], n_sites, p=[0.3, 0.4, 0.3])
    opt_out = rng.random(n_sites) < 0.05
    status = np.where(rng.random(n_sites) < 0.95, "active", "pending")
    plc_kw = np.round(rng.gamma(6.0, 0.8, n_sites) + 1.0, 2)
    # Identifiers are drawn without replacement: no two sites may share an account or meter.
    account = 10**9 + rng.choice(9 * 10**9, n_sites, replace=False)
    meter_no = 10**7 + rng.choice(9 * 10**7, n_sites, replace=False)
    first = rng.integers(0, len(FIRST_NAMES), n_sites)
    last = rng.integers(0, len(LAST_NAMES), n_sites)

    pv_dc_kw = np.round(np.clip(rng.lognormal(np.log(8.0), 0.25, n_sites), 4.0, 14.0), 2)
    tilt = np.round(rng.uniform(15, 40, n_sites), 1)
    azimuth = np.round(np.clip(rng.normal(180, 35, n_sites), 90, 270), 1)
    commissioned = np.datetime64("2019-01-01") + rng.integers(0, 6 * 365, n_sites).astype("timedelta64[D]")
    serial_no = (10**7 + rng.choice(9 * 10**7, 2 * n_sites, replace=False)).reshape(n_sites, 2)
    vendor_ref = 10**6 + rng.choice(9 * 10**6, n_sites, replace=False)

    pv_model = np.empty(n_sites, dtype=object)
    pv_rated_kw = np.zeros(n_sites)
    for code, v in enumerate(VENDORS):
        members = np.flatnonzero(vendor == code)
        if not len(members):
            continue
        if v.micro:
            micro = _cec_inverters()
            row = micro[micro["name"].str.startswith(v.cec_prefix)].iloc[0]
            count = np.ceil(pv_dc_kw[members] / 0.35).astype(int)  # 350 W modules, one micro each
            label = _model_label(row["name"])
            pv_model[members] = [f"{label} (x{c})" for c in count]
            pv_rated_kw[members] = np.round(count * row["paco_w"] / 1000.0, 3)
        else:
            choices = _string_inverters(v.cec_prefix)
            # the smallest inverter that keeps the DC/AC ratio at or below 1.3
            k = np.minimum(np.searchsorted(choices["paco_w"].to_numpy(), pv_dc_kw[members] * 1000 / 1.3),
                           len(choices) - 1)
            labels = np.array([_model_label(n) for n in choices["name"]], dtype=object)
            pv_model[members] = labels[k]
            pv_rated_kw[members] = np.round(choices["paco_w"].to_numpy()[k] / 1000.0, 3)
            # where even the largest model is too small, the array is sized down to fit it
            pv_dc_kw[members] = np.minimum(pv_dc_kw[members], np.floor(pv_rated_kw[members] * 130) / 100)

    site = pd.DataFrame({
        "subscriber_id": subscriber_id,
        "subscriber_name": [f"{FIRST_NAMES[a]} {LAST_NAMES[b]}" for a, b in zip(first, last, strict=True)],
        "site_id": site_id,
        "address": address,
        "postal_code": zip_code,
        "latitude": latitude,
        "longitude": longitude,
        "timezone": [t.timezone for t in ter],
        "iso": "PJM",
        "zone": [t.zone for t in ter],
        "pnode": [t.pnode for t in ter],
        "edc": [t.edc for t in ter],
        "edc_account": account.astype(str),
        "plc_kw": plc_kw,
        "resource_id": DEMO_RESOURCE_ID,
        "interconnection_type": interconnection,
        "export_allowed": export_allowed,
        "reserve_floor_pct": reserve,
        "max_events_per_month": max_events,
        "max_event_hours": max_hours,
        "opt_out": opt_out,
        "site_status": status,
        "meter_id": [f"{t.meter_prefix}{m}" for t, m in zip(ter, meter_no, strict=True)],
        "meter_interval_min": 15,
    })
    common = {"telemetry_source": None, "device_status": "active",
              "commissioned_on": pd.to_datetime(commissioned).date}
    pv = site.assign(
        device_id=np.char.add(site_id, "-PV"), device_type="pv_inverter",
        make=[v.pv_make for v in ven], model=pv_model,
        serial=[f"{v.pv_make[:2].upper()}{s}" for v, s in zip(ven, serial_no[:, 0], strict=True)],
        rated_kw=pv_rated_kw, capacity_kwh=np.nan, pv_dc_kw=pv_dc_kw, tilt_deg=tilt, azimuth_deg=azimuth,
        **{**common, "telemetry_source": [v.pv_source for v in ven]},
        vendor_ref=vendor_ref.astype(str),
    )
    battery = site.assign(
        device_id=np.char.add(site_id, "-BAT"), device_type="battery",
        make=[v.battery_make for v in ven], model=[v.battery_model for v in ven],
        serial=[f"{v.battery_make[:2].upper()}B{s}" for v, s in zip(ven, serial_no[:, 1], strict=True)],
        rated_kw=[v.battery_kw for v in ven], capacity_kwh=BATTERY_KWH,
        pv_dc_kw=np.nan, tilt_deg=np.nan, azimuth_deg=np.nan,
        **{**common, "telemetry_source": [v.battery_source for v in ven]},
        vendor_ref=vendor_ref.astype(str),
    )
    fleet = pd.concat([pv, battery], ignore_index=True)
    fleet = fleet.sort_values(["site_id", "device_id"]).reset_index(drop=True)
    return fleet.reindex(columns=list(COLUMN_NAMES))


def commissioned_range() -> tuple[dt.date, dt.date]:
    """The span commissioning dates are drawn from (for tests and docs)."""
    return dt.date(2019, 1, 1), dt.date(2019, 1, 1) + dt.timedelta(days=6 * 365 - 1)
