"""The warehouse: SQLAlchemy engine, the one schema, and upgrades."""

from der_assets.warehouse.engine import connect_warehouse, make_engine
from der_assets.warehouse.schema import SCHEMA_VERSION, metadata

__all__ = ["SCHEMA_VERSION", "connect_warehouse", "make_engine", "metadata"]
