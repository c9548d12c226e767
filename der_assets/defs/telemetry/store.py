"""Warehouse reads and writes for the telemetry assets (the Dagster layer's I/O, kept in one place)."""

import datetime as dt

import pandas as pd
import sqlalchemy as sa

from der_assets.connectors.landing import mark, read_payload
from der_assets.telemetry.daily import LandedPayload
from der_assets.review import merge_day
from der_assets.warehouse.bulk import replace_window
from der_assets.warehouse.schema import interval_telemetry, raw_payloads


def day_bounds(partition_key: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(partition_key, tz="UTC")
    return start, start + pd.Timedelta(days=1)


def landed_for_day(engine, sources: list[str], day_start: pd.Timestamp, day_end: pd.Timestamp) -> list[LandedPayload]:
    """Payloads of `sources` whose request window overlaps the day (or, without one, received that day)."""
    t = raw_payloads
    overlap = sa.or_(
        sa.and_(t.c.window_start.is_not(None), t.c.window_start < day_end.to_pydatetime(),
                t.c.window_end > day_start.to_pydatetime()),
        sa.and_(t.c.window_start.is_(None), t.c.received_at >= day_start.to_pydatetime(),
                t.c.received_at < day_end.to_pydatetime()),
    )
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.source.in_(sources), overlap).order_by(t.c.payload_id)).mappings().all()
    return [LandedPayload(payload_id=r["payload_id"], source=r["source"], endpoint=r["endpoint"], site_id=r["site_id"],
                          received_at=pd.Timestamp(r["received_at"]).tz_localize("UTC") if pd.Timestamp(r["received_at"]).tzinfo is None
                          else pd.Timestamp(r["received_at"]).tz_convert("UTC"),
                          content=read_payload(r["sha256"])) for r in rows]


def first_landed(engine, sources: list[str]) -> pd.DataFrame:
    """source, site_id, endpoint, first_received_at (UTC) over every payload ever landed, parsed or
    not: where collecting each site's endpoint began (telemetry.daily.collection_starts)."""
    t = raw_payloads
    query = (sa.select(t.c.source, t.c.site_id, t.c.endpoint, sa.func.min(t.c.received_at).label("first_received_at"))
             .where(t.c.source.in_(sources)).group_by(t.c.source, t.c.site_id, t.c.endpoint))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=["source", "site_id", "endpoint", "first_received_at"])
    frame["first_received_at"] = pd.to_datetime(frame["first_received_at"], utc=True)
    return frame


def write_day(engine, rows: pd.DataFrame, review: pd.DataFrame, *, day_start: pd.Timestamp, sources: list[str],
              origin: str, quarantined: list[dict], parsed_ids: list[int], table: sa.Table = interval_telemetry) -> None:
    """Replace the day's rows of these sources and merge the day's review items of this origin, atomically."""
    day_end = day_start + pd.Timedelta(days=1)
    now = dt.datetime.now(dt.UTC)
    items = review.assign(detail=None)
    extra = pd.DataFrame([{"site_id": q["site_id"], "source": q["source"], "issue": "quarantined_payload",
                           "detail": f"payload {q['payload_id']}: {q['error']}"} for q in quarantined])
    items = pd.concat([items, extra], ignore_index=True) if not extra.empty else items
    with engine.begin() as conn:
        replace_window(conn, table, rows, time_column="interval_start", start=day_start.to_pydatetime(),
                       end=day_end.to_pydatetime(), where={"source": sources})
        # items keep their id and an operator's resolution across re-runs (der_assets/review.py)
        merge_day(conn, items, day=day_start.date(), origin=origin, now=now)
    for q in quarantined:
        mark(engine, q["payload_id"], "quarantined", q["error"])
    for payload_id in parsed_ids:
        mark(engine, payload_id, "parsed")


def read_day(engine, day_start: pd.Timestamp, sources: list[str] | None = None, table: sa.Table = interval_telemetry) -> pd.DataFrame:
    day_end = day_start + pd.Timedelta(days=1)
    query = sa.select(table).where(table.c.interval_start >= day_start.to_pydatetime(),
                                   table.c.interval_start < day_end.to_pydatetime())
    if sources is not None:
        query = query.where(table.c.source.in_(sources))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in table.columns])
    for column in ("interval_start", "received_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
