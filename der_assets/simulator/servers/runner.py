"""Serve Starlette apps on loopback ports with uvicorn, in the foreground or in a thread for tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn


def bind_loopback(port: int = 0) -> socket.socket:
    """A listening-ready socket on 127.0.0.1 (port 0 picks a free one). Only loopback is ever bound."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # accepted connections inherit this: without it Nagle plus delayed ACK adds ~40 ms per request
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(True)
    return sock


class AppServer:
    """One uvicorn server for one app on one pre-bound loopback socket."""

    def __init__(self, name: str, app, port: int = 0):
        self.name = name
        self.sock = bind_loopback(port)
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self) -> None:
        await self.server.serve(sockets=[self.sock])

    def stop(self) -> None:
        self.server.should_exit = True


async def serve_all(servers: list[AppServer]) -> None:
    """Run every server in this event loop until all have been told to stop."""
    await asyncio.gather(*(s.serve() for s in servers))


@contextlib.contextmanager
def serving(apps: dict[str, object], timeout_s: float = 20.0) -> Iterator[dict[str, str]]:
    """Serve `apps` in a background thread; yields {name: base_url} once every one is listening."""
    servers = [AppServer(name, app) for name, app in apps.items()]
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve_all(servers),), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not all(s.server.started for s in servers):
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"servers did not start: {[s.name for s in servers if not s.server.started]}")
        time.sleep(0.02)
    try:
        yield {s.name: s.base_url for s in servers}
    finally:
        for s in servers:
            s.stop()
        thread.join(timeout=10)
        loop.close()
