"""The warehouse schema: applied on first use, safe to re-apply, rendered DDL kept in sql/."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from der_assets.errors import UserError
from der_assets.warehouse import SCHEMA_VERSION, metadata
from der_assets.warehouse.engine import make_engine, normalize_url, render_ddl, upgrade
from der_assets.warehouse.schema import schema_info

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


def test_first_use_creates_every_table(engine):
    assert set(sa.inspect(engine).get_table_names()) == set(metadata.tables)
    with engine.connect() as conn:
        assert conn.execute(sa.select(schema_info.c.schema_version)).scalars().all() == [SCHEMA_VERSION]


def test_upgrade_is_idempotent(engine):
    assert upgrade(engine) == SCHEMA_VERSION
    assert upgrade(engine) == SCHEMA_VERSION
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema_info)).scalar_one() == 1


def test_a_version_1_warehouse_gains_the_metered_performance_table(engine):
    from der_assets.warehouse.schema import event_performance_metered

    with engine.begin() as conn:
        event_performance_metered.drop(conn)
        conn.execute(schema_info.delete())
        conn.execute(schema_info.insert().values(schema_version=1, applied_at=sa.func.now()))
    assert "event_performance_metered" not in sa.inspect(engine).get_table_names()
    assert upgrade(engine) == SCHEMA_VERSION == 3
    assert "event_performance_metered" in sa.inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(schema_info.c.schema_version)).scalars()) == [1, 3]


def test_a_version_2_warehouse_gains_the_resource_column_and_keeps_its_sites(engine):
    """Version 3 adds registry_sites.resource_id: the column is added in place, rows survive as NULL."""
    from der_assets.warehouse.schema import registry_imports, registry_sites

    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE registry_sites"))
        old = sa.MetaData()
        cols = [sa.Column(c.name, c.type, nullable=c.nullable, primary_key=c.primary_key)
                for c in registry_sites.columns if c.name != "resource_id"]
        sa.Table("registry_sites", old, *cols).create(conn)
        conn.execute(registry_imports.insert().values(import_id=1, file_name="f", file_sha256="0" * 64,
                                                      imported_at=sa.func.now(), imported_by="t", rows_read=1,
                                                      versions_created=1))
        conn.execute(sa.text(
            "INSERT INTO registry_sites (version_id, site_id, subscriber_id, timezone, iso, interconnection_type, "
            "export_allowed, opt_out, site_status, valid_from, import_id, changed_by, change_summary) VALUES "
            "(1, 'S1', 'U1', 'America/New_York', 'PJM', 'nem', true, false, 'active', CURRENT_TIMESTAMP, 1, 't', 'new')"))
        conn.execute(schema_info.delete())
        conn.execute(schema_info.insert().values(schema_version=2, applied_at=sa.func.now()))
    assert "resource_id" not in {c["name"] for c in sa.inspect(engine).get_columns("registry_sites")}
    assert upgrade(engine) == SCHEMA_VERSION
    assert "resource_id" in {c["name"] for c in sa.inspect(engine).get_columns("registry_sites")}
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT site_id, resource_id FROM registry_sites")).all() == [("S1", None)]


def test_newer_schema_is_refused(engine):
    with engine.begin() as conn:
        conn.execute(schema_info.insert().values(schema_version=SCHEMA_VERSION + 1, applied_at=sa.func.now()))
    with pytest.raises(UserError, match=f"schema version {SCHEMA_VERSION + 1}, newer than this code's {SCHEMA_VERSION}"):
        upgrade(engine)


def test_current_version_is_unique_per_entity(engine):
    """The partial unique index stops two current versions of one device, on both databases."""
    from der_assets.warehouse.schema import registry_devices, registry_imports

    with engine.begin() as conn:
        conn.execute(registry_imports.insert().values(import_id=1, file_name="f", file_sha256="0" * 64,
                                                      imported_at=sa.func.now(), imported_by="t", rows_read=1,
                                                      versions_created=1))
    row = dict(device_id="D1", site_id="S1", device_type="battery", device_status="active",
               valid_from=sa.func.now(), import_id=1, changed_by="t", change_summary="created")
    with engine.begin() as conn:
        conn.execute(registry_devices.insert().values(**row))
    with pytest.raises(sa.exc.IntegrityError):
        with engine.begin() as conn:
            conn.execute(registry_devices.insert().values(**row))


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_sql_folder_matches_schema(dialect):
    assert (SQL_DIR / f"schema.{dialect}.sql").read_text() == render_ddl(dialect), "run `make ddl`"


def test_bare_postgresql_url_uses_psycopg2():
    assert normalize_url("postgresql://u@h:5432/d") == "postgresql+psycopg2://u@h:5432/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_unreachable_postgres_is_one_line():
    engine = make_engine("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(UserError) as info:
        upgrade(engine)
    message = str(info.value)
    assert message.startswith("warehouse postgresql+psycopg2://postgres@127.0.0.1:1/none")
    assert "is unreachable" in message and "\n" not in message
