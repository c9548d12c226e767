-- Rendered from der_assets/warehouse/schema.py (schema version 3) by `der db ddl`.
-- Do not edit: change schema.py and re-render.

CREATE TABLE alerts (
	alert_id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	title TEXT NOT NULL, 
	text TEXT NOT NULL, 
	details_json TEXT, 
	run_id VARCHAR(64), 
	run_url TEXT, 
	check_url TEXT, 
	channels VARCHAR(64), 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (alert_id)
);

CREATE INDEX ix_alerts_created_at ON alerts (created_at);

CREATE TABLE capacity_estimates (
	iso VARCHAR(8) NOT NULL, 
	delivery_year VARCHAR(16) NOT NULL, 
	accreditation_class VARCHAR(32) NOT NULL, 
	n_sites INTEGER NOT NULL, 
	n_days INTEGER NOT NULL, 
	nameplate_kw FLOAT NOT NULL, 
	deliverable_p50_kw FLOAT NOT NULL, 
	deliverable_p90_kw FLOAT NOT NULL, 
	accredited_p90_kw FLOAT NOT NULL, 
	recommended_commit_kw FLOAT NOT NULL, 
	summary_json TEXT NOT NULL, 
	computed_at DATETIME NOT NULL, 
	PRIMARY KEY (iso, delivery_year)
);


CREATE TABLE capacity_site_days (
	iso VARCHAR(8) NOT NULL, 
	delivery_year VARCHAR(16) NOT NULL, 
	site_id VARCHAR(64) NOT NULL, 
	day DATE NOT NULL, 
	resource_id VARCHAR(64), 
	zone VARCHAR(64), 
	nameplate_kw FLOAT, 
	deliverable_kw FLOAT NOT NULL, 
	reason VARCHAR(32) NOT NULL, 
	loss_reserve_kw FLOAT NOT NULL, 
	loss_soc_kw FLOAT NOT NULL, 
	loss_power_kw FLOAT NOT NULL, 
	loss_non_export_kw FLOAT NOT NULL, 
	loss_offline_kw FLOAT NOT NULL, 
	loss_opt_out_kw FLOAT NOT NULL, 
	computed_at DATETIME NOT NULL, 
	PRIMARY KEY (iso, delivery_year, site_id, day)
);


CREATE TABLE dispatch_commands (
	command_id INTEGER NOT NULL, 
	instruction_id VARCHAR(128) NOT NULL, 
	modification INTEGER NOT NULL, 
	battery_id VARCHAR(64) NOT NULL, 
	site_id VARCHAR(64) NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	setpoint_kw FLOAT, 
	ok BOOLEAN NOT NULL, 
	detail TEXT, 
	sent_at DATETIME NOT NULL, 
	PRIMARY KEY (command_id)
);

CREATE INDEX ix_dispatch_commands_instruction ON dispatch_commands (instruction_id);

CREATE TABLE dispatch_event_log (
	instruction_id VARCHAR(128) NOT NULL, 
	modification INTEGER NOT NULL, 
	interval_start DATETIME NOT NULL, 
	logged_at DATETIME NOT NULL, 
	setpoints_sent INTEGER NOT NULL, 
	acknowledged INTEGER NOT NULL, 
	failed INTEGER NOT NULL, 
	failed_batteries TEXT, 
	replans INTEGER NOT NULL, 
	commanded_kw FLOAT NOT NULL, 
	instructed_kw FLOAT, 
	instructed_so_far_kwh FLOAT, 
	delivered_so_far_kwh FLOAT, 
	line TEXT NOT NULL, 
	PRIMARY KEY (instruction_id, modification, interval_start)
);


CREATE TABLE dispatch_instructions (
	instruction_id VARCHAR(128) NOT NULL, 
	modification INTEGER NOT NULL, 
	iso VARCHAR(8) NOT NULL, 
	resource_id VARCHAR(64) NOT NULL, 
	issued_at DATETIME NOT NULL, 
	start DATETIME NOT NULL, 
	"end" DATETIME NOT NULL, 
	interval_minutes INTEGER NOT NULL, 
	target_kw TEXT NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	channel VARCHAR(16) NOT NULL, 
	received_at DATETIME NOT NULL, 
	raw_sha256 VARCHAR(64), 
	PRIMARY KEY (instruction_id, modification)
);


