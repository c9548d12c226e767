"""The settlement settings resource, configured from the environment."""

import dagster as dg

from der_assets.defs.settlement.assets import SettlementSettings


@dg.definitions
def settlement_resources() -> dg.Definitions:
    return dg.Definitions(resources={"settlement": SettlementSettings()})
