"""The durable instruction store: every instruction and each of its modifications, kept.

Table ``dispatch_instructions`` (warehouse/schema.py), one row per (instruction_id,
modification). The invariant the dispatch sensor relies on: for each instruction_id, the row
with the highest modification is ``active`` or ``cancelled`` and every older row is
``superseded``. ``record_instruction`` keeps that invariant in one transaction per call, holding
a per-instruction lock so two channels delivering the same instruction at once cannot both
think they were first.

Outcomes, and why each exists:

- ``new``: first sight of the id; ``modified``: a higher modification replaced the current one.
- ``cancelled``: the id's current row is now ``cancelled``, either as a new (higher)
  modification (OpenADR bumps modificationNumber on cancel) or, leniently, as the same
  modification re-sent with a cancel flag (the row is updated in place; its ``received_at`` and
  ``raw_sha256`` move to the cancellation so the sensor's cursor sees it again).
- ``duplicate``: this (id, modification) is already stored the same way; nothing changes.
- ``stale``: an older modification arrived after a newer one (webhook retries, inbox order).
  It is kept as ``superseded`` so the record is complete, and it changes nothing current.
- ``rejected``: never returned here; the HTTP and inbox edges use it for payloads that failed
  validation, so a caller gets one outcome per payload.

The same (id, modification) with a different schedule is a protocol violation, not a duplicate:
it raises ``InstructionConflict`` and stores nothing, so a changed instruction is never dropped
silently.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from der_assets.dispatch.contract import Instruction, parse_instruction
from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.intake.limits import check_ranges, check_times
from der_assets.warehouse.schema import dispatch_instructions as T

CHANNELS = ("openadr", "http", "inbox", "cli")
_UTC = dt.timezone.utc
# Namespace for the per-instruction PostgreSQL advisory lock (engine.py uses 724201).
_PG_LOCK_NAMESPACE = 724202


class Outcome(str, enum.Enum):
    NEW = "new"
    MODIFIED = "modified"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"
    STALE = "stale"
    REJECTED = "rejected"


class InstructionConflict(DispatchInputError):
    """The same (instruction_id, modification) was received with a different schedule."""


@dataclass(frozen=True)
class StoredInstruction:
    """One row of ``dispatch_instructions``, times as UTC-aware datetimes."""

    instruction_id: str
    modification: int
    iso: str
    resource_id: str
    issued_at: dt.datetime
    start: dt.datetime
    end: dt.datetime
    interval_minutes: int
    target_kw: tuple[float, ...]
    status: str
    channel: str
    received_at: dt.datetime
    raw_sha256: str | None

    @property
    def cursor(self) -> str:
        """Opaque position of this row in received order, for ``pending(engine, cursor)``."""
        return json.dumps([self.received_at.isoformat(), self.instruction_id, self.modification])

    def to_instruction(self) -> Instruction:
        """Back to a validated ``Instruction`` (through the same contract check as any input)."""
        return parse_instruction(
            {
                "instruction_id": self.instruction_id,
                "modification": self.modification,
                "iso": self.iso,
                "resource_id": self.resource_id,
                "issued_at": self.issued_at.isoformat(),
                "start": self.start.isoformat(),
                "end": self.end.isoformat(),
                "interval_minutes": self.interval_minutes,
                "target_kw": list(self.target_kw),
            },
            file="dispatch_instructions",
        )


# --------------------------------------------------------------------------------------------
# validation the table needs beyond the file contract


def check_storable(instruction: Instruction, *, source: str, resource_ids: Collection[str] | None = None) -> None:
    """Raise ``DispatchInputError`` for what the contract allows but the store cannot keep.

    The contract treats resource_id and issued_at as optional; a stored ISO instruction needs
    both (settlement measures response from issue time). Lengths match the column sizes so
    PostgreSQL never turns a long id into a 500.
    """
    if instruction.resource_id is None:
        raise DispatchInputError(source, "is required to store an instruction", field="resource_id")
    if instruction.issued_at is None:
        raise DispatchInputError(source, "is required to store an instruction", field="issued_at")
    for field, value in (("instruction_id", instruction.instruction_id), ("iso", instruction.iso),
                         ("resource_id", instruction.resource_id)):
        limit = T.c[field].type.length
        if len(value) > limit:
            raise DispatchInputError(source, f"is {len(value)} characters; at most {limit} are stored", field=field)
    check_ranges(instruction, source=source, resource_isos=getattr(resource_ids, "isos", None))
    if resource_ids is not None and instruction.resource_id not in resource_ids:
        raise DispatchInputError(source, unknown_resource(instruction.resource_id, resource_ids), field="resource_id")


MAX_KNOWN_SHOWN = 20


def unknown_resource(resource_id: str, known: Collection[str]) -> str:
    """The reason an instruction for an unregistered resource is refused, naming what is registered."""
    names = sorted(known)
    if not names:
        return f"resource {resource_id} is not in the registry; the registry has no sites (der registry import FILE)"
    shown = ", ".join(names[:MAX_KNOWN_SHOWN])
    more = f" and {len(names) - MAX_KNOWN_SHOWN} more" if len(names) > MAX_KNOWN_SHOWN else ""
    return f"resource {resource_id} is not in the registry; known: {shown}{more}"


# --------------------------------------------------------------------------------------------
# time handling: SQLite drops offsets, so everything is bound as UTC and read back as UTC


def _utc(value) -> dt.datetime:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        return value.replace(tzinfo=_UTC)
    return value.astimezone(_UTC)


def _bind_time(conn: Connection, value) -> dt.datetime:
    value = _utc(value)
    return value.replace(tzinfo=None) if conn.dialect.name == "sqlite" else value


def _row(row) -> StoredInstruction:
    target = json.loads(row.target_kw)
    return StoredInstruction(
        instruction_id=row.instruction_id,
        modification=row.modification,
        iso=row.iso,
        resource_id=row.resource_id,
        issued_at=_utc(row.issued_at),
        start=_utc(row.start),
        end=_utc(row.end),
        interval_minutes=row.interval_minutes,
        target_kw=tuple(float(v) for v in (target if isinstance(target, list) else [target])),
        status=row.status,
        channel=row.channel,
        received_at=_utc(row.received_at),
        raw_sha256=row.raw_sha256,
    )


def _begin_locked(conn: Connection, instruction_id: str) -> None:
    """Start the write transaction holding a lock that serializes writers of this id.

    SQLite: BEGIN IMMEDIATE takes the write lock up front (a deferred transaction that reads
    then writes can fail with SQLITE_BUSY instead of waiting). PostgreSQL: a transaction-scoped
    advisory lock on the id, because row locks cannot lock rows that do not exist yet.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:ns, hashtext(:key))"),
                     {"ns": _PG_LOCK_NAMESPACE, "key": instruction_id})


