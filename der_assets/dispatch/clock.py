"""The clock dispatch runs on: the wall clock, or the fleet twin's when it replays faster.

An ISO event is carried out interval by interval in real time. When the twin replays history
at N times real speed (the demo, and the end-to-end test), dispatch must follow the twin's
time, which its ready file describes: twin time = sim_epoch + (wall - wall_epoch_s) * speed.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

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
