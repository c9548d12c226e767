"""Where the project keeps its data, read from the environment.

Every path and URL the project uses comes from here, so a deployment changes environment
variables and never code.
"""

from __future__ import annotations

import os
from pathlib import Path

DER_HOME_ENV = "DER_HOME"
WAREHOUSE_URL_ENV = "DER_WAREHOUSE_URL"
DAGSTER_PG_URL_ENV = "DER_DAGSTER_PG_URL"
TWIN_READY_ENV = "DER_TWIN_READY_FILE"


def data_home() -> Path:
    """The project's data home: DER_HOME, else ~/.local/share/der_assets."""
    configured = os.environ.get(DER_HOME_ENV)
    if configured:
        return Path(configured).expanduser().resolve()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return (base / "der_assets").resolve()


def warehouse_url() -> str:
    """DER_WAREHOUSE_URL, else a SQLite file in the data home."""
    configured = os.environ.get(WAREHOUSE_URL_ENV)
    if configured:
        return configured
    return f"sqlite:///{data_home() / 'warehouse.sqlite'}"


def raw_payload_dir() -> Path:
    """Content-addressed raw payloads live here, outside the database."""
    return data_home() / "raw"


def twin_ready_file() -> Path:
    """The fleet twin's ready file: DER_TWIN_READY_FILE, else in the data home."""
    configured = os.environ.get(TWIN_READY_ENV)
    return Path(configured) if configured else data_home() / "twin_ready.json"
