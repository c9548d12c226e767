"""`der simulate`: the twin's protocol servers on loopback, a ready file, and the AMI inbox.

One process, one event loop: every vendor HTTP API (uvicorn), one SunSpec Modbus server per
Generac/Fronius/ABB device (pymodbus), a task that keeps the twin in step with its clock, and
a task that delivers Green Button files into the inbox 24-48 h late. Once everything listens,
the ready file is written (atomically) with the base URLs, the SunSpec devices, the inbox and
the credentials the servers accept.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import logging
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from der_assets.atomic import write_atomic
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import TwinHub

log = logging.getLogger(__name__)

SUNSPEC_SOURCES = ("generac", "sunspec")


class ScaledClock:
    """Wall time, or a replay that starts at `start` and runs `speed` times faster than the wall.

    held: the clock stands at `start` until `release()`, so a replay's startup (the past simulated,
    the servers bound) costs no twin time however slow the machine is: the twin is at exactly
    `start` when its ready file says it listens.
    """

    def __init__(self, start: pd.Timestamp | None = None, speed: float = 1.0, wall=time.time, *,
                 held: bool = False):
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._wall = wall
        self._wall0 = wall()
        self._start = pd.Timestamp(self._wall0, unit="s", tz="UTC") if start is None else pd.Timestamp(start).tz_convert("UTC")
        self.speed = speed
        self.held = held

    def release(self) -> None:
        """Start a held clock running from `start`, now."""
        if self.held:
            self._wall0, self.held = self._wall(), False

    def __call__(self) -> pd.Timestamp:
        if self.held:
            return self._start
        # microseconds: what Python datetimes (and the databases) keep
        return (self._start + pd.Timedelta(seconds=(self._wall() - self._wall0) * self.speed)).floor("us")

    def describe(self) -> dict[str, object]:
        """How a client can follow this clock: twin time = sim_epoch + (wall - wall_epoch_s) * speed."""
        return {"sim_epoch": self._start.isoformat(), "wall_epoch_s": self._wall0, "speed": self.speed}


def make_credentials(seed: int = 0) -> dict[str, str]:
    """Deterministic per seed, so a demo's ready file is stable; the servers reject anything else."""
    def token(name: str, n: int = 32) -> str:
        return hashlib.sha256(f"der-twin|{seed}|{name}".encode()).hexdigest()[:n]

    return {
        "solaredge_api_key": token("solaredge").upper(),
        "enphase_api_key": token("enphase-key"),
        "enphase_access_token": token("enphase-oauth", 64),
        "enphase_gateway_token": token("enphase-gateway", 64),
        "sma_access_token": token("sma", 64),
        "sonnen_auth_token": token("sonnen"),
        "sma_webconnect_password": token("sma-webconnect", 12),
        "greenbutton_connect_client_id": f"der-{token('gbc-client', 12)}",
        "greenbutton_connect_client_secret": token("gbc-secret", 40),
        "greenbutton_connect_refresh_token": token("gbc-refresh", 48),
    }


