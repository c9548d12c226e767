"""The Dagster instance on PostgreSQL, configured by dagster.postgres.yaml and DER_DAGSTER_PG_URL."""

from __future__ import annotations

import shutil

import dagster as dg
import pytest

from der_assets.defs.registry.assets import asset_registry
from der_assets.defs.resources import WarehouseResource
from der_assets.devserver import PROJECT_ROOT
from der_assets.registry.demo import demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file
from der_assets.warehouse import connect_warehouse
from der_assets.warehouse.engine import normalize_url


@pytest.mark.postgres
def test_runs_are_stored_in_postgres(postgres_url, tmp_path, monkeypatch):
    # a bare postgresql:// URL, as a user would give it; der dev normalizes it the same way
    monkeypatch.setenv("DER_DAGSTER_PG_URL", normalize_url(postgres_url))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(PROJECT_ROOT / "dagster.postgres.yaml", home / "dagster.yaml")
    engine = connect_warehouse(postgres_url)  # warehouse and instance share the database here
    import_registry_file(engine, write_registry_file(demo_fleet(4), tmp_path / "f.csv"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = dg.materialize([asset_registry], instance=instance,
                                resources={"warehouse": WarehouseResource(url=postgres_url)})
        assert result.success
        runs = instance.get_runs()
        assert [r.run_id for r in runs] == [result.run_id]
        latest = instance.get_latest_materialization_event(asset_registry.key)
        assert latest.asset_materialization.metadata["sites"].value == 4
