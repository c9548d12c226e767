"""Declarative automation for telemetry: downstream days rebuild when their inputs change.

Dagster's default automation sensor starts stopped, so the project runs its own.
"""

import dagster as dg

telemetry_automation = dg.AutomationConditionSensorDefinition(
    "telemetry_automation",
    target=dg.AssetSelection.groups("telemetry", "ami"),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
