"""The raw landing zone: every payload is kept, content-addressed, before anything parses it.

Bytes go to `$DER_HOME/raw/<sha[:2]>/<sha>` (written once; the same bytes received twice are
stored once) and each receipt is indexed in `raw_payloads` with its source, site, endpoint,
request window and received_at. A payload that fails to parse is marked `quarantined` with
its error; it is never deleted, so any partition can be rebuilt from raw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from der_assets import config
from der_assets.atomic import write_bytes_durable
from der_assets.warehouse.schema import raw_payloads

STATUSES = ("landed", "parsed", "quarantined")


@dataclass(frozen=True)
class LandedPayload:
    payload_id: int
    sha256: str
    path: Path


def payload_path(sha256: str, root: Path | None = None) -> Path:
    root = root or config.raw_payload_dir()
    return root / sha256[:2] / sha256


def write_blob(content: bytes, root: Path | None = None) -> tuple[str, Path]:
    """Store the bytes under their SHA-256 (atomically, once) and return (sha, path)."""
    sha = hashlib.sha256(content).hexdigest()
    path = payload_path(sha, root)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # a temporary file per writer: identical bytes landed at the same moment (webhook
        # retries) each write their own and rename it over the same content
        write_bytes_durable(path, content)
    return sha, path


def land(
    engine: Engine,
    content: bytes,
    *,
    source: str,
    endpoint: str,
    received_at: dt.datetime,
    site_id: str | None = None,
    window_start: dt.datetime | None = None,
    window_end: dt.datetime | None = None,
    root: Path | None = None,
) -> LandedPayload:
    """Keep the payload and index the receipt; call before parsing."""
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware (UTC)")
    sha, path = write_blob(content, root)
    with engine.begin() as conn:
        payload_id = conn.execute(
            raw_payloads.insert()
            .values(sha256=sha, n_bytes=len(content), source=source, site_id=site_id, endpoint=endpoint,
                    window_start=window_start, window_end=window_end, received_at=received_at, status="landed")
            .returning(raw_payloads.c.payload_id)
        ).scalar_one()
    return LandedPayload(payload_id, sha, path)


def mark(engine: Engine, payload_id: int, status: str, error: str | None = None) -> None:
    """Record how parsing went: `parsed`, or `quarantined` with the one-line error."""
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    with engine.begin() as conn:
        conn.execute(raw_payloads.update().where(raw_payloads.c.payload_id == payload_id)
                     .values(status=status, error=error))


def read_payload(sha256: str, root: Path | None = None) -> bytes:
    """The stored bytes, checked against their address."""
    content = payload_path(sha256, root).read_bytes()
    if hashlib.sha256(content).hexdigest() != sha256:
        raise ValueError(f"raw payload {sha256} is corrupt on disk")
    return content
