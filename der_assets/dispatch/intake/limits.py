"""What a stored instruction may say: ranges that a real ISO dispatch instruction stays inside.

The dispatch contract checks that an instruction is well formed; these check that it is
plausible before it becomes a row that a dispatch run, a plot and a settlement will trust. Each
refusal is a one-line ``DispatchInputError`` naming the field, so the webhook answers 400 and the
landed payload is quarantined with the reason.

The bounds are this project's sanity thresholds, not ISO rule values: they sit far outside any
real event so that no legitimate instruction is refused, and close enough to stop a typo or an
attack from storing decades of one-minute intervals (a 229-byte request once stored an 84 MB row).

- ISO: one the registry enrolls sites in (``registry.columns.ISOS``), and for a resource the
  registry knows, that resource's ISO.
- target_kw: finite, at most ``MAX_TARGET_KW`` (10 GW, above the largest single capacity
  resource in any of the three ISOs; the demo VTN has the same bound).
- time: the event starts after ``EARLIEST_START`` and at most ``MAX_LEAD`` after it was received;
  it lasts at most ``MAX_DURATION`` and ``MAX_INTERVALS`` intervals; a first issue
  (modification 0, not a cancellation) is issued no later than its start (plus ``CLOCK_SKEW``) and
  not after it was received (plus ``CLOCK_SKEW``). A modification or a cancellation may be issued
  mid-event: that is how a running event is changed.
- ids: printable, no control characters (a CR or LF in an id forges log lines).
- modification: fits the 32-bit column on PostgreSQL as on SQLite.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
from collections.abc import Collection, Mapping

from der_assets.dispatch.contract import Instruction
from der_assets.dispatch.errors import DispatchInputError
from der_assets.registry.columns import ISOS

MAX_TARGET_KW = 1e7
MAX_MODIFICATION = 2**31 - 1  # dispatch_instructions.modification is INTEGER (32-bit on PostgreSQL)
EARLIEST_START = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
MAX_LEAD = dt.timedelta(days=400)
MAX_DURATION = dt.timedelta(days=7)
MAX_INTERVALS = 7 * 24 * 60  # a week of one-minute intervals
CLOCK_SKEW = dt.timedelta(minutes=5)


def _utc(value) -> dt.datetime:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def _stamp(value: dt.datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def printable(value: str, *, source: str, field: str) -> None:
    """Refuse an id carrying a control character (CR, LF, NUL, ...), naming its position."""
    for k, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise DispatchInputError(source, f"has the control character U+{ord(char):04X} at position {k + 1}; "
                                             "ids are printable text", field=field)


def check_span(data: Mapping, *, source: str) -> None:
    """Before the contract builds one target per interval: refuse a span of millions of intervals
    (a 20-year one-minute event) from its three raw fields, without allocating them."""
    try:
        start = dt.datetime.fromisoformat(str(data["start"]).replace("Z", "+00:00"))
        end = dt.datetime.fromisoformat(str(data["end"]).replace("Z", "+00:00"))
        minutes = float(data["interval_minutes"])
        span = end - start
    except (KeyError, ValueError, TypeError, OverflowError):
        return  # malformed: the contract names the field
    if minutes > 0 and span.total_seconds() / (minutes * 60) > MAX_INTERVALS:
        raise DispatchInputError(source, f"the event lasts {span / dt.timedelta(hours=1):g} h in "
                                         f"{minutes:g}-minute intervals; at most {MAX_INTERVALS} intervals and "
                                         f"{MAX_DURATION / dt.timedelta(hours=1):g} h are accepted", field="end")


def check_ranges(instruction: Instruction, *, source: str,
                 resource_isos: Mapping[str, Collection[str]] | None = None) -> None:
    """Everything judged from the instruction alone (and the registry's resource -> ISO, when given)."""
    for field in ("instruction_id", "iso", "resource_id"):
        value = getattr(instruction, field)
        if value is not None:
            printable(value, source=source, field=field)
    if instruction.iso not in ISOS:
        raise DispatchInputError(source, f"{instruction.iso!r} is not an ISO the registry enrolls in "
                                         f"({', '.join(ISOS)})", field="iso")
    if resource_isos is not None and instruction.resource_id in resource_isos:
        enrolled = resource_isos[instruction.resource_id]
        if instruction.iso not in enrolled:
            raise DispatchInputError(source, f"resource {instruction.resource_id} is enrolled in "
                                             f"{', '.join(sorted(enrolled))}, not {instruction.iso}", field="iso")
    if not 0 <= instruction.modification <= MAX_MODIFICATION:
        raise DispatchInputError(source, f"{instruction.modification} is over {MAX_MODIFICATION}, the largest "
                                         "modification number stored", field="modification")
    peak = max((float(v) for v in instruction.target_kw), default=0.0)
    if not math.isfinite(peak) or peak > MAX_TARGET_KW:
        raise DispatchInputError(source, f"{peak:g} kW is over {MAX_TARGET_KW:g} kW (10 GW), more than any "
                                         "capacity resource delivers", field="target_kw")
    start, end = _utc(instruction.start), _utc(instruction.end)
    if start < EARLIEST_START:
        raise DispatchInputError(source, f"{_stamp(start)} is before {_stamp(EARLIEST_START)}", field="start")
    if end - start > MAX_DURATION:
        raise DispatchInputError(source, f"the event lasts {(end - start) / dt.timedelta(hours=1):g} h; at most "
                                         f"{MAX_DURATION / dt.timedelta(hours=1):g} h is accepted", field="end")
    if len(instruction.target_kw) > MAX_INTERVALS:
        raise DispatchInputError(source, f"{len(instruction.target_kw)} intervals; at most {MAX_INTERVALS}",
                                 field="interval_minutes")


def check_times(instruction: Instruction, *, source: str, received_at: dt.datetime, cancelled: bool) -> None:
    """What needs the moment the instruction arrived: not years ahead, not issued after it began."""
    start, received_at = _utc(instruction.start), _utc(received_at)
    if start > received_at + MAX_LEAD:
        raise DispatchInputError(source, f"{_stamp(start)} is more than {MAX_LEAD.days} days after it was "
                                         f"received ({_stamp(received_at)})", field="start")
    if instruction.issued_at is None or cancelled or instruction.modification > 0:
        return
    issued = _utc(instruction.issued_at)
    if issued > start + CLOCK_SKEW:
        raise DispatchInputError(source, f"{_stamp(issued)} is after the event's start {_stamp(start)}; only a "
                                         "modification or a cancellation is issued mid-event", field="issued_at")
    if issued > received_at + CLOCK_SKEW:
        raise DispatchInputError(source, f"{_stamp(issued)} is after it was received ({_stamp(received_at)})",
                                 field="issued_at")
