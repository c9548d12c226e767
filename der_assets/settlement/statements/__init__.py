"""ISO settlement statements: land the raw bytes first, then parse; a rejected statement is quarantined.

Parsers (pure functions of bytes):
- `template.parse_statement`: der's STATEMENT.csv (DESIGN.md, baseline and settlement contract), the
  format reconciliation runs on.
- `isone_fcm.parse_fcm_report`: ISO-NE's FCM Supply Credit Summary Subaccount report (C/H/D records),
  with its internal arithmetic checked by `isone_fcm.check_arithmetic`.
- `pjm_billing.parse_billing`: PJM's monthly billing statement CSV (layout VERIFIED-SECONDARY), with
  `pjm_billing.check_totals`.

`land_and_parse(engine, content, endpoint=..., parse=...)` is the one way a statement enters: the
bytes are kept content-addressed in `raw_payloads` (source "statement") before anything reads them,
the receipt is marked `parsed` on success or `quarantined` with the one-line error, and the error is
re-raised. Nothing is written from a statement that did not parse.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine

from der_assets.connectors.landing import LandedPayload, land, mark
from der_assets.errors import UserError

STATEMENT_SOURCE = "statement"
T = TypeVar("T")


def one_line(exc: BaseException) -> str:
    """The error as the single line an operator sees (and the quarantine records)."""
    return " ".join(str(exc).split())


def land_and_parse(engine: Engine, content: bytes, *, endpoint: str, parse: Callable[[bytes], T],
                   received_at: dt.datetime | None = None, root: Path | None = None) -> tuple[LandedPayload, T]:
    """Land the raw statement, parse it, and record the outcome; a parse error quarantines it and propagates."""
    received_at = received_at or dt.datetime.now(dt.UTC)
    landed = land(engine, content, source=STATEMENT_SOURCE, endpoint=endpoint, received_at=received_at, root=root)
    try:
        parsed = parse(content)
    except (UserError, ValueError) as exc:
        mark(engine, landed.payload_id, "quarantined", one_line(exc))
        raise
    mark(engine, landed.payload_id, "parsed")
    return landed, parsed