CREATE TABLE dispatch_plans (
	instruction_id VARCHAR(128) NOT NULL, 
	modification INTEGER NOT NULL, 
	battery_id VARCHAR(64) NOT NULL, 
	interval_start DATETIME NOT NULL, 
	setpoint_kw FLOAT NOT NULL, 
	soc_end_kwh FLOAT NOT NULL, 
	PRIMARY KEY (instruction_id, modification, battery_id, interval_start)
);


CREATE TABLE event_baselines (
	month VARCHAR(7) NOT NULL, 
	event_id VARCHAR(128) NOT NULL, 
	resource_id VARCHAR(64) NOT NULL, 
	site_id VARCHAR(64) NOT NULL, 
	meter_id VARCHAR(64) NOT NULL, 
	interval_start DATETIME NOT NULL, 
	interval_s INTEGER NOT NULL, 
	method VARCHAR(32) NOT NULL, 
	baseline_kw FLOAT, 
	load_kw FLOAT, 
	reduction_kw FLOAT, 
	computed_at DATETIME NOT NULL, 
	PRIMARY KEY (event_id, meter_id, interval_start)
);

CREATE INDEX ix_event_baselines_month ON event_baselines (month);

CREATE TABLE event_performance (
	instruction_id VARCHAR(128) NOT NULL, 
	modification INTEGER NOT NULL, 
	interval_start DATETIME NOT NULL, 
	instructed_kwh FLOAT NOT NULL, 
	delivered_kwh FLOAT NOT NULL, 
	delivered_pct FLOAT, 
	apportioned BOOLEAN NOT NULL, 
	batteries_missing INTEGER NOT NULL, 
	computed_at DATETIME NOT NULL, 
	status VARCHAR(16), 
	coverage_pct FLOAT, 
	batteries_reported INTEGER, 
	incomplete BOOLEAN, 
	alerted_at DATETIME, 
	PRIMARY KEY (instruction_id, modification, interval_start)
);


CREATE TABLE event_performance_metered (
	instruction_id VARCHAR(128) NOT NULL, 
	modification INTEGER NOT NULL, 
	interval_start DATETIME NOT NULL, 
	instructed_kwh FLOAT NOT NULL, 
	baseline_kwh FLOAT NOT NULL, 
	metered_kwh FLOAT NOT NULL, 
	reduction_kwh FLOAT NOT NULL, 
	delivered_pct FLOAT, 
	apportioned BOOLEAN NOT NULL, 
	sites INTEGER NOT NULL, 
	sites_missing INTEGER NOT NULL, 
	baseline_method VARCHAR(64) NOT NULL, 
	computed_at DATETIME NOT NULL, 
	PRIMARY KEY (instruction_id, modification, interval_start)
);


CREATE TABLE interval_telemetry (
	site_id VARCHAR(64) NOT NULL, 
	device_id VARCHAR(64) NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	channel VARCHAR(16) NOT NULL, 
	interval_start DATETIME NOT NULL, 
	interval_s INTEGER NOT NULL, 
	value FLOAT, 
	quality VARCHAR(16) NOT NULL, 
	received_at DATETIME NOT NULL, 
	revision INTEGER NOT NULL, 
	PRIMARY KEY (site_id, device_id, source, channel, interval_start, revision)
);

CREATE INDEX ix_interval_telemetry_start ON interval_telemetry (interval_start);

CREATE TABLE raw_payloads (
	payload_id INTEGER NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	n_bytes INTEGER NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	site_id VARCHAR(64), 
	endpoint VARCHAR(128) NOT NULL, 
	window_start DATETIME, 
	window_end DATETIME, 
	received_at DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	error TEXT, 
	PRIMARY KEY (payload_id)
);

CREATE INDEX ix_raw_payloads_sha256 ON raw_payloads (sha256);
CREATE INDEX ix_raw_payloads_source_received ON raw_payloads (source, received_at);

