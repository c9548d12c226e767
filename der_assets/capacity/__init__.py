"""Capacity modeling core: telemetry + registry -> deliverable kW distribution -> accredited offer and risk.

Pure Python on pandas/numpy; never imports dagster (defs/ wires it up). Public API:

- `estimate_capacity(registry, telemetry, params, commands=None) -> CapacityEstimate`
  registry: the registry frame (one row per device, import columns; `resource_id` optional);
  telemetry: canonical interval rows (site_id/device_id may be categorical, interval_start UTC);
  commands: optional dispatch_commands-shaped frame (battery_id, site_id, instruction_id, ok, sent_at).
  The estimate has `.summary` (the contract's JSON dict), `.sites` (sites.csv frame), `.daily`
  (fleet kW per day), `.losses`, `.by_group` (P50/P90 per resource, zone, ISO with bootstrap
  intervals) and `.warnings`.
- `write_outputs(estimate, out_dir)`: sites.csv and distribution.png.
- `plot_distribution(estimate, path)`: the PNG alone (for asset metadata).
- `enrollment_capacity_columns(estimate)`: per-site deliverable P50/P90 kW and accredited kW.
- `CapacityInputError`: inputs that cannot give an honest estimate (the CLI exits 1).

docs/capacity.md states the screening model's assumptions.
"""

from der_assets.capacity.errors import CapacityInputError
from der_assets.capacity.estimate import (
    CapacityEstimate,
    EstimateParams,
    enrollment_capacity_columns,
    estimate_capacity,
    write_outputs,
)
from der_assets.capacity.plot import plot_distribution

__all__ = [
    "CapacityEstimate",
    "CapacityInputError",
    "EstimateParams",
    "enrollment_capacity_columns",
    "estimate_capacity",
    "plot_distribution",
    "write_outputs",
]
