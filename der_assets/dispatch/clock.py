"""The clock dispatch runs on: the wall clock, the fleet twin's when it replays faster, or a
stepped clock a test moves.

An ISO event is carried out interval by interval in real time. When the twin replays history
at N times real speed (the demo), dispatch must follow the twin's time, which its ready file
describes: twin time = sim_epoch + (wall - wall_epoch_s) * speed. A test cannot race that
against a busy CPU, so it shares a `SteppedClock` between the twin and dispatch instead: time
passes only when dispatch sleeps or the test moves it, and an event comes out the same under
any load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import pandas as pd


@dataclass(frozen=True)
class DispatchClock:
    sim_epoch: pd.Timestamp | None = None
    wall_epoch_s: float = 0.0
    speed: float = 1.0

    @classmethod
    def wall(cls) -> DispatchClock:
        return cls()

    @classmethod
    def from_ready(cls, ready: dict) -> DispatchClock:
        clock = ready.get("clock") or {}
        if "sim_epoch" not in clock:
            return cls.wall()
        return cls(pd.Timestamp(clock["sim_epoch"]).tz_convert("UTC"), float(clock["wall_epoch_s"]),
                   float(clock["speed"]))

    def now(self) -> pd.Timestamp:
        if self.sim_epoch is None:
            return pd.Timestamp.now(tz="UTC").floor("us")
        return (self.sim_epoch + pd.Timedelta(seconds=(time.time() - self.wall_epoch_s) * self.speed)).floor("us")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class MovableClock(Protocol):
    """A clock that moves only when told: the twin's ManualClock (der_assets.simulator.hub)."""

    def __call__(self) -> pd.Timestamp: ...

    def set(self, when: pd.Timestamp) -> None: ...


class SteppedClock:
    """Dispatch on a clock that moves only when told, shared with the twin.

    `sleep(s)` moves the shared clock on by exactly s seconds, so each interval's setpoints reach
    the twin at the same twin instant (its start minus the lead) whatever the machine's load; the
    HTTP round trips in between take wall time but no twin time. One coroutine sleeps at a time
    (an event's execution), which is what dispatch does.
    """

    def __init__(self, clock: MovableClock):
        self._clock = clock

    def __call__(self) -> pd.Timestamp:
        return self.now()

    def now(self) -> pd.Timestamp:
        return pd.Timestamp(self._clock()).tz_convert("UTC").floor("us")

    def advance_to(self, when: pd.Timestamp) -> pd.Timestamp:
        """Move the shared clock to `when` (never back); returns the time now."""
        self._clock.set(pd.Timestamp(when).tz_convert("UTC"))
        return self.now()

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.advance_to(self.now() + pd.Timedelta(seconds=seconds))
        await asyncio.sleep(0)  # still a suspension point, as a real sleep is


# In-process clocks by name, for ClockResource(in_process=NAME): a resource's config must be plain
# values, so a test registers the clock object here and configures the resource with its name.
_IN_PROCESS: dict[str, SteppedClock] = {}


@contextmanager
def registered_clock(name: str, clock: SteppedClock) -> Iterator[SteppedClock]:
    """While inside, ClockResource(in_process=name) returns `clock`."""
    _IN_PROCESS[name] = clock
    try:
        yield clock
    finally:
        _IN_PROCESS.pop(name, None)


def in_process_clock(name: str) -> SteppedClock:
    try:
        return _IN_PROCESS[name]
    except KeyError:
        raise LookupError(f"no in-process clock named {name!r} is registered "
                          f"(registered: {', '.join(sorted(_IN_PROCESS)) or 'none'})") from None
