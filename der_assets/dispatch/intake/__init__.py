"""Instruction intake: ISO/utility dispatch instructions from OpenADR 2.0b, a signed webhook and a
file inbox, each landed raw and then recorded in ``dispatch_instructions`` (pure Python + I/O,
no Dagster; the dispatch sensor reads ``pending``/``latest``).
"""

from der_assets.dispatch.intake.store import (
    InstructionConflict,
    Outcome,
    StoredInstruction,
    latest,
    pending,
    record_instruction,
)

__all__ = ["InstructionConflict", "Outcome", "StoredInstruction", "latest", "pending", "record_instruction"]
