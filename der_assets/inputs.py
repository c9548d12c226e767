"""Reading an operator's input file: a mistake ends in one line naming the file, never a traceback."""

from __future__ import annotations

from pathlib import Path

from der_assets.errors import UserError


def read_input_bytes(path: str | Path, what: str) -> bytes:
    """The file's bytes; `what` names the kind of file for the message ("a registry file")."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not {what}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None


def require_file(path: str | Path) -> Path:
    """The path, if it is a file; else one line saying what it is instead."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a file")
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    return path
