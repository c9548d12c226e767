"""Enphase Enlighten v4 cloud bodies through parse_v4_many (telemetry/parsers/enphase.py)."""

from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np

from der_assets.telemetry.batch import Batch, BatchContext, Part
from der_assets.telemetry.parsers.enphase import V4_MANY, parse_v4_many


def read_v4(endpoint: str, bodies: Sequence[bytes], context: BatchContext) -> Batch:
    cols = parse_v4_many(endpoint, bodies, context.received_ns)
    n = len(cols.taken)
    parts = [Part(channel=channel, seg_body=cols.taken, seg_rows=cols.lengths,
                  seg_interval_s=np.full(n, cols.interval_s, dtype=np.int64), start_ns=cols.start_ns,
                  value=value, quality=quality, sorted_grid=True)
             for channel, (value, quality) in cols.channels.items()]
    return Batch(taken=cols.taken, parts=parts)


READERS = {endpoint: partial(read_v4, endpoint) for endpoint in V4_MANY}
