"""Reads that several domains share: interval rows over time spans, and dispatch history.

Capacity reads only the event window of each sample day, dispatch the last hours of SoC and
a week of history, settlement a month of meter rows: one query shape serves all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from der_assets.warehouse.schema import dispatch_commands, dispatch_instructions, interval_telemetry

SPANS_PER_QUERY = 64


def merge_spans(spans: Iterable[tuple[pd.Timestamp, pd.Timestamp]]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end) spans sorted, with overlapping or touching ones merged."""
    merged: list[list[pd.Timestamp]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def interval_rows(engine: Engine, spans: Sequence[tuple[pd.Timestamp, pd.Timestamp]], *,
                  channels: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                  table: sa.Table = interval_telemetry) -> pd.DataFrame:
    """Canonical rows whose interval_start falls in any of the UTC [start, end) spans."""
    t = table
    frames = []
    spans = merge_spans(spans)
    for i in range(0, len(spans), SPANS_PER_QUERY):
        chunk = spans[i:i + SPANS_PER_QUERY]
        query = sa.select(t).where(sa.or_(*[sa.and_(t.c.interval_start >= a.to_pydatetime(),
                                                     t.c.interval_start < b.to_pydatetime()) for a, b in chunk]))
        if channels is not None:
            query = query.where(t.c.channel.in_(list(channels)))
        if sources is not None:
            query = query.where(t.c.source.in_(list(sources)))
        with engine.connect() as conn:
            frames.append(pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in t.columns]))
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[c.name for c in t.columns])
    for column in ("interval_start", "received_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def command_history(engine: Engine, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Every device command sent in [start, end): battery_id, site_id, instruction_id, ok, sent_at."""
    c = dispatch_commands
    query = sa.select(c.c.battery_id, c.c.site_id, c.c.instruction_id, c.c.ok, c.c.sent_at, c.c.setpoint_kw).where(
        c.c.sent_at >= start.to_pydatetime(), c.c.sent_at < end.to_pydatetime())
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(),
                             columns=["battery_id", "site_id", "instruction_id", "ok", "sent_at", "setpoint_kw"])
    frame["sent_at"] = pd.to_datetime(frame["sent_at"], utc=True)
    return frame


def instructions_between(engine: Engine, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The latest modification of every instruction whose event starts in [start, end), cancelled ones included."""
    d = dispatch_instructions
    query = sa.select(d).where(d.c.start >= start.to_pydatetime(), d.c.start < end.to_pydatetime())
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in d.columns])
    for column in ("issued_at", "start", "end", "received_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return (frame.sort_values(["instruction_id", "modification"]).drop_duplicates("instruction_id", keep="last")
            .reset_index(drop=True))


def capacity_site_days_for(engine: Engine, iso: str, delivery_year: str | None = None) -> tuple[pd.DataFrame, dict | None]:
    """Stored site-days of an ISO's capacity estimate and that estimate's summary JSON.

    Without `delivery_year`, the ISO's most recently computed estimate; ({}, None) when there is none.
    """
    import json

    from der_assets.warehouse.schema import capacity_estimates, capacity_site_days

    e, d = capacity_estimates, capacity_site_days
    query = sa.select(e).where(e.c.iso == iso)
    if delivery_year is not None:
        query = query.where(e.c.delivery_year == delivery_year)
    with engine.connect() as conn:
        latest = conn.execute(query.order_by(e.c.computed_at.desc()).limit(1)).mappings().first()
        if latest is None:
            return pd.DataFrame(columns=[c.name for c in d.columns]), None
        rows = pd.DataFrame(conn.execute(sa.select(d).where(d.c.iso == iso, d.c.delivery_year == latest["delivery_year"]))
                            .mappings().all(), columns=[c.name for c in d.columns])
    return rows, json.loads(latest["summary_json"])
