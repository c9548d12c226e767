"""`service.run` (what `der simulate` runs) in a background thread on a clock the test all but holds still."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from pathlib import Path

import pandas as pd

from der_assets.simulator.service import ScaledClock, run

# A thousandth of real speed: the twin's time stays within a second of `now` for the whole test, and
# the platform (DER_CLOCK=twin) reads the same clock from the ready file.
CRAWL = 1e-3


@contextlib.contextmanager
def running_twin(registry: pd.DataFrame, home: Path, *, now: pd.Timestamp, history_days: int, faults=None):
    """Yields the ready file once the past's AMI backlog is delivered; stops the twin afterwards."""
    ready = home / "ready.json"
    clock = ScaledClock(now, CRAWL)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    errors: list[BaseException] = []

    def main() -> None:
        try:
            loop.run_until_complete(run(registry, ready_file=ready, inbox=home / "inbox", stop=stop,
                                        history_days=history_days, clock=clock, faults=faults))
        except BaseException as exc:  # noqa: BLE001 - surfaced to the test below
            errors.append(exc)

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    data: dict = {}
    while time.monotonic() < deadline and not errors:
        if ready.exists():
            data = json.loads(ready.read_text())
            if data["history"].get("ami_backlog") != "delivering":
                break
        time.sleep(0.05)
    try:
        assert not errors, errors
        assert data and data["history"].get("ami_backlog") != "delivering", "the twin did not come up"
        yield data, ready
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()
