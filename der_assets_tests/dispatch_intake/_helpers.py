"""Small builders shared by the intake tests."""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from der_assets.dispatch.contract import parse_instruction
from der_assets.warehouse.schema import dispatch_instructions, raw_payloads

BASE = {
    "instruction_id": "PJM-2026-07-15-001",
    "modification": 0,
    "iso": "PJM",
    "resource_id": "AGG-1",
    "issued_at": "2026-07-15T17:40:00Z",
    "start": "2026-07-15T18:00:00Z",
    "end": "2026-07-15T20:00:00Z",
    "interval_minutes": 30,
    "target_kw": 2000,
}


def body(**overrides) -> dict:
    return {**BASE, **overrides}


def raw(**overrides) -> bytes:
    return json.dumps(body(**overrides)).encode()


def instruction(**overrides):
    return parse_instruction(body(**overrides))


def at(minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 7, 15, 17, 41, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=minute, seconds=second)


def statuses(engine) -> dict[tuple[str, int], str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(dispatch_instructions.c.instruction_id, dispatch_instructions.c.modification,
                                      dispatch_instructions.c.status))
        return {(r[0], r[1]): r[2] for r in rows}


def landed(engine) -> list[tuple[str, str, str | None]]:
    """(endpoint, status, error) of every dispatch payload in the landing index."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(raw_payloads.c.endpoint, raw_payloads.c.status, raw_payloads.c.error)
                            .where(raw_payloads.c.source == "dispatch").order_by(raw_payloads.c.payload_id))
        return [tuple(r) for r in rows]
