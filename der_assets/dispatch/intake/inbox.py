"""The file inbox: an operator (or an SFTP drop) puts DESIGN.md instruction JSON files in a folder.

Each ``*.json`` file is landed, then recorded, then moved: to ``done/`` when it was recorded
(including duplicates), to ``rejected/`` with ``<name>.error.txt`` (one line) beside it when it
was not. Moving is what makes a re-run safe; files are never deleted. Writers should write
``name.json.tmp`` and rename, because a file still being written is read as truncated JSON and
rejected. A file that cannot be read as an instruction for any reason other than the warehouse
or the folder itself (a poison file: nested thousands deep, a bug it trips) is rejected too, so
one bad file never blocks the files behind it. Files are taken in name order, so name them so
that modifications sort after the originals (a stale modification is still recorded correctly,
just reported as ``stale``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.intake.jsonbody import receive_json
from der_assets.dispatch.intake.store import Outcome

log = logging.getLogger(__name__)

# failures of the surroundings, not of the file: never a reason to reject it
_ENVIRONMENT = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError, sa.exc.TimeoutError,
                OSError)


def _move(path: Path, folder: Path) -> Path:
    """Move without overwriting: the same name dropped twice keeps both files."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    n = 1
    while target.exists():
        target = folder / f"{path.stem}.{n}{path.suffix}"
        n += 1
    path.replace(target)
    return target


def ingest_inbox(engine: Engine, folder: str | Path, *, resource_ids: Collection[str] | None = None) -> list[Outcome]:
    """Record every ``*.json`` in ``folder``; one outcome per file in name order (``rejected`` for bad ones)."""
    folder = Path(folder)
    outcomes: list[Outcome] = []
    for path in sorted(p for p in folder.glob("*.json") if p.is_file()):
        raw = path.read_bytes()
        try:
            instruction, outcome, _ = receive_json(engine, raw, channel="inbox", source=path.name,
                                                   received_at=dt.datetime.now(dt.timezone.utc),
                                                   resource_ids=resource_ids)
        except _ENVIRONMENT:
            raise  # the warehouse is unreachable or the disk failed: every file stays for the next scan
        except Exception as exc:  # DispatchInputError, or anything else this one file trips
            reason = str(exc) if isinstance(exc, DispatchInputError) else \
                f"{path.name}: cannot be read as an instruction ({type(exc).__name__}: {exc})"
            reason = reason.replace("\r", " ").replace("\n", " ")[:2000]
            moved = _move(path, folder / "rejected")
            moved.with_name(moved.name + ".error.txt").write_text(reason + "\n")
            log.warning("inbox file=%r rejected: %s", path.name, reason)
            outcomes.append(Outcome.REJECTED)
            continue
        _move(path, folder / "done")
        log.info("inbox file=%s instruction=%s modification=%s resource=%s outcome=%s", path.name,
                 instruction.instruction_id, instruction.modification, instruction.resource_id, outcome.value)
        outcomes.append(outcome)
    return outcomes
