"""A SQLite-only warehouse for intake tests whose outcome no database can change (imported as a fixture)."""

from __future__ import annotations

import pytest


@pytest.fixture
def sqlite_engine(isolated_home):
    from der_assets.warehouse import connect_warehouse

    eng = connect_warehouse(f"sqlite:///{isolated_home / 'warehouse.sqlite'}")
    yield eng
    eng.dispose()
