"""Fleet digital twin: PV (pvlib + TMY weather), household load, batteries and an AMI meter.

Pure numpy/pandas/pvlib, no Dagster. See :mod:`.fleet` for the time conventions
(UTC inside; days are UTC unless a ``day_tz`` is given).
"""

from .fleet import (
    CHANNELS,
    COUNTER_COLUMNS,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    FleetResult,
    FleetSpec,
    FleetTwin,
    day_window_utc,
    simulate_fleet_day,
)

__all__ = [
    "CHANNELS",
    "COUNTER_COLUMNS",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "FleetResult",
    "FleetSpec",
    "FleetTwin",
    "day_window_utc",
    "simulate_fleet_day",
]
