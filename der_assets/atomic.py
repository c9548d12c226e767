"""Write files whole or not at all: readers never see a half-written file.

Each writer gets a temporary sibling of its own (``.<name>.<pid>.<random>.tmp``), so two
threads or processes writing the same path at once never share, truncate or rename each
other's temporary file; the last rename wins and every reader sees one whole version.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from der_assets.errors import UserError


def temp_sibling(path: Path) -> Path:
    """A temporary name beside ``path`` that no other writer uses (hidden, ends in .tmp)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")


def write_atomic(path: str | Path, write: Callable[[Path], None], *, private: bool = False) -> Path:
    """Call `write(tmp)` on a temporary sibling, then rename it over `path`.

    private: the file holds credentials; it is the owner's alone (0600) from its first byte,
    whatever the umask, so no other account on the machine can read it even while it is written.
    """
    path = Path(path)
    tmp = temp_sibling(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if private:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        write(tmp)
        if private:
            os.chmod(tmp, 0o600)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot be written ({exc.strerror})") from None
    return path


def write_bytes_durable(path: Path, content: bytes) -> None:
    """``content`` at ``path``, fsynced before the atomic rename (for evidence that must survive a crash)."""
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_csv_atomic(frame, path: str | Path) -> Path:
    """A pandas frame as CSV with Unix line ends, atomically."""
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, lineterminator="\n"))
