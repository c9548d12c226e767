"""ISO accreditation numbers from the package's data files, each with its source and tag.

Every number an ISO rule gives (class ratings, penalty rates, capacity prices, expected event
hours, delivery-period dates) lives in `data/*.csv`, never in code. Tags follow
../shared/reference/capacity-settlement-rules.md: `verified`, `verified-secondary`, `unverified`,
and `not-found` for a number that is known to exist but is not shipped. A number that is not
verified is used only with a warning naming it; a missing one is an error that tells the
operator which flag supplies it.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import pandas as pd

from der_assets.capacity.errors import CapacityInputError

ISOS = ("PJM", "NYISO", "ISONE")
LOCALITIES = ("ros", "ghi", "nyc", "li")
TRUSTED_TAGS = frozenset({"verified", "verified-secondary"})
_YEAR = re.compile(r"^(\d{4})/(\d{4})$")


@dataclass(frozen=True)
class Sourced:
    """One number with where it came from; `verified` is True for verified and verified-secondary tags."""

    name: str
    value: float
    tag: str
    source: str

    @property
    def verified(self) -> bool:
        return self.tag in TRUSTED_TAGS

    def warning(self) -> str | None:
        """The warning that must accompany the use of a number that is not verified."""
        if self.verified:
            return None
        return f"{self.name} = {self.value:g} is {self.tag} ({self.source})"


@lru_cache(maxsize=None)
def table(name: str) -> pd.DataFrame:
    """One data file (class_ratings, rates, classes, periods) as text columns."""
    with resources.files("der_assets.capacity").joinpath("data", f"{name}.csv").open("r", encoding="utf-8") as f:
        return pd.read_csv(f, dtype=str, keep_default_na=False)


def normalize_iso(iso: str) -> str:
    key = iso.strip().upper().replace("-", "").replace(" ", "")
    if key not in ISOS:
        raise CapacityInputError(f"unknown ISO {iso!r}; use pjm, nyiso or isone")
    return key


def parse_delivery_year(text: str) -> tuple[int, int]:
    """'2027/2028' -> (2027, 2028); the second year must follow the first."""
    m = _YEAR.match(text.strip())
    if not m or int(m.group(2)) != int(m.group(1)) + 1:
        raise CapacityInputError(f"delivery year {text!r} is not of the form 2027/2028")
    return int(m.group(1)), int(m.group(2))


def delivery_period(iso: str, delivery_year: str) -> tuple[dt.date, dt.date, Sourced]:
    """First and last date of the ISO's delivery period, from data/periods.csv."""
    iso = normalize_iso(iso)
    first, _ = parse_delivery_year(delivery_year)
    row = table("periods").set_index("iso").loc[iso]
    start = dt.date(first, int(row["start_month"]), int(row["start_day"]))
    end = dt.date(first + 1, start.month, start.day) - dt.timedelta(days=1)
    days = (end - start).days + 1
    return start, end, Sourced(f"{iso} {delivery_year} delivery period days", float(days), row["tag"], row["source"])


def days_in_period(iso: str, delivery_year: str) -> int:
    """Days in the delivery period counted from its dates (PJM 2027/2028: 366, it holds 2028-02-29)."""
    start, end, _ = delivery_period(iso, delivery_year)
    return (end - start).days + 1


def classes(iso: str) -> pd.DataFrame:
    """The accreditation classes the operator may choose for an ISO, with their participation model."""
    t = table("classes")
    return t[t["iso"] == normalize_iso(iso)].reset_index(drop=True)


def class_info(iso: str, accreditation_class: str) -> dict[str, str]:
    c = classes(iso)
    hit = c[c["accreditation_class"] == accreditation_class]
    if hit.empty:
        raise CapacityInputError(f"unknown class {accreditation_class!r} for {normalize_iso(iso)}; "
                                 f"choose one of {', '.join(c['accreditation_class'])}")
    return hit.iloc[0].to_dict()


def class_rating(iso: str, delivery_year: str, accreditation_class: str, locality: str | None = None,
                 override: float | None = None) -> Sourced:
    """The class rating as a fraction (0.92 for 92 %), with source and tag.

    `override` (the operator's --class-rating) wins over the table; a rating that is
    not-found in the table and not overridden is an error naming the flag.
    """
    iso = normalize_iso(iso)
    parse_delivery_year(delivery_year)
    info = class_info(iso, accreditation_class)
    loc = (locality or "").strip().lower()
    if info["locality_required"] == "true":
        if loc not in LOCALITIES:
            raise CapacityInputError(f"{iso} class {accreditation_class} needs --locality (one of {', '.join(LOCALITIES)})")
    name = f"{iso} {delivery_year} {accreditation_class}" + (f" {loc}" if loc else "") + " class rating"
    if override is not None:
        if not 0.0 < override <= 1.0:
            raise CapacityInputError(f"--class-rating {override:g} is not a fraction in (0, 1]; 92 % is 0.92")
        return Sourced(name, float(override), "operator", "given by the operator (--class-rating)")
    t = table("class_ratings")
    hit = t[(t["iso"] == iso) & (t["delivery_year"] == delivery_year) & (t["accreditation_class"] == accreditation_class)
            & ((t["locality"] == "") | (t["locality"] == loc))]
    if hit.empty or hit.iloc[0]["rating_pct"] == "":
        why = hit.iloc[0]["source"] + "; " + hit.iloc[0]["note"] if not hit.empty else "not in the table"
        raise CapacityInputError(f"{name}: no published rating shipped ({why}); pass --class-rating FRACTION")
    row = hit.iloc[0]
    return Sourced(name, float(row["rating_pct"]) / 100.0, row["tag"], row["source"])


def rate(iso: str, delivery_year: str, quantity: str, override: float | None = None, flag: str = "") -> Sourced:
    """penalty_rate ($/MWh), capacity_price ($/MW-day) or event_hours (h/yr), or the operator's value."""
    iso = normalize_iso(iso)
    name = f"{iso} {delivery_year} {quantity}"
    if override is not None:
        if override < 0:
            raise CapacityInputError(f"{flag} {override:g} is negative")
        return Sourced(name, float(override), "operator", f"given by the operator ({flag})")
    t = table("rates")
    hit = t[(t["iso"] == iso) & (t["delivery_year"] == delivery_year) & (t["quantity"] == quantity)]
    if hit.empty:
        raise CapacityInputError(f"{name}: not in der_assets/capacity/data/rates.csv (not found in public sources "
                                 f"read so far); pass {flag}")
    row = hit.iloc[0]
    source = row["source"] + (f"; formula: {row['formula']}" if row["formula"] else "")
    return Sourced(name, float(row["value"]), row["tag"], source)


def participation_warnings(iso: str, delivery_year: str, accreditation_class: str, duration_h: float) -> list[str]:
    """Warnings when the chosen class does not fit the participation model or the estimated window."""
    info = class_info(iso, accreditation_class)
    out = []
    first = info.get("first_delivery_year", "")
    if first and parse_delivery_year(delivery_year)[0] < parse_delivery_year(first)[0]:
        out.append(f"class {accreditation_class} for BTM sites needs the {info['participation_model']}, first "
                   f"available for {first} ({info['source']}); before that BTM batteries take part as demand_resource")
    if info.get("duration_h") and duration_h < float(info["duration_h"]):
        out.append(f"class {accreditation_class} is a {info['duration_h']}-hour class but deliverable was estimated "
                   f"over {duration_h:g} h; use --duration-h {info['duration_h']} for a consistent estimate")
    return out
