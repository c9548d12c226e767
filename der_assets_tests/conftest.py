"""Shared fixtures: an isolated data home per test, and the warehouse on SQLite and PostgreSQL.

PostgreSQL tests run when DER_TEST_POSTGRES_URL is set (each test gets a fresh database). With
DER_REQUIRE_POSTGRES=1, as in CI, an unreachable server fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

PG_URL_ENV = "DER_TEST_POSTGRES_URL"
pytest_plugins = ["der_assets_tests.credential_log_guard"]  # no twin credential in any log of the run


def _admin_engine():
    from der_assets.warehouse.engine import normalize_url

    return sa.create_engine(normalize_url(os.environ[PG_URL_ENV]), isolation_level="AUTOCOMMIT")


def pytest_configure(config):
    if os.environ.get("DER_REQUIRE_POSTGRES") == "1":
        if not os.environ.get(PG_URL_ENV):
            pytest.exit(f"DER_REQUIRE_POSTGRES=1 but {PG_URL_ENV} is not set", returncode=3)
        try:
            with _admin_engine().connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.OperationalError as exc:
            pytest.exit(f"PostgreSQL required but unreachable at {os.environ[PG_URL_ENV]}: {exc.orig}", returncode=3)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Every test gets its own DER_HOME and the default (SQLite) warehouse inside it."""
    home = tmp_path / "der_home"
    monkeypatch.setenv("DER_HOME", str(home))
    monkeypatch.delenv("DER_WAREHOUSE_URL", raising=False)
    monkeypatch.delenv("DER_DAGSTER_PG_URL", raising=False)
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "false")
    return home


@pytest.fixture
def postgres_url():
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    if not os.environ.get(PG_URL_ENV):
        pytest.skip(f"{PG_URL_ENV} not set")
    name = f"der_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(os.environ[PG_URL_ENV]).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request, isolated_home):
    """The warehouse URL, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{isolated_home / 'warehouse.sqlite'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(warehouse_url):
    from der_assets.warehouse import connect_warehouse

    eng = connect_warehouse(warehouse_url)
    yield eng
    eng.dispose()
