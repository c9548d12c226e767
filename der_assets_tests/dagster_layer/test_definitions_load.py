"""The code location loads the way `dagster dev` loads it: every name unique, every target resolvable."""

from __future__ import annotations

import dagster as dg

from der_assets.definitions import defs


def test_the_code_location_is_loadable():
    definitions = defs()
    dg.Definitions.validate_loadable(definitions)
    repo = definitions.get_repository_def()
    jobs = {job.name for job in repo.get_all_jobs()}
    assert {"dispatch", "settle_on_meters"} <= jobs
    assert {"dispatch_instruction_sensor", "ami_performance_sensor"} <= {s.name for s in repo.sensor_defs}
