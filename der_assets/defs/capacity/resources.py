"""The capacity settings resource, configured from the environment."""

import dagster as dg

from der_assets.defs.capacity.assets import CapacitySettings


@dg.definitions
def capacity_resources() -> dg.Definitions:
    return dg.Definitions(resources={"capacity": CapacitySettings()})
