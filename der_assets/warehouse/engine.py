"""Engines for the warehouse, on SQLite by default and PostgreSQL in production."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from der_assets.errors import UserError
from der_assets.warehouse.schema import SCHEMA_VERSION, metadata, schema_info

_upgraded: set[str] = set()


def normalize_url(url: str) -> str:
    """Pin the PostgreSQL driver to psycopg2.

    SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3, which is not installed;
    dagster-postgres ships psycopg2, so both use the same driver.
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """An engine for `url`, without touching the schema."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine) -> int:
    """Apply the schema; safe to run any number of times. Returns the schema version."""
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Serialize concurrent first-use upgrades from parallel runs.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(724201)"))
            metadata.create_all(conn)
            _add_missing_columns(conn)
            applied = conn.execute(sa.select(sa.func.max(schema_info.c.schema_version))).scalar()
            if applied is not None and applied > SCHEMA_VERSION:
                raise UserError(
                    f"warehouse {engine.url.render_as_string(hide_password=True)} has schema "
                    f"version {applied}, newer than this code's {SCHEMA_VERSION}; upgrade der_assets"
                )
            if applied is None or applied < SCHEMA_VERSION:
                conn.execute(
                    schema_info.insert().values(
                        schema_version=SCHEMA_VERSION, applied_at=dt.datetime.now(dt.UTC)
                    )
                )
    except sa.exc.OperationalError as exc:
        raise UserError(
            f"warehouse {engine.url.render_as_string(hide_password=True)} is unreachable: "
            f"{str(exc.orig).strip().splitlines()[0]}"
        ) from exc
    _upgraded.add(engine.url.render_as_string(hide_password=False))
    return SCHEMA_VERSION


def _add_missing_columns(conn: sa.Connection) -> None:
    """Add the nullable columns a newer schema has to tables an older one created (additive upgrades)."""
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:
                raise UserError(f"table {table.name} lacks non-nullable column {column.name}: not an additive upgrade")
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def connect_warehouse(url: str) -> Engine:
    """An engine with the schema applied (once per process and URL): first use sets it up."""
    engine = make_engine(url)
    if engine.url.render_as_string(hide_password=False) not in _upgraded:
        upgrade(engine)
    return engine


def render_ddl(dialect_name: str) -> str:
    """The CREATE statements for one dialect, as written to sql/schema.<dialect>.sql."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    dialect = {"postgresql": postgresql.dialect(), "sqlite": sqlite.dialect()}[dialect_name]
    parts = [
        f"-- Rendered from der_assets/warehouse/schema.py (schema version {SCHEMA_VERSION}) by `der db ddl`.",
        "-- Do not edit: change schema.py and re-render.",
        "",
    ]
    for table in metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";")
        parts.append("")
        for index in sorted(table.indexes, key=lambda i: i.name):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"