def _same_schedule(row: StoredInstruction, values: dict) -> bool:
    return (
        row.iso == values["iso"]
        and row.resource_id == values["resource_id"]
        and row.start == values["_start_utc"]
        and row.end == values["_end_utc"]
        and row.interval_minutes == values["interval_minutes"]
        and list(row.target_kw) == json.loads(values["target_kw"])
    )


def record_instruction(
    engine: Engine,
    instruction: Instruction,
    *,
    channel: str,
    raw: bytes,
    received_at: dt.datetime,
    cancelled: bool = False,
) -> Outcome:
    """Store one received instruction (or its cancellation); see the module docstring for outcomes.

    ``raw`` is the payload as received (already landed by the caller); only its SHA-256 is kept
    here, which is the landing zone's address for it.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {CHANNELS}, not {channel!r}")
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware (UTC)")
    check_storable(instruction, source=channel)
    check_times(instruction, source=channel, received_at=received_at, cancelled=cancelled)
    iid = instruction.instruction_id
    values = {
        "iso": instruction.iso,
        "resource_id": instruction.resource_id,
        "interval_minutes": instruction.interval_minutes,
        "target_kw": json.dumps([float(v) for v in instruction.target_kw]),
        "channel": channel,
        "raw_sha256": hashlib.sha256(raw).hexdigest(),
        "_start_utc": _utc(instruction.start),
        "_end_utc": _utc(instruction.end),
    }
    with engine.connect() as conn:
        _begin_locked(conn, iid)
        try:
            outcome = _record_locked(conn, instruction, values, received_at, cancelled)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
    return outcome


def _record_locked(conn: Connection, instruction: Instruction, values: dict, received_at, cancelled: bool) -> Outcome:
    iid, mod = instruction.instruction_id, instruction.modification
    existing = {r.modification: r for r in map(_row, conn.execute(sa.select(T).where(T.c.instruction_id == iid)))}
    newest = max(existing, default=None)
    if cancelled and newest is None:
        raise DispatchInputError(values["channel"], f"cancels instruction {iid}, which was never received; "
                                                    "nothing to cancel", field="instruction_id")
    stamp = {"received_at": _bind_time(conn, received_at), "raw_sha256": values["raw_sha256"], "channel": values["channel"]}

    if mod in existing:
        row = existing[mod]
        if not _same_schedule(row, values):
            raise InstructionConflict(
                values["channel"],
                f"instruction {iid} modification {mod} was already received with a different schedule "
                f"({row.channel}, {row.received_at.isoformat()}); a change needs a higher modification",
                field="modification",
            )
        if cancelled and row.status != "cancelled" and mod == newest:
            conn.execute(T.update().where((T.c.instruction_id == iid) & (T.c.modification == mod))
                         .values(status="cancelled", **stamp))
            return Outcome.CANCELLED
        return Outcome.DUPLICATE if mod == newest or not cancelled else Outcome.STALE

    is_stale = newest is not None and mod < newest
    status = "superseded" if is_stale else ("cancelled" if cancelled else "active")
    conn.execute(T.insert().values(
        instruction_id=iid,
        modification=mod,
        iso=values["iso"],
        resource_id=values["resource_id"],
        issued_at=_bind_time(conn, instruction.issued_at),
        start=_bind_time(conn, instruction.start),
        end=_bind_time(conn, instruction.end),
        interval_minutes=values["interval_minutes"],
        target_kw=values["target_kw"],
        status=status,
        **stamp,
    ))
    if is_stale:
        return Outcome.STALE
    if existing:
        conn.execute(T.update()
                     .where((T.c.instruction_id == iid) & (T.c.modification < mod) & (T.c.status != "superseded"))
                     .values(status="superseded"))
    if cancelled:
        return Outcome.CANCELLED
    return Outcome.MODIFIED if existing else Outcome.NEW


# --------------------------------------------------------------------------------------------
# reads for the dispatch sensor


def pending(engine: Engine, since_cursor: str | None = None, *, limit: int = 1000,
            lookback: dt.timedelta = dt.timedelta(0)) -> list[StoredInstruction]:
    """Rows received after ``since_cursor``, oldest first, in (received_at, instruction_id, modification) order.

    Pass the ``cursor`` of the last row you handled next time; ``None`` starts from the beginning.
    received_at is stamped when a payload arrives, before its transaction commits, so a slow
    writer can commit a row that sorts before a cursor already handed out. ``lookback`` also
    returns rows received up to that long before the cursor, so such a row is still seen; the
    caller must treat rows idempotently (the sensor keys runs by instruction, modification and
    status, and Dagster runs a run key once) and must not move its cursor backwards
    (``later_cursor``).
    """
    query = sa.select(T).order_by(T.c.received_at, T.c.instruction_id, T.c.modification).limit(limit)
    with engine.connect() as conn:
        if since_cursor is not None:
            try:
                received_at, iid, mod = json.loads(since_cursor)
                at = _bind_time(conn, dt.datetime.fromisoformat(received_at))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"not a dispatch instruction cursor: {since_cursor!r}") from exc
            if lookback > dt.timedelta(0):
                query = query.where(T.c.received_at > sa.literal(at - lookback, T.c.received_at.type))
            else:
                query = query.where(sa.tuple_(T.c.received_at, T.c.instruction_id, T.c.modification)
                                    > sa.tuple_(sa.literal(at, T.c.received_at.type), sa.literal(iid),
                                                sa.literal(int(mod))))
        return [_row(r) for r in conn.execute(query)]


def later_cursor(a: str | None, b: str | None) -> str | None:
    """The later of two cursors from ``pending`` (None is the earliest)."""
    if a is None or b is None:
        return b if a is None else a

    def key(cursor: str):
        received_at, iid, mod = json.loads(cursor)
        return _utc(dt.datetime.fromisoformat(received_at)), iid, int(mod)

    return a if key(a) >= key(b) else b


def latest(engine: Engine, instruction_id: str) -> StoredInstruction | None:
    """The current row of an instruction (its highest modification), or None if never received."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(T).where(T.c.instruction_id == instruction_id)
                           .order_by(T.c.modification.desc()).limit(1)).first()
    return _row(row) if row is not None else None


