"""Utility interval CSV files in the AMI inbox: which site and which layout mapping each one is. No parsing here.

Why here: a CSV export carries no ESPI UsagePoint to name the meter, and its layout must be
chosen before it can be read. The choice is made once, when the file is landed, and kept as the
payload's endpoint (source `utility_csv`, endpoint = the mapping's name), so every later
rebuild reads it the same way.

Site: the registry meter id found in the file name (longest wins, as for Green Button files),
else in the layout's meter column, else the account number the file's preamble names
("Account Number,..." in the Opower layouts) matched to the registry's `edc_account`.

Mapping, first that applies:
1. the site's EDC in the registry (`edc`, e.g. PECO) named by a mapping's `edc` list;
2. the header signature: the one shipped mapping whose table header is a row of the file;
3. the setting DER_AMI_CSV_MAPPING (a shipped mapping's name), for a file neither tells.
Nothing applies: the file is still landed (endpoint `unmapped`) and quarantined by
meter_intervals with the reason, so an operator sees it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Optional

from .greenbutton import meter_site

SOURCE = "utility_csv"
SUFFIXES = (".csv",)
UNMAPPED = "unmapped"
MAPPING_ENV = "DER_AMI_CSV_MAPPING"


@dataclass(frozen=True)
class Choice:
    site_id: Optional[str]
    mapping: str  # a shipped mapping's name, or UNMAPPED
    how: str  # "registry edc", "header signature", "setting" or why none applied


def _setting(known) -> Optional[str]:
    name = os.environ.get(MAPPING_ENV, "").strip()
    if not name:
        return None
    if name not in known:
        raise ValueError(f"{MAPPING_ENV}={name!r} is not a shipped mapping; known: {sorted(known)}")
    return name


def choose(file_name: str, content: bytes, *, meters: MappingABC[str, str], accounts: MappingABC[str, str],
           edc_of_site: MappingABC[str, str]) -> Choice:
    """Site and mapping for one inbox CSV file.

    meters: meter_id -> site_id; accounts: edc_account -> site_id; edc_of_site: site_id -> edc
    (all from the registry).
    """
    from der_assets.telemetry.parsers.utility_csv import account_number, matching_mappings, meter_ids, shipped_mappings

    known = shipped_mappings()
    signature = matching_mappings(content)
    site = meter_site(file_name, meters)
    for name in signature if site is None else ():
        acct = account_number(content, known[name])
        site = next((meters[mid] for mid in meter_ids(content, known[name]) if mid in meters),
                    accounts.get(acct) if acct else None)
        if site is not None:
            break
    edc = (edc_of_site.get(site) or "").strip().lower() if site else ""
    by_edc = [n for n, m in known.items() if edc and edc in {e.strip().lower() for e in m.edc}]
    if len(by_edc) == 1:
        return Choice(site, by_edc[0], "registry edc")
    if len(signature) == 1:
        return Choice(site, signature[0], "header signature")
    setting = _setting(known)
    if setting is not None:
        return Choice(site, setting, "setting")
    why = (f"the header matches several mappings {signature}" if signature
           else "no shipped mapping's header is in the file")
    return Choice(site, UNMAPPED, f"{why}; the site's EDC names none and {MAPPING_ENV} is unset")
