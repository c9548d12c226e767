"""The asset inventory an ISO asks of a DER aggregator, one row per site.

The fields and where each one's requirement was checked are listed in docs/iso-export.md.
In short: PJM ties non-NEM participation to the EDC account number and asks CSPs for the
on-site generation attributes (nameplate, vintage) in Manual 11 section 10.2.2; NYISO requires
every facility in an aggregation to sit on one transmission node (PTID) with an interval
meter; ISO-NE maps each demand response asset to its load zone and telemetry. The exact
upload templates of eLRS, the NYISO DER portal and ISO-NE's asset registration were not
available to check, so column names are this project's, one per data element.
"""

from __future__ import annotations

import pandas as pd

from der_assets.registry.resources import site_resource
from der_assets.registry.rollup import site_nameplates

# NYISO's minimum size for an individual DER facility in an aggregation (10 kW), cited from
# secondary coverage of the DER tariff (see docs/iso-export.md); flagged, not enforced.
NYISO_MIN_FACILITY_KW = 10.0

COMMON = [
    "site_id", "resource_id", "subscriber_id", "address", "postal_code", "latitude", "longitude",
    "edc", "edc_account", "meter_id", "meter_interval_min", "interconnection_type", "export_allowed",
    "technology", "pv_inverter_make_model", "pv_ac_kw", "pv_dc_kw", "battery_make_model",
    "battery_kw", "battery_kwh", "battery_duration_h", "generation_vintage_year",
    "site_status", "opt_out",
]

ISO_COLUMNS = {
    "PJM": ["zone", "pnode", "plc_kw", "nem_retail_program"],
    "NYISO": ["load_zone", "transmission_node_ptid", "facility_kw", "below_min_facility_kw"],
    "ISONE": ["load_zone", "pnode", "telemetry_sources"],
}


def _join(values: pd.Series) -> str:
    return "; ".join(sorted({str(v) for v in values.dropna() if str(v)}))


def site_inventory(registry: pd.DataFrame) -> pd.DataFrame:
    """Per-site rollup of the device rows: PV and battery nameplates, models, vintage."""
    devices = registry[registry["device_status"] != "retired"]
    sites = registry.drop_duplicates("site_id").set_index("site_id")
    make_model = devices["make"] + " " + devices["model"]
    out = site_nameplates(registry)[["pv_ac_kw", "pv_dc_kw", "battery_kw", "battery_kwh"]].reindex(sites.index).astype(float)
    out["battery_duration_h"] = (out["battery_kwh"] / out["battery_kw"]).round(2)
    # a Series groupby, so a fleet with no battery (or no PV) gives an empty column, not a frame
    for column, kind in (("pv_inverter_make_model", "pv_inverter"), ("battery_make_model", "battery")):
        of_kind = devices["device_type"] == kind
        out[column] = make_model[of_kind].groupby(devices.loc[of_kind, "site_id"]).apply(_join)
    years = pd.to_datetime(devices["commissioned_on"], errors="coerce").dt.year
    out["generation_vintage_year"] = years.groupby(devices["site_id"]).min().astype("Int64")
    out["telemetry_sources"] = devices.groupby("site_id")["telemetry_source"].apply(_join)
    has_pv = out["pv_ac_kw"].notna()
    has_bat = out["battery_kwh"].notna()
    out["technology"] = (has_pv.map({True: "solar", False: ""}) + (has_pv & has_bat).map({True: "+", False: ""})
                         + has_bat.map({True: "storage", False: ""}))
    site_cols = ["resource_id", "subscriber_id", "address", "postal_code", "latitude", "longitude", "iso", "zone", "pnode",
                 "edc", "edc_account", "plc_kw", "meter_id", "meter_interval_min", "interconnection_type",
                 "export_allowed", "site_status", "opt_out"]
    sites = sites.assign(resource_id=site_resource(sites).to_numpy())
    return sites[site_cols].join(out).reset_index()


def iso_inventory(registry: pd.DataFrame, iso: str) -> pd.DataFrame:
    """The inventory for one ISO's enrolled (not retired) sites, in its export columns."""
    iso = iso.upper().replace("-", "")
    if iso not in ISO_COLUMNS:
        raise ValueError(f"unknown ISO {iso!r}; use one of {', '.join(ISO_COLUMNS)}")
    inv = site_inventory(registry)
    inv = inv[(inv["iso"] == iso) & (inv["site_status"] != "retired")].copy()
    inv["nem_retail_program"] = inv["interconnection_type"] == "nem"
    inv["load_zone"] = inv["zone"]
    inv["transmission_node_ptid"] = inv["pnode"]
    inv["facility_kw"] = inv[["pv_ac_kw", "battery_kw"]].max(axis=1)
    inv["below_min_facility_kw"] = inv["facility_kw"] < NYISO_MIN_FACILITY_KW
    return inv[COMMON + ISO_COLUMNS[iso]].sort_values("site_id").reset_index(drop=True)