def current(engine: Engine, *, status: str | None = None, limit: int | None = None) -> list[StoredInstruction]:
    """The current row (highest modification) of every instruction, most recently received first;
    ``status`` keeps only those whose current row has it (active or cancelled)."""
    newest = (sa.select(T.c.instruction_id, sa.func.max(T.c.modification).label("modification"))
              .group_by(T.c.instruction_id).subquery())
    query = (sa.select(T).join(newest, (T.c.instruction_id == newest.c.instruction_id)
                               & (T.c.modification == newest.c.modification))
             .order_by(T.c.received_at.desc(), T.c.instruction_id))
    if status is not None:
        query = query.where(T.c.status == status)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query)]


def history(engine: Engine, instruction_id: str) -> list[StoredInstruction]:
    """Every stored modification of an instruction, oldest first (for audit and tests)."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T).where(T.c.instruction_id == instruction_id).order_by(T.c.modification))
        return [_row(r) for r in rows]


def overlapping(engine: Engine, start: dt.datetime, end: dt.datetime, *, pad: dt.timedelta = dt.timedelta(0)) -> list[StoredInstruction]:
    """Active instructions (current modification) whose event, widened by ``pad`` on both sides,
    overlaps [start, end): the events a newly arrived day of meter data can settle."""
    with engine.connect() as conn:
        lo, hi = _bind_time(conn, start - pad), _bind_time(conn, end + pad)
        rows = conn.execute(sa.select(T).where(T.c.status == "active", T.c.start < hi, T.c.end > lo)
                            .order_by(T.c.start, T.c.instruction_id)).all()
    return [_row(r) for r in rows]