CREATE TABLE reconciled_intervals (
	site_id VARCHAR(64) NOT NULL, 
	device_id VARCHAR(64) NOT NULL, 
	source VARCHAR(32) NOT NULL, 
	channel VARCHAR(16) NOT NULL, 
	interval_start DATETIME NOT NULL, 
	interval_s INTEGER NOT NULL, 
	value FLOAT, 
	quality VARCHAR(16) NOT NULL, 
	received_at DATETIME NOT NULL, 
	revision INTEGER NOT NULL, 
	PRIMARY KEY (site_id, device_id, source, channel, interval_start, revision)
);

CREATE INDEX ix_reconciled_intervals_start ON reconciled_intervals (interval_start);

CREATE TABLE registry_imports (
	import_id INTEGER NOT NULL, 
	file_name VARCHAR(512) NOT NULL, 
	file_sha256 VARCHAR(64) NOT NULL, 
	imported_at DATETIME NOT NULL, 
	imported_by VARCHAR(128) NOT NULL, 
	rows_read INTEGER NOT NULL, 
	versions_created INTEGER NOT NULL, 
	PRIMARY KEY (import_id)
);


CREATE TABLE review_history (
	history_id INTEGER NOT NULL, 
	review_id INTEGER NOT NULL, 
	item_key VARCHAR(64), 
	action VARCHAR(16) NOT NULL, 
	"by" VARCHAR(128) NOT NULL, 
	at DATETIME NOT NULL, 
	note TEXT, 
	PRIMARY KEY (history_id)
);

CREATE INDEX ix_review_history_review_id ON review_history (review_id);

CREATE TABLE review_queue (
	review_id INTEGER NOT NULL, 
	day DATE NOT NULL, 
	origin VARCHAR(64) NOT NULL, 
	site_id VARCHAR(64), 
	device_id VARCHAR(64), 
	source VARCHAR(32), 
	channel VARCHAR(16), 
	issue VARCHAR(32) NOT NULL, 
	first_interval DATETIME, 
	last_interval DATETIME, 
	n_intervals INTEGER, 
	detail TEXT, 
	detected_at DATETIME NOT NULL, 
	item_key VARCHAR(64), 
	status VARCHAR(16), 
	seen_at DATETIME, 
	resolved_at DATETIME, 
	resolved_by VARCHAR(128), 
	resolution_note TEXT, 
	PRIMARY KEY (review_id)
);

CREATE INDEX ix_review_queue_day_origin ON review_queue (day, origin);

CREATE TABLE schema_info (
	schema_version INTEGER NOT NULL, 
	applied_at DATETIME NOT NULL, 
	PRIMARY KEY (schema_version)
);


CREATE TABLE settlement_discrepancies (
	month VARCHAR(7) NOT NULL, 
	statement_id VARCHAR(128), 
	resource_id VARCHAR(64) NOT NULL, 
	event_id VARCHAR(128) NOT NULL, 
	interval_start DATETIME NOT NULL, 
	ours_kwh FLOAT, 
	iso_kwh FLOAT, 
	delta_kwh FLOAT, 
	usd_at_stake FLOAT, 
	class VARCHAR(32) NOT NULL, 
	evidence TEXT, 
	computed_at DATETIME NOT NULL
);

CREATE INDEX ix_settlement_discrepancies_month ON settlement_discrepancies (month);

CREATE TABLE statement_lines (
	month VARCHAR(7) NOT NULL, 
	statement_id VARCHAR(128) NOT NULL, 
	iso VARCHAR(8) NOT NULL, 
	resource_id VARCHAR(64) NOT NULL, 
	event_id VARCHAR(128) NOT NULL, 
	interval_start DATETIME NOT NULL, 
	interval_s INTEGER NOT NULL, 
	iso_baseline_kw FLOAT, 
	iso_load_kw FLOAT, 
	iso_reduction_kwh FLOAT, 
	rate_usd_per_mwh FLOAT, 
	amount_usd FLOAT, 
	raw_sha256 VARCHAR(64) NOT NULL, 
	PRIMARY KEY (statement_id, resource_id, event_id, interval_start)
);

CREATE INDEX ix_statement_lines_month ON statement_lines (month);

