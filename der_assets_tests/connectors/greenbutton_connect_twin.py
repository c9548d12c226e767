"""The twin's Green Button Connect custodian on loopback, for the Connect connector's tests."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from der_assets.connectors import greenbutton_connect as gbc
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers import greenbutton_connect as server
from der_assets.simulator.servers.runner import serving

CLIENT_ID, CLIENT_SECRET, SEED_REFRESH = "der-test-client", "s3cret-client-value-0001", "seed-refresh-token-0001"


class Wall:
    """A wall clock a test moves (the custodian's, for token expiry)."""

    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Twin:
    hub: TwinHub
    clock: ManualClock
    url: str
    wall: Wall

    def settings(self, token_file: Path, **kw) -> gbc.ConnectSettings:
        kw = {"refresh_token": SEED_REFRESH, **kw}
        return gbc.ConnectSettings(base_url=self.url, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                   token_file=token_file, **kw)


@contextlib.contextmanager
def connect_twin(fleet: pd.DataFrame, start: str, advance_h: float, *, faults: dict | None = None,
                 **app_kw) -> Iterator[Twin]:
    """A twin started at `start`, moved on `advance_h` hours, its Connect custodian served on 127.0.0.1."""
    clock = ManualClock(pd.Timestamp(start))
    hub = TwinHub(fleet, start=clock(), clock=clock, faults=FaultPlan.from_dict(faults) if faults else None)
    clock.advance(hours=advance_h)
    wall = Wall()
    app = server.build_app(hub, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token=SEED_REFRESH,
                           wall=wall, **app_kw)
    with serving({"gbc": app}) as urls:
        yield Twin(hub, clock, urls["gbc"], wall)


def meters(fleet: pd.DataFrame) -> dict[str, str]:
    """meter id -> site id, as the registry maps them."""
    sites = fleet.drop_duplicates("site_id")
    return dict(zip(sites["meter_id"].astype(str), sites["site_id"], strict=True))
