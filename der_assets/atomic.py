"""Write files whole or not at all: readers never see a half-written file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from der_assets.errors import UserError


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary sibling, then rename it over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(tmp)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot be written ({exc.strerror})") from None
    return path


def write_csv_atomic(frame, path: str | Path) -> Path:
    """A pandas frame as CSV with Unix line ends, atomically."""
    return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False, lineterminator="\n"))
