"""`der instruction`: submit, list, show and cancel dispatch instructions, through the intake's store."""

from __future__ import annotations

import json
import sys

import click

from der_assets.cli.base import cli, engine_for, url_option
from der_assets.errors import UserError, ValidationFailed

LIST_COLUMNS = ("instruction_id", "modification", "status", "iso", "resource_id", "start", "end",
                "interval_minutes", "max_kw", "channel", "received_at")


@cli.group()
def instruction() -> None:
    """ISO/utility dispatch instructions (the same store the webhook, inbox and VEN write)."""


def _stamp(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _as_dict(row) -> dict:
    return {"instruction_id": row.instruction_id, "modification": row.modification, "status": row.status,
            "iso": row.iso, "resource_id": row.resource_id, "issued_at": _stamp(row.issued_at),
            "start": _stamp(row.start), "end": _stamp(row.end), "interval_minutes": row.interval_minutes,
            "target_kw": list(row.target_kw), "max_kw": max(row.target_kw), "channel": row.channel,
            "received_at": _stamp(row.received_at), "raw_sha256": row.raw_sha256}


def _receive(engine, raw: bytes, source: str, *, check_registry: bool = True):
    """Land, check against the registry's resources, record; a refusal exits 1 naming why."""
    import datetime as dt

    from der_assets.dispatch.errors import DispatchInputError
    from der_assets.dispatch.intake.jsonbody import receive_json
    from der_assets.dispatch.intake.resources import registry_resources

    try:
        return receive_json(engine, raw, channel="cli", source=source, received_at=dt.datetime.now(dt.timezone.utc),
                            resource_ids=registry_resources(engine) if check_registry else None)
    except DispatchInputError as exc:
        raise ValidationFailed(f"instruction refused, nothing stored: {exc}", []) from None


@instruction.command("submit")
@click.argument("file", type=click.Path(allow_dash=True))
@url_option
def submit(file: str, url) -> None:
    """Record an instruction JSON file (dispatch contract, docs/design.md; `-` reads stdin).

    The bytes are landed first, like every channel's. An instruction for a resource the
    registry does not have, or a malformed one, exits 1 with the reason and stores nothing.
    """
    if file == "-":
        raw, source = sys.stdin.buffer.read(), "stdin"
    else:
        from der_assets.inputs import read_input_bytes

        raw, source = read_input_bytes(file, "an instruction JSON file"), click.format_filename(file)
    ins, outcome, landed = _receive(engine_for(url), raw, source)
    click.echo(f"instruction {ins.instruction_id} modification {ins.modification} ({ins.resource_id}): "
               f"{outcome.value}")


@instruction.command("list")
@click.option("--status", type=click.Choice(["active", "cancelled"]), default=None,
              help="Only instructions whose current modification has this status.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
@url_option
def list_cmd(status, limit, as_json, url) -> None:
    """Every instruction's current modification, most recently received first."""
    from der_assets.dispatch.intake.store import current

    rows = [_as_dict(r) for r in current(engine_for(url), status=status, limit=limit)]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo("no instructions" + (f" with status {status}" if status else ""), err=True)
        return
    table = [[str(r[c]) if not isinstance(r[c], float) else f"{r[c]:g}" for c in LIST_COLUMNS] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(LIST_COLUMNS)]
    for line in ([list(LIST_COLUMNS)] + table):
        click.echo("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())


def _reason(row) -> str | None:
    """The operator's reason, for a cancellation made by `der instruction cancel` (kept in its landed bytes)."""
    if row.channel != "cli" or row.status == "active" or row.raw_sha256 is None:
        return None
    from der_assets.connectors.landing import read_payload

    try:
        return json.loads(read_payload(row.raw_sha256)).get("reason")
    except (OSError, ValueError, AttributeError):
        return None


@instruction.command("show")
@click.argument("instruction_id")
@click.option("--json", "as_json", is_flag=True, help="JSON: the current row and every modification.")
@url_option
def show(instruction_id: str, as_json: bool, url) -> None:
    """One instruction: its current modification, then every modification received."""
    from der_assets.dispatch.intake.store import history

    rows = history(engine_for(url), instruction_id)
    if not rows:
        raise UserError(f"no instruction {instruction_id!r} in the store (`der instruction list` shows them)")
    versions = [{**_as_dict(r), "reason": _reason(r)} for r in rows]
    current = max(versions, key=lambda v: v["modification"])
    if as_json:
        click.echo(json.dumps({"current": current, "modifications": versions}, indent=1))
        return
    for key in ("instruction_id", "status", "modification", "iso", "resource_id", "issued_at", "start", "end",
                "interval_minutes", "target_kw", "channel", "received_at", "raw_sha256"):
        click.echo(f"{key:17} {current[key]}")
    click.echo("modifications:")
    for v in versions:
        why = f"  reason: {v['reason']}" if v["reason"] else ""
        click.echo(f"  {v['modification']:>3}  {v['status']:<10} {v['channel']:<7} received {v['received_at']}  "
                   f"max {v['max_kw']:g} kW{why}")


@instruction.command("cancel")
@click.argument("instruction_id")
@click.option("--reason", default=None, help="Why; kept with the cancellation's landed payload.")
@url_option
def cancel(instruction_id: str, reason: str | None, url) -> None:
    """Cancel an instruction: a new modification with status cancelled, through the same store.

    The dispatch sensor sees it within seconds and the running event releases its batteries.
    """
    import datetime as dt

    from der_assets.dispatch.intake.jsonbody import cancellation_json
    from der_assets.dispatch.intake.store import latest

    engine = engine_for(url)
    now = latest(engine, instruction_id)
    if now is None:
        raise UserError(f"no instruction {instruction_id!r} in the store (`der instruction list` shows them)")
    if now.status == "cancelled":
        raise ValidationFailed(f"instruction {instruction_id} is already cancelled (modification {now.modification})", [])
    raw = cancellation_json(now, issued_at=dt.datetime.now(dt.timezone.utc), reason=reason)
    # a stored instruction can always be cancelled, even after its resource left the registry
    ins, outcome, _ = _receive(engine, raw, f"cancel {instruction_id}", check_registry=False)
    click.echo(f"instruction {ins.instruction_id} modification {ins.modification}: {outcome.value}")
