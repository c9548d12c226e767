"""Batch readers: many bodies of one vendor endpoint decoded together into flat arrays.

normalize_day hands each reader every landed body of its (source, endpoint) for the day. A
reader returns the rows of the bodies it could read exactly as the one-body parser
(telemetry.parse_payload) reads them, and leaves every other body out of `taken`: those go
through the one-body parser, which reads them or says why not. A reader never raises for a bad
body; if it raises anyway, the whole endpoint goes one body at a time (a bug costs speed, not
the day).

Each vendor's reader lives in its own module here and registers in its READERS:
endpoint -> reader(bodies, context) -> Batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class BatchContext:
    """What a reader knows of each body besides its bytes (same length as the bodies)."""

    site_ids: Sequence[str]
    timezones: Sequence[str | None]  # the site's IANA zone from the registry; None when unknown
    received_ns: np.ndarray  # int64 UTC ns, when each body was received


@dataclass
class Part:
    """Rows of one channel, in segments; a segment is one body's run of rows of one interval length.

    seg_body indexes the bodies given to the reader (every one of them must be in Batch.taken).
    Rows are laid segment after segment. quality holds int8 codes into schema.QUALITIES.
    sorted_grid promises each segment strictly increasing and on its interval's grid.
    """

    channel: str
    seg_body: np.ndarray  # int64
    seg_rows: np.ndarray  # int64
    seg_interval_s: np.ndarray  # int64
    start_ns: np.ndarray  # int64 UTC ns, interval beginning
    value: np.ndarray  # float64, NaN = missing
    quality: np.ndarray  # int8
    sorted_grid: bool = False
    source: str | None = None  # the rows' canonical source when it is not the landed one (greenbutton -> ami)


@dataclass
class Batch:
    taken: np.ndarray  # int64 positions of the bodies read here
    parts: list[Part] = field(default_factory=list)


Reader = Callable[[Sequence[bytes], BatchContext], Batch]


def readers() -> dict[tuple[str, str], Reader]:
    """(landed source, endpoint) -> reader, gathered from the vendor modules."""
    from der_assets.telemetry.batch import enphase, espi, fronius, sma, solaredge

    out: dict[tuple[str, str], Reader] = {}
    for source, module in (("enphase", enphase), ("solaredge", solaredge), ("sma", sma), ("fronius", fronius),
                           ("greenbutton", espi)):
        out.update({(source, endpoint): reader for endpoint, reader in module.READERS.items()})
    return out
