"""The Dagster layer: one folder per domain, wiring the domain packages to Dagster."""
