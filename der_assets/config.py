"""Where the project keeps its data, read from the environment.

Every path and URL the project uses comes from here, so a deployment changes environment
variables and never code.
"""

from __future__ import annotations

import os
from pathlib import Path

from der_assets.errors import UserError

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


COMMAND_LEAD_ENV = "DER_DISPATCH_LEAD_S"
DEFAULT_COMMAND_LEAD_S = 60.0  # the twin's 30 s latency plus half of a one-minute ramp


def command_lead_s() -> float:
    """Seconds before each dispatch interval its setpoints are sent (device latency and ramp)."""
    configured = os.environ.get(COMMAND_LEAD_ENV)
    if not configured:
        return DEFAULT_COMMAND_LEAD_S
    try:
        value = float(configured)
    except ValueError:
        raise UserError(f"{COMMAND_LEAD_ENV}={configured!r} is not a number of seconds") from None
    if not 0 <= value <= 600:
        raise UserError(f"{COMMAND_LEAD_ENV}={configured!r} must be between 0 and 600 seconds")
    return value
