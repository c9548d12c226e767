"""ISO-enrollment completeness rules over the current registry.

Each rule takes the registry (one row per device, import-file columns) and returns its
problems, one per entity. `der registry validate` prints them and the Dagster asset checks
on `asset_registry` report them, so the two can never disagree.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

# A home battery's continuous power over its usable energy (C-rate) sits between about 0.25
# and 1 per hour (e.g. 5 kW / 13.5 kWh = 0.37; 3.84 kW / 5 kWh = 0.77). Outside 0.1-2 per hour
# a row almost certainly has kW and kWh swapped or a unit error (W for kW).
MIN_C_RATE_PER_H = 0.1
MAX_C_RATE_PER_H = 2.0

# Time zones a site in each ISO's footprint can have. PJM spans Eastern and Central time
# (ComEd is in Chicago); NYISO and ISO-NE are Eastern only.
ISO_TIME_ZONES = {
    "PJM": {"America/New_York", "America/Chicago", "America/Detroit", "America/Indiana/Indianapolis",
            "America/Kentucky/Louisville", "US/Eastern", "US/Central"},
    "NYISO": {"America/New_York", "US/Eastern"},
    "ISONE": {"America/New_York", "US/Eastern"},
}

PROBLEM_COLUMNS = ["rule", "entity", "key", "column", "problem"]


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: Callable[[pd.DataFrame], list[dict[str, str]]]


def _sites(registry: pd.DataFrame) -> pd.DataFrame:
    return registry.drop_duplicates("site_id").set_index("site_id", drop=False)


def _active_sites(registry: pd.DataFrame) -> pd.DataFrame:
    sites = _sites(registry)
    return sites[sites["site_status"] != "retired"]


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | (series.astype("string").str.strip() == "")


def meter_point_present(registry: pd.DataFrame) -> list[dict[str, str]]:
    sites = _active_sites(registry)
    return [
        {"entity": "site", "key": s, "column": "meter_id", "problem": "no utility meter point (MPID)"}
        for s in sites.index[_blank(sites["meter_id"])]
    ]


def edc_account_present(registry: pd.DataFrame) -> list[dict[str, str]]:
    sites = _active_sites(registry)
    out = [
        {"entity": "site", "key": s, "column": "edc", "problem": "no utility territory (EDC)"}
        for s in sites.index[_blank(sites["edc"])]
    ]
    out += [
        {"entity": "site", "key": s, "column": "edc_account", "problem": "no EDC account number"}
        for s in sites.index[_blank(sites["edc_account"])]
    ]
    return out


def unique_device_serials(registry: pd.DataFrame) -> list[dict[str, str]]:
    devices = registry[~_blank(registry["serial"]) & (registry["device_status"] != "retired")]
    norm = devices["make"].fillna("").str.strip().str.lower() + "|" + devices["serial"].str.strip().str.upper()
    devices = devices.assign(_norm=norm)
    dup = devices[devices["_norm"].duplicated(keep=False)]
    out = []
    for _, group in dup.groupby("_norm", sort=True):
        ids = sorted(group["device_id"])
        for device_id in ids:
            others = ", ".join(i for i in ids if i != device_id)
            out.append({"entity": "device", "key": device_id, "column": "serial",
                        "problem": f"serial {group['serial'].iloc[0]!r} is also on {others}"})
    return out


def plausible_battery_ratings(registry: pd.DataFrame) -> list[dict[str, str]]:
    batteries = registry[(registry["device_type"] == "battery") & (registry["device_status"] != "retired")]
    out = []
    for row in batteries.itertuples(index=False):
        kw, kwh = row.rated_kw, row.capacity_kwh
        if pd.isna(kwh) or kwh <= 0:
            out.append({"entity": "device", "key": row.device_id, "column": "capacity_kwh",
                        "problem": "battery has no usable energy (capacity_kwh)"})
            continue
        if pd.isna(kw) or kw <= 0:
            out.append({"entity": "device", "key": row.device_id, "column": "rated_kw",
                        "problem": "battery has no power rating (rated_kw)"})
            continue
        c_rate = kw / kwh
        if not MIN_C_RATE_PER_H <= c_rate <= MAX_C_RATE_PER_H:
            out.append({"entity": "device", "key": row.device_id, "column": "rated_kw",
                        "problem": f"{kw:g} kW over {kwh:g} kWh is {c_rate:.2f} C, outside "
                                   f"{MIN_C_RATE_PER_H}-{MAX_C_RATE_PER_H} C; check units"})
    return out


def valid_time_zones(registry: pd.DataFrame) -> list[dict[str, str]]:
    sites = _sites(registry)
    known = zoneinfo.available_timezones()
    out = []
    for site_id, tz, iso in zip(sites.index, sites["timezone"], sites["iso"], strict=True):
        if pd.isna(tz) or tz not in known:
            out.append({"entity": "site", "key": site_id, "column": "timezone",
                        "problem": f"{tz!r} is not an IANA time zone"})
        elif iso in ISO_TIME_ZONES and tz not in ISO_TIME_ZONES[iso]:
            out.append({"entity": "site", "key": site_id, "column": "timezone",
                        "problem": f"{tz} is outside {iso}'s footprint"})
    return out


def enrollment_fields_present(registry: pd.DataFrame) -> list[dict[str, str]]:
    sites = _active_sites(registry)
    out = []
    for column, what in (("zone", "ISO zone"), ("pnode", "pricing node"), ("plc_kw", "peak load contribution")):
        out += [{"entity": "site", "key": s, "column": column, "problem": f"no {what} ({column})"}
                for s in sites.index[_blank(sites[column])]]
    return out


RULES: tuple[Rule, ...] = (
    Rule("meter_point_present", "Every site that is not retired has a utility meter point (MPID).", meter_point_present),
    Rule("edc_account_present", "Every site that is not retired names its EDC and EDC account number.", edc_account_present),
    Rule("unique_device_serials", "No two devices share a make and serial number.", unique_device_serials),
    Rule("plausible_battery_ratings", "Every battery has kW and kWh with a C-rate between 0.1 and 2 per hour.", plausible_battery_ratings),
    Rule("valid_time_zones", "Every site has an IANA time zone inside its ISO's footprint.", valid_time_zones),
    Rule("enrollment_fields_present", "Every site that is not retired has its zone, pricing node and PLC.", enrollment_fields_present),
)


def evaluate(registry: pd.DataFrame, rules: tuple[Rule, ...] = RULES) -> pd.DataFrame:
    """All problems of all rules, sorted by rule, entity and key."""
    rows = []
    for rule in rules:
        rows += [{"rule": rule.name, **p} for p in rule.check(registry)]
    return pd.DataFrame(rows, columns=PROBLEM_COLUMNS).sort_values(["rule", "entity", "key", "column"]).reset_index(drop=True)
