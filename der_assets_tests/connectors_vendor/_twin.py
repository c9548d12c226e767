"""A small twin (one or two sites per vendor) on a ManualClock, its servers on loopback, and helpers.

Sites from the demo fleet (demo_fleet(40)): solaredge S-00001 (Chicago), sma S-00003
(Chicago), enphase S-00007 (Chicago), fronius + sunspec battery S-00008 (New York),
sonnen S-00019 (New York), sunspec S-00039 (New York).
"""

from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from der_assets.connectors.payloads import RawPayload, SiteRef
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.service import make_credentials
from der_assets.telemetry import parse_payload

START = pd.Timestamp("2026-07-15T00:00Z")
DAY = pd.Timestamp("2026-07-16T00:00Z"), pd.Timestamp("2026-07-17T00:00Z")
SITES = ["S-00001", "S-00003", "S-00007", "S-00008", "S-00019", "S-00039"]
CREDS = make_credentials(0)


def registry() -> pd.DataFrame:
    reg = demo_fleet(40)
    return reg[reg["site_id"].isin(SITES)].reset_index(drop=True)


def make_hub(days: float = 3.0, faults: FaultPlan | None = None) -> tuple[TwinHub, ManualClock]:
    clock = ManualClock(START)
    hub = TwinHub(registry(), start=START, clock=clock, faults=faults)
    clock.advance(days=days)
    hub.sync()
    return hub, clock


def site_ref(hub: TwinHub, site_id: str) -> SiteRef:
    row = hub.registry[hub.registry["site_id"] == site_id].iloc[0]
    return SiteRef(site_id, str(row["timezone"]), str(row["vendor_ref"]))


def ready(urls: dict, device_local: tuple = ("enphase_gateway", "sonnen", "fronius")) -> dict:
    """A ready-file dict as der_assets.simulator.service writes it."""
    return {"http": urls, "credentials": CREDS, "device_base_path": "/sites/{site_id}", "sunspec": [],
            "ami_inbox": "/nonexistent"}


def server(name: str):
    """The twin's server module for a vendor, or skip (colleagues may still be writing it)."""
    return pytest.importorskip(f"der_assets.simulator.servers.{name}")


def parse(p: RawPayload) -> pd.DataFrame:
    return parse_payload(p.source, p.endpoint, p.content, **p.parse_kwargs())


def channel_sum(frames, channel: str, start, end) -> float:
    total = 0.0
    for df in frames:
        d = df[(df["channel"] == channel) & (df["interval_start"] >= start) & (df["interval_start"] < end)]
        total += float(d["value"].sum())
    return total


def twin_sum(hub: TwinHub, site_id: str, channel: str, start, end) -> float:
    return float(hub.window(site_id, start, end)[channel].sum())


def clock_sleep(clock: ManualClock, hub: TwinHub, log: list | None = None):
    """An injectable `sleep` that moves the twin's clock instead of waiting."""

    async def sleep(seconds: float) -> None:
        if log is not None:
            log.append(seconds)
        clock.advance(seconds=float(seconds))
        hub.sync()
        await asyncio.sleep(0)

    return sleep


def run(coro):
    return asyncio.run(coro)
