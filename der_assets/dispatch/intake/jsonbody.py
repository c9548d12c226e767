"""The DESIGN.md instruction JSON as the webhook and the inbox receive it.

Validation is the dispatch contract's own ``parse_instruction``; this adds only what intake
needs on top: keys the contract defaults but a stored ISO instruction must state (``iso``
defaults to PJM in the contract, which would file an ISO-NE event under the wrong market), and
an optional ``"status": "cancelled"`` so a JSON sender can cancel (send the instruction again
with a higher ``modification``, as OpenADR does).
"""

from __future__ import annotations

import json
from collections.abc import Collection

from der_assets.dispatch.contract import INSTRUCTION_KEYS, Instruction, parse_instruction
from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.intake.store import check_storable

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
    if not isinstance(data, dict):
        raise DispatchInputError(source, "top level must be a JSON object")
    for key in (*INSTRUCTION_KEYS, *REQUIRED_FOR_INTAKE):  # one field per error, so a sender can fix it
        if data.get(key) is None:
            raise DispatchInputError(source, "is required", field=key)
    status = data.get("status", "active")
    if status not in STATUSES:
        raise DispatchInputError(source, f"{status!r} is not one of {', '.join(STATUSES)}", field="status")
    instruction = parse_instruction(data, source)
    check_storable(instruction, source=source, resource_ids=resource_ids)
    return instruction, status == "cancelled"