CREATE TABLE registry_devices (
	version_id INTEGER NOT NULL, 
	device_id VARCHAR(64) NOT NULL, 
	site_id VARCHAR(64) NOT NULL, 
	device_type VARCHAR(16) NOT NULL, 
	make VARCHAR(128), 
	model VARCHAR(128), 
	serial VARCHAR(128), 
	rated_kw FLOAT, 
	capacity_kwh FLOAT, 
	pv_dc_kw FLOAT, 
	tilt_deg FLOAT, 
	azimuth_deg FLOAT, 
	telemetry_source VARCHAR(32), 
	vendor_ref VARCHAR(128), 
	device_status VARCHAR(16) NOT NULL, 
	commissioned_on DATE, 
	valid_from DATETIME NOT NULL, 
	valid_to DATETIME, 
	import_id INTEGER NOT NULL, 
	changed_by VARCHAR(128) NOT NULL, 
	change_summary TEXT NOT NULL, 
	PRIMARY KEY (version_id), 
	FOREIGN KEY(import_id) REFERENCES registry_imports (import_id)
);

CREATE INDEX ix_registry_devices_device_id ON registry_devices (device_id);
CREATE UNIQUE INDEX uq_registry_devices_current_device_id ON registry_devices (device_id) WHERE valid_to IS NULL;

CREATE TABLE registry_meters (
	version_id INTEGER NOT NULL, 
	meter_id VARCHAR(64) NOT NULL, 
	site_id VARCHAR(64) NOT NULL, 
	meter_interval_min INTEGER, 
	valid_from DATETIME NOT NULL, 
	valid_to DATETIME, 
	import_id INTEGER NOT NULL, 
	changed_by VARCHAR(128) NOT NULL, 
	change_summary TEXT NOT NULL, 
	PRIMARY KEY (version_id), 
	FOREIGN KEY(import_id) REFERENCES registry_imports (import_id)
);

CREATE INDEX ix_registry_meters_meter_id ON registry_meters (meter_id);
CREATE UNIQUE INDEX uq_registry_meters_current_meter_id ON registry_meters (meter_id) WHERE valid_to IS NULL;

CREATE TABLE registry_sites (
	version_id INTEGER NOT NULL, 
	site_id VARCHAR(64) NOT NULL, 
	subscriber_id VARCHAR(64) NOT NULL, 
	address VARCHAR(512), 
	postal_code VARCHAR(16), 
	latitude FLOAT, 
	longitude FLOAT, 
	timezone VARCHAR(64) NOT NULL, 
	iso VARCHAR(8) NOT NULL, 
	zone VARCHAR(64), 
	pnode VARCHAR(64), 
	edc VARCHAR(64), 
	edc_account VARCHAR(64), 
	plc_kw FLOAT, 
	resource_id VARCHAR(64), 
	interconnection_type VARCHAR(32) NOT NULL, 
	export_allowed BOOLEAN NOT NULL, 
	reserve_floor_pct FLOAT, 
	max_events_per_month INTEGER, 
	max_event_hours FLOAT, 
	opt_out BOOLEAN NOT NULL, 
	site_status VARCHAR(16) NOT NULL, 
	valid_from DATETIME NOT NULL, 
	valid_to DATETIME, 
	import_id INTEGER NOT NULL, 
	changed_by VARCHAR(128) NOT NULL, 
	change_summary TEXT NOT NULL, 
	PRIMARY KEY (version_id), 
	FOREIGN KEY(import_id) REFERENCES registry_imports (import_id)
);

CREATE INDEX ix_registry_sites_site_id ON registry_sites (site_id);
CREATE UNIQUE INDEX uq_registry_sites_current_site_id ON registry_sites (site_id) WHERE valid_to IS NULL;

CREATE TABLE registry_subscribers (
	version_id INTEGER NOT NULL, 
	subscriber_id VARCHAR(64) NOT NULL, 
	subscriber_name VARCHAR(256), 
	valid_from DATETIME NOT NULL, 
	valid_to DATETIME, 
	import_id INTEGER NOT NULL, 
	changed_by VARCHAR(128) NOT NULL, 
	change_summary TEXT NOT NULL, 
	PRIMARY KEY (version_id), 
	FOREIGN KEY(import_id) REFERENCES registry_imports (import_id)
);

CREATE INDEX ix_registry_subscribers_subscriber_id ON registry_subscribers (subscriber_id);
CREATE UNIQUE INDEX uq_registry_subscribers_current_subscriber_id ON registry_subscribers (subscriber_id) WHERE valid_to IS NULL;
