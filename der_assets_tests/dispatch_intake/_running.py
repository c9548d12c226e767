"""Running the intake service and the demo VTN for real, on loopback, each in its own thread's event loop.

Timing is driven by polling what the components write (the store, the ready file) with a
deadline, never by sleeping a fixed time and hoping.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from der_assets.registry.demo import DEMO_RESOURCE_ID, demo_fleet
from der_assets.registry.files import write_registry_file
from der_assets.registry.service import import_registry_file

WAIT_S = 20.0
HMAC = "test-hmac-secret"
TOKEN = "test-bearer-token"


def import_demo_registry(engine, folder: Path, sites: int = 3) -> str:
    """A small demo fleet in the registry; every site is in the demo resource, which is returned."""
    import_registry_file(engine, write_registry_file(demo_fleet(sites), folder / "fleet.csv"), changed_by="test")
    return DEMO_RESOURCE_ID


def until(predicate: Callable[[], object], what: str, timeout_s: float = WAIT_S):
    """predicate()'s first truthy value, polled every 0.1 s; fails naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.1)


@contextlib.contextmanager
def in_thread(make_coroutine: Callable[[asyncio.Event], object]) -> Iterator[None]:
    """Run ``make_coroutine(stop)`` in a thread's own loop; on exit set ``stop`` and re-raise its error."""
    loop = asyncio.new_event_loop()
    holder: dict = {}
    started = threading.Event()

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        started.set()
        await make_coroutine(holder["stop"])

    def target() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # surfaced in the test thread below
            holder["error"] = exc
        finally:
            started.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    started.wait(WAIT_S)
    try:
        yield
    finally:
        if "stop" in holder:
            loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(WAIT_S)
        loop.close()
        assert not thread.is_alive(), "the service did not stop within its deadline"
        if "error" in holder:
            raise holder["error"]


def read_ready(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def running_intake(engine, tmp_path: Path, *, vtn_url: str | None = None, **settings) -> Iterator[tuple[object, dict]]:
    """The real IntakeService on a free loopback port; yields (service, the first ready-file content)."""
    from der_assets.dispatch.intake.service import IntakeService, IntakeSettings, bind

    values = dict(inbox=tmp_path / "dispatch_inbox", ready_file=tmp_path / "intake_ready.json", port=0, poll_s=0.2,
                  hmac_secret=HMAC, bearer_token=TOKEN, vtn_url=vtn_url)
    values.update(settings)
    service = IntakeService(engine, IntakeSettings(**values))
    sock = bind("127.0.0.1", 0)
    with in_thread(lambda stop: service.run(stop, sock=sock)):
        ready = until(lambda: read_ready(values["ready_file"]), "the intake ready file")
        yield service, ready


@contextlib.contextmanager
def running_vtn(tmp_path: Path, *, poll_s: int = 1, port: int = 0) -> Iterator[dict]:
    """The demo VTN (`der demo vtn`'s run_vtn) on a loopback port (0: a free one); yields its ready file."""
    from der_assets.simulator.vtn import run_vtn

    ready_file = tmp_path / "vtn_ready.json"
    with in_thread(lambda stop: run_vtn(ready_file=ready_file, stop=stop, port=port, poll_s=poll_s)):
        yield until(lambda: read_ready(ready_file), "the VTN ready file")
