"""Settlement: recompute what the ISO pays for an event from the meters, and check its statement.

Pure Python (no Dagster here): ISO baselines (`baselines`), their rule parameters as data
(`params/`), baseline accuracy, metered performance, statements and reconciliation.
"""
