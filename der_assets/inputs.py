"""Reading an operator's input file: a mistake ends in one line naming the file, never a traceback."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from der_assets.errors import UserError


STILL_WRITING = "it may still be being written: write it under another name and rename it into place"


def read_input_bytes(path: str | Path, what: str) -> bytes:
    """The file's bytes; `what` names the kind of file for the message ("a registry file").

    A file whose size or modification time moves while it is read is still being written, and is
    refused rather than taken as complete (a drop folder's writer renames a finished file into place).
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            before = os.fstat(f.fileno())
            content = _read_all(f)
            after = os.fstat(f.fileno())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISREG(after.st_mode) and ((before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns)
                                        or len(content) != after.st_size):
        raise UserError(f"{path}: changed while it was read ({before.st_size} bytes, then {after.st_size}); "
                        f"{STILL_WRITING}")
    return content


def _read_all(f) -> bytes:
    return f.read()


def require_file(path: str | Path) -> Path:
    """The path, if it is a file; else one line saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return path
