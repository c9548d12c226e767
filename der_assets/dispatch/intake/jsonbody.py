"""The DESIGN.md instruction JSON as the webhook and the inbox receive it.

Validation is the dispatch contract's own ``parse_instruction``; this adds only what intake
needs on top: keys the contract defaults but a stored ISO instruction must state (``iso``
defaults to PJM in the contract, which would file an ISO-NE event under the wrong market), and
an optional ``"status": "cancelled"`` so a JSON sender can cancel (send the instruction again
with a higher ``modification``, as OpenADR does).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection

from sqlalchemy.engine import Engine

from der_assets.connectors.landing import LandedPayload, land, mark
from der_assets.dispatch.contract import INSTRUCTION_KEYS, Instruction, parse_instruction
from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.intake.limits import check_span
from der_assets.dispatch.intake.store import Outcome, StoredInstruction, check_storable, record_instruction

REQUIRED_FOR_INTAKE = ("iso", "resource_id", "issued_at")
STATUSES = ("active", "cancelled")


def instruction_from_json(
    raw: bytes, *, source: str, resource_ids: Collection[str] | None = None
) -> tuple[Instruction, bool]:
    """(instruction, cancelled) from raw JSON bytes, or a one-line ``DispatchInputError``."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DispatchInputError(source, f"not valid JSON ({exc})") from None
    except RecursionError:  # '[[[[...' thousands deep: the parser's stack, not a traceback
        raise DispatchInputError(source, "not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise DispatchInputError(source, "top level must be a JSON object")
    for key in (*INSTRUCTION_KEYS, *REQUIRED_FOR_INTAKE):  # one field per error, so a sender can fix it
        if data.get(key) is None:
            raise DispatchInputError(source, "is required", field=key)
    status = data.get("status", "active")
    if status not in STATUSES:
        raise DispatchInputError(source, f"{status!r} is not one of {', '.join(STATUSES)}", field="status")
    check_span(data, source=source)
    instruction = parse_instruction(data, source)
    check_storable(instruction, source=source, resource_ids=resource_ids)
    return instruction, status == "cancelled"


def receive_json(
    engine: Engine,
    raw: bytes,
    *,
    channel: str,
    source: str,
    received_at: dt.datetime,
    resource_ids: Collection[str] | None = None,
) -> tuple[Instruction, Outcome, LandedPayload]:
    """Land the bytes, then parse and record them: what every JSON channel (webhook, inbox, CLI) does.

    A refused payload is marked ``quarantined`` with its reason and the ``DispatchInputError``
    (``InstructionConflict`` among them) is raised; nothing reaches ``dispatch_instructions``.
    """
    landed = land(engine, raw, source="dispatch", endpoint=channel, received_at=received_at)
    try:
        try:
            instruction, cancelled = instruction_from_json(raw, source=source, resource_ids=resource_ids)
        except DispatchInputError:
            raise
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # a check the contract missed
            raise DispatchInputError(source, f"cannot be read as an instruction ({type(exc).__name__}: {exc})") \
                from None
        outcome = record_instruction(engine, instruction, channel=channel, raw=raw,
                                     received_at=received_at, cancelled=cancelled)
    except DispatchInputError as exc:
        mark(engine, landed.payload_id, "quarantined", str(exc))
        raise
    except Exception as exc:  # a database outage or a bug: the payload is not left `landed` when it can be marked
        try:
            mark(engine, landed.payload_id, "quarantined", f"not recorded: {type(exc).__name__}: {exc}"[:500])
        except Exception:  # the warehouse is gone; the caller reports the first error
            pass
        raise
    mark(engine, landed.payload_id, "parsed")
    return instruction, outcome, landed


def cancellation_json(current: StoredInstruction, *, issued_at: dt.datetime, reason: str | None = None) -> bytes:
    """The JSON body that cancels ``current``: the same schedule as the next modification, with
    ``"status": "cancelled"`` (the way any JSON sender cancels) and the operator's reason, which
    stays in the landed payload as the record of why."""
    body = {
        "instruction_id": current.instruction_id,
        "modification": current.modification + 1,
        "iso": current.iso,
        "resource_id": current.resource_id,
        "issued_at": issued_at.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        "start": current.start.isoformat().replace("+00:00", "Z"),
        "end": current.end.isoformat().replace("+00:00", "Z"),
        "interval_minutes": current.interval_minutes,
        "target_kw": list(current.target_kw),
        "status": "cancelled",
    }
    if reason:
        body["reason"] = reason
    return json.dumps(body).encode()
