"""Green Button (ESPI XML) files from the utility, picked up from an inbox directory. No parsing here.

The utility (or the twin) drops one file per meter and day, 24-48 h late. This module lists
the files not taken yet and reads their bytes; the ESPI parser does the rest.

Cursor: a high-water mark on (mtime_ns, name), plus the names already taken at that exact
mtime (several files written in one delivery can share it). It stays small however long
the inbox history grows. A file moved in with `mv` keeps its old mtime and would be missed:
deliver with a copy or an atomic write (as the twin does), which stamps the arrival time.
Temporary and hidden files (".name", "*.tmp", "*.part") are never listed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .payloads import Clock, RawPayload, as_utc, utc_now

SOURCE = "greenbutton"
ENDPOINT = "espi"
SUFFIXES = (".xml",)


@dataclass(frozen=True)
class InboxCursor:
    mtime_ns: int = -1
    names_at_mtime: frozenset = frozenset()

    def to_json(self) -> str:
        return json.dumps({"mtime_ns": self.mtime_ns, "names": sorted(self.names_at_mtime)})

    @classmethod
    def from_json(cls, text: Optional[str]) -> "InboxCursor":
        if not text:
            return cls()
        d = json.loads(text)
        return cls(int(d["mtime_ns"]), frozenset(d["names"]))


@dataclass(frozen=True)
class InboxFile:
    path: Path
    mtime_ns: int


def _visible(name: str) -> bool:
    return not name.startswith(".") and not name.endswith((".tmp", ".part")) and name.lower().endswith(SUFFIXES)


def list_files(inbox: Path) -> list[InboxFile]:
    """Every deliverable file in the inbox, oldest first (by mtime, then name)."""
    out = []
    with os.scandir(inbox) as it:
        for e in it:
            if e.is_file() and _visible(e.name):
                out.append(InboxFile(Path(e.path), e.stat().st_mtime_ns))
    return sorted(out, key=lambda f: (f.mtime_ns, f.path.name))


def select_new(files: list[InboxFile], last: InboxCursor) -> tuple[list[InboxFile], InboxCursor]:
    """Pure: the files after the cursor, and the cursor once they have been taken."""
    new = [f for f in files if f.mtime_ns > last.mtime_ns
           or (f.mtime_ns == last.mtime_ns and f.path.name not in last.names_at_mtime)]
    if not new:
        return [], last
    top = max(f.mtime_ns for f in new)
    names = {f.path.name for f in new if f.mtime_ns == top}
    if top == last.mtime_ns:
        names |= set(last.names_at_mtime)
    return new, InboxCursor(top, frozenset(names))


def meter_site(name: str, meters: Mapping[str, str]) -> Optional[str]:
    """The registry site whose meter id appears in the file name (longest id wins), else None."""
    hits = [m for m in meters if m and m in name]
    return meters[max(hits, key=len)] if hits else None


def pull(inbox: Path, last: InboxCursor, *, meters: Mapping[str, str], clock: Clock = utc_now,
         site_of: Optional[Callable[[Path], Optional[str]]] = None) -> tuple[list[RawPayload], InboxCursor]:
    """New inbox files as RawPayloads (site from the meter id in the name) and the next cursor.

    meters: meter_id -> site_id (from the registry). A file whose site cannot be told is
    still returned, with site_id None, so it is landed and an operator can see it.
    """
    files, nxt = select_new(list_files(Path(inbox)), last)
    out = []
    for f in files:
        content = f.path.read_bytes()
        site = site_of(f.path) if site_of is not None else meter_site(f.path.name, meters)
        out.append(RawPayload(content, SOURCE, ENDPOINT, site, None, None, as_utc(clock())))
    return out, nxt