def free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _optional(module: str):
    try:
        return importlib.import_module(f"der_assets.simulator.servers.{module}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.endswith(module):
            return None
        raise


def build_http_apps(hub: TwinHub, creds: dict[str, str], *, vendor_limits: bool = True) -> dict[str, object]:
    """Every vendor HTTP app, keyed by the name used in the ready file.

    vendor_limits=False lifts the vendors' request quotas (Enphase's per-minute plan), for
    replaying weeks of history in minutes; credentials and everything else stay real.
    """
    apps: dict[str, object] = {}
    if (m := _optional("solaredge")) is not None:
        apps["solaredge"] = m.build_app(hub, api_key=creds["solaredge_api_key"])
    if (m := _optional("enphase")) is not None:
        apps["enphase"] = m.build_app(hub, api_key=creds["enphase_api_key"], access_token=creds["enphase_access_token"],
                                      metered=vendor_limits)
        apps["enphase_gateway"] = m.build_gateway_app(hub, token=creds["enphase_gateway_token"])
    if (m := _optional("sma")) is not None:
        apps["sma"] = m.build_app(hub, access_token=creds["sma_access_token"])
    if (m := _optional("sma_webconnect")) is not None:
        apps["sma_webconnect"] = m.build_app(hub, password=creds["sma_webconnect_password"])
    if (m := _optional("sonnen")) is not None:
        apps["sonnen"] = m.build_app(hub, auth_token=creds["sonnen_auth_token"])
    if (m := _optional("fronius")) is not None:
        apps["fronius"] = m.build_app(hub)
    if (m := _optional("greenbutton_connect")) is not None:
        apps["greenbutton_connect"] = m.build_app(
            hub, client_id=creds["greenbutton_connect_client_id"], client_secret=creds["greenbutton_connect_client_secret"],
            refresh_token=creds["greenbutton_connect_refresh_token"], **({} if vendor_limits else {"rate_limit": None}))
    return apps


def sunspec_sites(hub: TwinHub) -> list[dict[str, str]]:
    """The Modbus devices: one per site with a Generac or SunSpec (Fronius/ABB) device."""
    reg = hub.registry
    rows = reg[reg["telemetry_source"].isin(SUNSPEC_SOURCES)].drop_duplicates("site_id")
    return [{"site_id": r.site_id, "device_id": r.device_id, "source": r.telemetry_source}
            for r in rows.itertuples()]


DEFAULT_HISTORY_DAYS = 7


def history_start(now: pd.Timestamp, days: int) -> pd.Timestamp:
    """Where the twin's past begins: UTC midnight `days` days before the day of `now`.

    Why midnight: the physics is deterministic from where it starts, so two twins started at
    any time on the same UTC day (same registry, seed) tell the same story about their past;
    and every served day is a whole UTC partition.
    """
    if days < 0:
        raise ValueError(f"history days {days} must be 0 or more")
    return pd.Timestamp(now).tz_convert("UTC").floor("D") - pd.Timedelta(days=days)


@dataclass
class Simulator:
    """The running twin: hub, servers and what the ready file says about them."""

    hub: TwinHub
    credentials: dict[str, str]
    inbox: Path
    http: dict[str, str] = field(default_factory=dict)
    sunspec: list[dict[str, object]] = field(default_factory=list)
    history: dict[str, object] = field(default_factory=dict)

    def ready(self) -> dict[str, object]:
        return {
            "http": self.http,
            "sunspec": self.sunspec,
            "ami_inbox": str(self.inbox),
            "credentials": self.credentials,
            "device_base_path": "/sites/{site_id}",
            "history": self.history,
            "clock": {"now": self.hub.now().isoformat(), "interval_s": self.hub.interval_s,
                      **(self.hub.clock.describe() if hasattr(self.hub.clock, "describe") else {})},
        }


def build_history(hub: TwinHub, days: int) -> dict[str, object]:
    """Simulate from the hub's start up to its clock now; what the ready file says about the past served.

    The window is [start, now): `start` is fixed, `until` is the twin's time when the ready file was
    written, and the end follows the clock from there (`live`).
    Device-local APIs (sonnen, SunSpec Modbus, the Enphase gateway) keep no history, as the real
    devices do not; the cloud APIs answer for it within each vendor's own limits.
    """
    t0 = time.perf_counter()
    hub.sync()
    elapsed = time.perf_counter() - t0
    return {"days": days, "start": hub.start.isoformat(), "until": hub.twin.now.isoformat(), "live": True,
            "build_s": round(elapsed, 3),
            "intervals": int((hub.twin.now - hub.start) / pd.Timedelta(seconds=hub.interval_s))}


async def run(
    registry: pd.DataFrame,
    *,
    ready_file: Path | None,
    inbox: Path,
    start: pd.Timestamp | None = None,
    speed: float = 1.0,
    seed: int = 0,
    faults: FaultPlan | None = None,
    stop: asyncio.Event | None = None,
    deliver_every_s: float = 30.0,
    history_days: int = DEFAULT_HISTORY_DAYS,
    clock=None,
) -> None:
    """Serve until `stop` is set.

    history_days: the twin begins that many days before now (at UTC midnight, see
    history_start) and has simulated up to now before anything listens; 0 starts it now.
    clock: a ready-made clock (tests pass a ScaledClock on their own wall); default
    ScaledClock(start, speed), held at `start` until the ready file is written when replaying.
    """
    from der_assets.simulator.servers.runner import AppServer
    from der_assets.simulator.sunspec_server import SunSpecServer, SunSpecSite

    stop = stop or asyncio.Event()
    clock = clock or ScaledClock(start, speed, held=start is not None)
    now = clock()
    begin = history_start(now, history_days) if history_days else now
    hub = TwinHub(registry, start=begin, clock=clock, seed=seed, faults=faults)
    inbox.mkdir(parents=True, exist_ok=True)
    sim = Simulator(hub=hub, credentials=make_credentials(seed), inbox=inbox)
    sim.history = build_history(hub, history_days)
    log.info("twin history: %s", json.dumps(sim.history))
    deliver = _optional_attr("der_assets.simulator.greenbutton", "deliver_due_files")

    servers = [AppServer(name, app) for name, app in build_http_apps(hub, sim.credentials).items()]
    tasks = [asyncio.create_task(s.serve(), name=f"http-{s.name}") for s in servers]
    modbus = []
    for device in sunspec_sites(hub):
        port = free_loopback_port()
        site = SunSpecSite(hub.twin, device["site_id"], generac_site_energy=device["source"] == "generac",
                           manufacturer="Generac" if device["source"] == "generac" else "der_assets")
        server = SunSpecServer(site, host="127.0.0.1", port=port, unit_id=1)
        await server.start()
        modbus.append(server)
        sim.sunspec.append({**device, "host": "127.0.0.1", "port": port, "unit_id": 1})
    while not all(s.server.started for s in servers):
        await asyncio.sleep(0.02)
    sim.http = {s.name: s.base_url for s in servers}

    def write_ready() -> None:
        if ready_file is not None:
            write_atomic(ready_file, lambda tmp: tmp.write_text(json.dumps(sim.ready(), indent=1)),
                         private=True)  # it holds the credentials every vendor server checks

    if deliver is not None:
        sim.history["ami_backlog"] = "delivering"
    if getattr(clock, "held", False):
        clock.release()  # twin time runs from `start` from here: the ready file's clock says so
    write_ready()
    log.info("twin ready: %d HTTP APIs, %d SunSpec devices", len(servers), len(modbus))

    # The past's AMI files (each as the utility delivered it, 24-48 h after its day) are written
    # beside the running servers: about 5 ms a file, a thousand files for a week of 200 meters.
    # The ready file is written again when they are all in the inbox.
    backlog = None
    if deliver is not None:
        backlog = asyncio.create_task(asyncio.to_thread(_deliver_backlog, deliver, hub, inbox, sim.history))
        backlog.add_done_callback(lambda _: write_ready())
    last_delivery = time.monotonic()
    try:
        while not stop.is_set():
            hub.sync()
            if (deliver is not None and backlog.done()
                    and time.monotonic() - last_delivery >= deliver_every_s):
                deliver(hub, inbox)
                last_delivery = time.monotonic()
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
    finally:
        for s in servers:
            s.stop()
        for m in modbus:
            await m.stop()
        await asyncio.gather(*tasks, *([backlog] if backlog is not None else []), return_exceptions=True)


def _deliver_backlog(deliver, hub: TwinHub, inbox: Path, history: dict) -> None:
    t0 = time.perf_counter()
    files = deliver(hub, inbox)
    history.update(ami_backlog="delivered", ami_files_delivered=len(files),
                   ami_delivery_s=round(time.perf_counter() - t0, 3))
    log.info("twin history: %d Green Button files delivered in %.1f s", len(files), time.perf_counter() - t0)


def _optional_attr(module: str, name: str):
    try:
        return getattr(importlib.import_module(module), name)
    except (ModuleNotFoundError, AttributeError):
        return None


def parse_start(text: str | None) -> pd.Timestamp | None:
    if text is None:
        return None
    ts = pd.Timestamp(text)
    if ts.tzinfo is None:
        raise ValueError(f"--start {text!r} needs a UTC offset, e.g. 2026-07-15T00:00Z")
    return ts.tz_convert("UTC")
