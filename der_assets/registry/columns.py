"""The registry import file: one row per device, with its site and subscriber repeated.

This table is the contract for `der registry import` and `der registry export`; the README's
column reference is rendered from it (`der registry columns`).
"""

from __future__ import annotations

from dataclasses import dataclass

ISOS = ("PJM", "NYISO", "ISONE")
INTERCONNECTION_TYPES = ("nem", "non_nem", "shared_facility")
SITE_STATUSES = ("pending", "active", "suspended", "retired")
DEVICE_TYPES = ("pv_inverter", "battery", "meter")
DEVICE_STATUSES = ("active", "offline", "retired")
TELEMETRY_SOURCES = ("solaredge", "enphase", "sma", "generac", "sonnen", "fronius", "sunspec", "ami")


@dataclass(frozen=True)
class Column:
    name: str
    entity: str  # subscriber, site, meter or device: the table the value lands in
    kind: str  # str, float, int, bool, enum, tz, date
    required: bool  # must be non-empty on every row
    doc: str
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    header_required: bool = True  # the column must be in the file's header


COLUMNS: tuple[Column, ...] = (
    Column("subscriber_id", "subscriber", "str", True, "Subscriber account key."),
    Column("subscriber_name", "subscriber", "str", False, "Account holder's name."),
    Column("site_id", "site", "str", True, "Site key; one service point and its equipment."),
    Column("address", "site", "str", False, "Street address of the service point."),
    Column("postal_code", "site", "str", False, "ZIP code."),
    Column("latitude", "site", "float", False, "Degrees north.", min_value=-90, max_value=90),
    Column("longitude", "site", "float", False, "Degrees east (negative in North America).", min_value=-180, max_value=180),
    Column("timezone", "site", "tz", True, "IANA time zone of the site, e.g. America/New_York."),
    Column("iso", "site", "enum", True, "ISO/RTO the site is enrolled in.", choices=ISOS),
    Column("zone", "site", "str", False, "ISO transmission zone (PJM zone, NYISO load zone, ISO-NE load zone)."),
    Column("pnode", "site", "str", False, "ISO pricing node (NYISO: transmission node PTID)."),
    Column("edc", "site", "str", False, "Electric distribution company (utility territory)."),
    Column("edc_account", "site", "str", False, "The customer's EDC account number."),
    Column("plc_kw", "site", "float", False, "Peak load contribution in kW.", min_value=0),
    Column("resource_id", "site", "str", False, "ISO registration (resource) the site is enrolled in; blank means `<ISO>-<zone>`."),
    Column("interconnection_type", "site", "enum", True, "How the site is interconnected.", choices=INTERCONNECTION_TYPES),
    Column("export_allowed", "site", "bool", True, "Whether the battery may export past the meter (true/false)."),
    Column("reserve_floor_pct", "site", "float", False, "Program agreement: battery SoC the subscriber keeps for backup, %.", min_value=0, max_value=100),
    Column("max_events_per_month", "site", "int", False, "Program agreement: events per calendar month.", min_value=0),
    Column("max_event_hours", "site", "float", False, "Program agreement: longest event, hours.", min_value=0),
    Column("opt_out", "site", "bool", True, "Subscriber has opted out of dispatch (true/false)."),
    Column("site_status", "site", "enum", True, "Operational status of the site.", choices=SITE_STATUSES),
    Column("meter_id", "meter", "str", False, "Utility meter point (MPID) at the grid connection."),
    Column("meter_interval_min", "meter", "int", False, "AMI interval length, minutes (15 or 60).", min_value=1, max_value=60),
    Column("device_id", "device", "str", True, "Device key."),
    Column("device_type", "device", "enum", True, "Kind of device.", choices=DEVICE_TYPES),
    Column("make", "device", "str", False, "Manufacturer."),
    Column("model", "device", "str", False, "Model name."),
    Column("serial", "device", "str", False, "Manufacturer serial number."),
    Column("rated_kw", "device", "float", False, "AC power rating, kW (battery: continuous discharge).", min_value=0),
    Column("capacity_kwh", "device", "float", False, "Battery usable energy, kWh.", min_value=0),
    Column("pv_dc_kw", "device", "float", False, "PV array DC nameplate behind this inverter, kW.", min_value=0),
    Column("tilt_deg", "device", "float", False, "PV array tilt from horizontal, degrees.", min_value=0, max_value=90),
    Column("azimuth_deg", "device", "float", False, "PV array azimuth, degrees clockwise from north.", min_value=0, max_value=360),
    Column("telemetry_source", "device", "enum", False, "Where the device's telemetry comes from.", choices=TELEMETRY_SOURCES),
    Column("vendor_ref", "device", "str", False, "The vendor's own id for the device or system (SolarEdge site id, Enphase system id, Modbus host:port/unit)."),
    Column("device_status", "device", "enum", True, "Operational status of the device.", choices=DEVICE_STATUSES),
    Column("commissioned_on", "device", "date", False, "Date the device went into service (YYYY-MM-DD)."),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
BY_NAME = {c.name: c for c in COLUMNS}
ENTITY_KEYS = {"subscriber": "subscriber_id", "site": "site_id", "meter": "meter_id", "device": "device_id"}


def entity_columns(entity: str) -> list[str]:
    """Attribute columns stored in one entity's table (its key first)."""
    key = ENTITY_KEYS[entity]
    attrs = [c.name for c in COLUMNS if c.entity == entity and c.name != key]
    if entity == "site":
        attrs.insert(0, "subscriber_id")
    if entity in ("meter", "device"):
        attrs.insert(0, "site_id")
    return [key, *attrs]


def render_markdown() -> str:
    """The column reference, as it appears in the README."""
    lines = ["| column | kind | required | meaning |", "|---|---|---|---|"]
    for c in COLUMNS:
        kind = c.kind
        if c.choices:
            kind = " / ".join(c.choices)
        bounds = []
        if c.min_value is not None:
            bounds.append(f">= {c.min_value:g}")
        if c.max_value is not None:
            bounds.append(f"<= {c.max_value:g}")
        if bounds:
            kind = f"{kind} ({', '.join(bounds)})"
        lines.append(f"| `{c.name}` | {kind} | {'yes' if c.required else ''} | {c.doc} |")
    return "\n".join(lines) + "\n"
