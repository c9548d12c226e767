"""Bulk writes: COPY on PostgreSQL, batched inserts elsewhere, and idempotent window replaces."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pandas as pd
import sqlalchemy as sa


def bulk_insert(conn: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> int:
    """Insert every row of `frame` (columns named as the table's) inside the caller's transaction."""
    if frame.empty:
        return 0
    columns = [c.name for c in table.columns if c.name in frame.columns]
    if conn.dialect.name == "postgresql":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in frame[columns].itertuples(index=False, name=None):
            writer.writerow(["\\N" if _missing(v) else _pg_text(v) for v in row])
        buffer.seek(0)
        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.copy_expert(statement, buffer)
        except conn.dialect.dbapi.Error as exc:
            # the same exception type SQLAlchemy raises for an insert, whatever the path
            raise sa.exc.DBAPIError.instance(statement, None, exc, conn.dialect.dbapi.Error) from exc
        finally:
            cursor.close()
    else:
        records = [
            {c: (None if _missing(v) else _py(v)) for c, v in zip(columns, row, strict=True)}
            for row in frame[columns].itertuples(index=False, name=None)
        ]
        conn.execute(table.insert(), records)
    return len(frame)


def replace_window(
    conn: sa.Connection,
    table: sa.Table,
    frame: pd.DataFrame,
    *,
    time_column: str,
    start: dt.datetime,
    end: dt.datetime,
    where: dict[str, object] | None = None,
) -> tuple[int, int]:
    """Delete the rows in [start, end) (narrowed by `where`: a value, or a list for IN) and insert
    `frame`, in the caller's transaction.

    Run inside `engine.begin()`: a run killed mid-write rolls back and leaves the previous
    version of the window intact. Rows of `frame` outside the window are refused.
    """
    if not frame.empty:
        times = pd.to_datetime(frame[time_column], utc=True)
        if times.min() < pd.Timestamp(start) or times.max() >= pd.Timestamp(end):
            raise ValueError(f"rows outside the window [{start.isoformat()}, {end.isoformat()}) of {table.name}")
    condition = sa.and_(table.c[time_column] >= start, table.c[time_column] < end,
                        *[table.c[k].in_(v) if isinstance(v, (list, tuple, set)) else table.c[k] == v
                          for k, v in (where or {}).items()])
    deleted = conn.execute(table.delete().where(condition)).rowcount
    inserted = bulk_insert(conn, table, frame)
    return deleted, inserted


def _missing(value: object) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and value != value)


def _py(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _pg_text(value: object) -> str:
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
