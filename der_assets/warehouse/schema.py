"""The warehouse schema: the single source of truth for every table.

`der db upgrade` applies it, and the engine applies it on first use. The DDL files in sql/
are rendered from this module (`der db ddl`) and a test keeps them in step.

Registry tables are versioned in place (slowly changing dimension, type 2): each row is one
version of one entity, valid from `valid_from` until `valid_to` (NULL while current), and it
names the import that created it and the columns that changed. Nothing is updated except
`valid_to` when a newer version supersedes it.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 3  # 2: event_performance_metered; 3: registry_sites.resource_id, capacity and settlement tables
# Every change so far is additive: upgrade() creates new tables and adds new nullable columns.

metadata = sa.MetaData()

schema_info = sa.Table(
    "schema_info",
    metadata,
    sa.Column("schema_version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    comment="Schema versions applied to this warehouse.",
)

registry_imports = sa.Table(
    "registry_imports",
    metadata,
    sa.Column("import_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("file_name", sa.String(512), nullable=False),
    sa.Column("file_sha256", sa.String(64), nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("imported_by", sa.String(128), nullable=False),
    sa.Column("rows_read", sa.Integer, nullable=False),
    sa.Column("versions_created", sa.Integer, nullable=False),
    comment="One row per registry import that changed something.",
)


def _versioned(name: str, key: str, *columns: sa.Column, comment: str) -> sa.Table:
    """A type-2 versioned entity table keyed by `key`."""
    return sa.Table(
        name,
        metadata,
        sa.Column("version_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(key, sa.String(64), nullable=False),
        *columns,
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "import_id",
            sa.Integer,
            sa.ForeignKey("registry_imports.import_id"),
            nullable=False,
        ),
        sa.Column("changed_by", sa.String(128), nullable=False),
        sa.Column("change_summary", sa.Text, nullable=False),
        sa.Index(f"ix_{name}_{key}", key),
        sa.Index(
            f"uq_{name}_current_{key}",
            key,
            unique=True,
            sqlite_where=sa.text("valid_to IS NULL"),
            postgresql_where=sa.text("valid_to IS NULL"),
        ),
        comment=comment,
    )


registry_subscribers = _versioned(
    "registry_subscribers",
    "subscriber_id",
    sa.Column("subscriber_name", sa.String(256)),
    comment="Subscriber accounts (versioned).",
)

registry_sites = _versioned(
    "registry_sites",
    "site_id",
    sa.Column("subscriber_id", sa.String(64), nullable=False),
    sa.Column("address", sa.String(512)),
    sa.Column("postal_code", sa.String(16)),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("iso", sa.String(8), nullable=False),
    sa.Column("zone", sa.String(64)),
    sa.Column("pnode", sa.String(64)),
    sa.Column("edc", sa.String(64)),
    sa.Column("edc_account", sa.String(64)),
    sa.Column("plc_kw", sa.Float),
    sa.Column("resource_id", sa.String(64)),
    sa.Column("interconnection_type", sa.String(32), nullable=False),
    sa.Column("export_allowed", sa.Boolean, nullable=False),
    sa.Column("reserve_floor_pct", sa.Float),
    sa.Column("max_events_per_month", sa.Integer),
    sa.Column("max_event_hours", sa.Float),
    sa.Column("opt_out", sa.Boolean, nullable=False),
    sa.Column("site_status", sa.String(16), nullable=False),
    comment="Sites: location, time zone, ISO enrollment and program agreement (versioned).",
)

registry_meters = _versioned(
    "registry_meters",
    "meter_id",
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("meter_interval_min", sa.Integer),
    comment="Utility meter points (MPID) at each site's grid connection (versioned).",
)

registry_devices = _versioned(
    "registry_devices",
    "device_id",
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("device_type", sa.String(16), nullable=False),
    sa.Column("make", sa.String(128)),
    sa.Column("model", sa.String(128)),
    sa.Column("serial", sa.String(128)),
    sa.Column("rated_kw", sa.Float),
    sa.Column("capacity_kwh", sa.Float),
    sa.Column("pv_dc_kw", sa.Float),
    sa.Column("tilt_deg", sa.Float),
    sa.Column("azimuth_deg", sa.Float),
    sa.Column("telemetry_source", sa.String(32)),
    sa.Column("vendor_ref", sa.String(128)),
    sa.Column("device_status", sa.String(16), nullable=False),
    sa.Column("commissioned_on", sa.Date),
    comment="Devices: PV inverters, batteries and meters, with nameplates (versioned).",
)

raw_payloads = sa.Table(
    "raw_payloads",
    metadata,
    sa.Column("payload_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("n_bytes", sa.Integer, nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("site_id", sa.String(64)),
    sa.Column("endpoint", sa.String(128), nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True)),
    sa.Column("window_end", sa.DateTime(timezone=True)),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_raw_payloads_sha256", "sha256"),
    sa.Index("ix_raw_payloads_source_received", "source", "received_at"),
    comment="Every payload received, before parsing: content-addressed bytes on disk, indexed here.",
)

interval_telemetry = sa.Table(
    "interval_telemetry",
    metadata,
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("interval_s", sa.Integer, nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("quality", sa.String(16), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.PrimaryKeyConstraint("site_id", "device_id", "source", "channel", "interval_start", "revision"),
    sa.Index("ix_interval_telemetry_start", "interval_start"),
    comment="The canonical interval series (DESIGN.md): energy per interval, UTC interval-beginning.",
)

reconciled_intervals = sa.Table(
    "reconciled_intervals",
    metadata,
    *[sa.Column(c.name, c.type, nullable=c.nullable) for c in interval_telemetry.columns],
    sa.PrimaryKeyConstraint("site_id", "device_id", "source", "channel", "interval_start", "revision"),
    sa.Index("ix_reconciled_intervals_start", "interval_start"),
    comment="Site grid energy: the vendor-based estimate (revision 0) and AMI (revision 1), both kept.",
)

review_queue = sa.Table(
    "review_queue",
    metadata,
    sa.Column("review_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("site_id", sa.String(64)),
    sa.Column("device_id", sa.String(64)),
    sa.Column("source", sa.String(32)),
    sa.Column("channel", sa.String(16)),
    sa.Column("issue", sa.String(32), nullable=False),
    sa.Column("first_interval", sa.DateTime(timezone=True)),
    sa.Column("last_interval", sa.DateTime(timezone=True)),
    sa.Column("n_intervals", sa.Integer),
    sa.Column("detail", sa.Text),
    sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
    # an item's natural identity (origin, day, site, device, source, channel, issue, first interval or payload),
    # so an operator's resolution survives the day being rebuilt; NULL status (rows from before) reads as open
    sa.Column("item_key", sa.String(64)),
    sa.Column("status", sa.String(16)),  # open / resolved
    sa.Column("seen_at", sa.DateTime(timezone=True)),  # the latest run that still detected it
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", sa.String(128)),
    sa.Column("resolution_note", sa.Text),
    sa.Index("ix_review_queue_day_origin", "day", "origin"),
    comment="Gaps, suspect values, quarantined payloads and divergences for an operator to review.",
)

dispatch_instructions = sa.Table(
    "dispatch_instructions",
    metadata,
    sa.Column("instruction_id", sa.String(128), nullable=False),
    sa.Column("modification", sa.Integer, nullable=False),
    sa.Column("iso", sa.String(8), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("interval_minutes", sa.Integer, nullable=False),
    sa.Column("target_kw", sa.Text, nullable=False),  # JSON: one number or one per interval
    sa.Column("status", sa.String(16), nullable=False),  # active, cancelled, superseded
    sa.Column("channel", sa.String(16), nullable=False),  # openadr, http, inbox
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("raw_sha256", sa.String(64)),
    sa.PrimaryKeyConstraint("instruction_id", "modification"),
    comment="Every ISO/utility dispatch instruction and each modification or cancellation of it.",
)

dispatch_plans = sa.Table(
    "dispatch_plans",
    metadata,
    sa.Column("instruction_id", sa.String(128), nullable=False),
    sa.Column("modification", sa.Integer, nullable=False),
    sa.Column("battery_id", sa.String(64), nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("setpoint_kw", sa.Float, nullable=False),
    sa.Column("soc_end_kwh", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("instruction_id", "modification", "battery_id", "interval_start"),
    comment="The plan for each instruction modification: a setpoint per battery and interval (+ discharge).",
)

dispatch_commands = sa.Table(
    "dispatch_commands",
    metadata,
    sa.Column("command_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instruction_id", sa.String(128), nullable=False),
    sa.Column("modification", sa.Integer, nullable=False),
    sa.Column("battery_id", sa.String(64), nullable=False),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("setpoint_kw", sa.Float),  # NULL = released to self-consumption
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_dispatch_commands_instruction", "instruction_id"),
    comment="Every command sent to a device for an instruction, with its acknowledgement.",
)

event_performance = sa.Table(
    "event_performance",
    metadata,
    sa.Column("instruction_id", sa.String(128), nullable=False),
    sa.Column("modification", sa.Integer, nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("instructed_kwh", sa.Float, nullable=False),
    sa.Column("delivered_kwh", sa.Float, nullable=False),
    sa.Column("delivered_pct", sa.Float),
    sa.Column("apportioned", sa.Boolean, nullable=False),
    sa.Column("batteries_missing", sa.Integer, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    # provisional until the telemetry covers the event (coverage_pct of the commanded battery-seconds)
    sa.Column("status", sa.String(16)),
    sa.Column("coverage_pct", sa.Float),
    sa.Column("batteries_reported", sa.Integer),
    sa.Column("incomplete", sa.Boolean),  # final only because the give-up horizon passed
    sa.Column("alerted_at", sa.DateTime(timezone=True)),  # when the final figure's alert went out (once)
    sa.PrimaryKeyConstraint("instruction_id", "modification", "interval_start"),
    comment="Delivered against instructed per interval, from battery telemetry during and after the event; "
            "only intervals some commanded battery reported in have a row.",
)

event_performance_metered = sa.Table(
    "event_performance_metered",
    metadata,
    sa.Column("instruction_id", sa.String(128), nullable=False),
    sa.Column("modification", sa.Integer, nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("instructed_kwh", sa.Float, nullable=False),
    sa.Column("baseline_kwh", sa.Float, nullable=False),
    sa.Column("metered_kwh", sa.Float, nullable=False),
    sa.Column("reduction_kwh", sa.Float, nullable=False),
    sa.Column("delivered_pct", sa.Float),
    sa.Column("apportioned", sa.Boolean, nullable=False),
    sa.Column("sites", sa.Integer, nullable=False),
    sa.Column("sites_missing", sa.Integer, nullable=False),
    sa.Column("baseline_method", sa.String(64), nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("instruction_id", "modification", "interval_start"),
    comment="Final performance at the utility meters (AMI) against a customer baseline; recomputed as AMI arrives.",
)

REGISTRY_TABLES = {
    "subscriber": registry_subscribers,
    "site": registry_sites,
    "meter": registry_meters,
    "device": registry_devices,
}

capacity_site_days = sa.Table(
    "capacity_site_days",
    metadata,
    sa.Column("iso", sa.String(8), nullable=False),
    sa.Column("delivery_year", sa.String(16), nullable=False),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("day", sa.Date, nullable=False),  # the site's local calendar day
    sa.Column("resource_id", sa.String(64)),
    sa.Column("zone", sa.String(64)),
    sa.Column("nameplate_kw", sa.Float),
    sa.Column("deliverable_kw", sa.Float, nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    *[sa.Column(f"loss_{c}_kw", sa.Float, nullable=False)
      for c in ("reserve", "soc", "power", "non_export", "offline", "opt_out")],
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("iso", "delivery_year", "site_id", "day"),
    comment="Deliverable kW per site and sample day for an ISO capacity estimate, with why the rest of nameplate was lost.",
)

capacity_estimates = sa.Table(
    "capacity_estimates",
    metadata,
    sa.Column("iso", sa.String(8), nullable=False),
    sa.Column("delivery_year", sa.String(16), nullable=False),
    sa.Column("accreditation_class", sa.String(32), nullable=False),
    sa.Column("n_sites", sa.Integer, nullable=False),
    sa.Column("n_days", sa.Integer, nullable=False),
    sa.Column("nameplate_kw", sa.Float, nullable=False),
    sa.Column("deliverable_p50_kw", sa.Float, nullable=False),
    sa.Column("deliverable_p90_kw", sa.Float, nullable=False),
    sa.Column("accredited_p90_kw", sa.Float, nullable=False),
    sa.Column("recommended_commit_kw", sa.Float, nullable=False),
    sa.Column("summary_json", sa.Text, nullable=False),  # the `der capacity estimate` JSON, warnings included
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("iso", "delivery_year"),
    comment="The fleet's capacity estimate per ISO and delivery year: distribution, accreditation and screening risk.",
)

statement_lines = sa.Table(
    "statement_lines",
    metadata,
    sa.Column("month", sa.String(7), nullable=False),  # YYYY-MM of the event intervals
    sa.Column("statement_id", sa.String(128), nullable=False),
    sa.Column("iso", sa.String(8), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("interval_s", sa.Integer, nullable=False),
    sa.Column("iso_baseline_kw", sa.Float),
    sa.Column("iso_load_kw", sa.Float),
    sa.Column("iso_reduction_kwh", sa.Float),
    sa.Column("rate_usd_per_mwh", sa.Float),
    sa.Column("amount_usd", sa.Float),
    sa.Column("raw_sha256", sa.String(64), nullable=False),  # the landed statement the line was read from
    sa.PrimaryKeyConstraint("statement_id", "resource_id", "event_id", "interval_start"),
    sa.Index("ix_statement_lines_month", "month"),
    comment="ISO statement lines (der's statement template), read from statements landed raw in raw_payloads.",
)

event_baselines = sa.Table(
    "event_baselines",
    metadata,
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("meter_id", sa.String(64), nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("interval_s", sa.Integer, nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("baseline_kw", sa.Float),  # NULL where the rule's inputs are missing: never a zero
    sa.Column("load_kw", sa.Float),
    sa.Column("reduction_kw", sa.Float),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint("event_id", "meter_id", "interval_start"),
    sa.Index("ix_event_baselines_month", "month"),
    comment="Each event's customer baseline, metered load and reduction per meter and interval, from AMI.",
)

settlement_discrepancies = sa.Table(
    "settlement_discrepancies",
    metadata,
    sa.Column("month", sa.String(7), nullable=False),
    sa.Column("statement_id", sa.String(128)),
    sa.Column("resource_id", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ours_kwh", sa.Float),
    sa.Column("iso_kwh", sa.Float),
    sa.Column("delta_kwh", sa.Float),
    sa.Column("usd_at_stake", sa.Float),  # signed: + the ISO owes the aggregator; NULL when it cannot be priced
    sa.Column("class", sa.String(32), nullable=False),
    sa.Column("evidence", sa.Text),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_settlement_discrepancies_month", "month"),
    comment="Statement lines that do not match our recomputation, classified, with the dollars at stake.",
)

review_history = sa.Table(
    "review_history",
    metadata,
    sa.Column("history_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("review_id", sa.Integer, nullable=False),
    sa.Column("item_key", sa.String(64)),
    sa.Column("action", sa.String(16), nullable=False),  # resolved / reopened
    sa.Column("by", sa.String(128), nullable=False),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("note", sa.Text),
    sa.Index("ix_review_history_review_id", "review_id"),
    comment="Who resolved or reopened a review item, when, and why (an automatic reopen names what changed).",
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),  # readable prose, as sent
    sa.Column("details_json", sa.Text),
    sa.Column("run_id", sa.String(64)),
    sa.Column("run_url", sa.Text),
    sa.Column("check_url", sa.Text),
    sa.Column("channels", sa.String(64)),  # comma-separated channels that took it; empty: logged only
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_alerts_created_at", "created_at"),
    comment="Every operator alert: what was sent, where, and the link to the run or check in the UI.",
)

dispatch_event_log = sa.Table(
    "dispatch_event_log",
    metadata,
    sa.Column("instruction_id", sa.String(128), nullable=False),
    sa.Column("modification", sa.Integer, nullable=False),
    sa.Column("interval_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("setpoints_sent", sa.Integer, nullable=False),
    sa.Column("acknowledged", sa.Integer, nullable=False),
    sa.Column("failed", sa.Integer, nullable=False),
    sa.Column("failed_batteries", sa.Text),  # comma-separated battery ids
    sa.Column("replans", sa.Integer, nullable=False),
    sa.Column("commanded_kw", sa.Float, nullable=False),
    sa.Column("instructed_kw", sa.Float),
    sa.Column("instructed_so_far_kwh", sa.Float),
    sa.Column("delivered_so_far_kwh", sa.Float),  # NULL until telemetry has measured some of the event
    sa.Column("line", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("instruction_id", "modification", "interval_start"),
    comment="The live event view: one row per dispatch interval as its setpoints went out, written while the event runs.",
)
