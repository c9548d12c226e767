"""The running intake: the signed webhook, the inbox watcher and the OpenADR VEN in one process.

`der intake` (production) and `der dev` (beside the twin and the UI) run this. One event loop:

- **webhook**: ``http.build_app`` served by uvicorn on ``DER_INTAKE_HOST:DER_INTAKE_PORT``
  (127.0.0.1:8787 by default); it refuses to start without a secret.
- **inbox**: ``inbox.ingest_inbox`` on ``DER_DISPATCH_INBOX`` (``$DER_HOME/dispatch_inbox``)
  every ``DER_INTAKE_POLL_S`` seconds (2).
- **ven**: ``openadr.InstructionVEN`` when ``DER_OPENADR_VTN_URL`` is set; it re-registers with
  backoff while the VTN cannot be reached, so the intake may start before its VTN.

Every path checks the instruction's resource against the registry (``resources.RegistryResources``).
Each component keeps a health line in the ready file (``DER_INTAKE_READY_FILE``, default
``$DER_HOME/intake_ready.json``), rewritten atomically on every change and inbox scan; the
schema is in the README's Intake section. Secrets come from the environment; ``demo=True``
(only `der dev`) uses deterministic demo secrets and writes them into the ready file so the
operator can sign a request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from der_assets import config
from der_assets.atomic import write_atomic
from der_assets.errors import UserError
from der_assets.redact import RedactingFilter
from der_assets.redact import install as install_redaction

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger("der_assets.intake")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_POLL_S = 2.0
DEFAULT_VEN_NAME = "der-ven"
READY_SCHEMA = "der-intake-ready/1"

HOST_ENV = "DER_INTAKE_HOST"
PORT_ENV = "DER_INTAKE_PORT"
POLL_ENV = "DER_INTAKE_POLL_S"
READY_ENV = "DER_INTAKE_READY_FILE"
INBOX_ENV = "DER_DISPATCH_INBOX"
HMAC_ENV = "DER_WEBHOOK_HMAC_SECRET"
BEARER_ENV = "DER_WEBHOOK_BEARER_TOKEN"
VTN_URL_ENV = "DER_OPENADR_VTN_URL"
VEN_NAME_ENV = "DER_OPENADR_VEN_NAME"
VEN_ISO_ENV = "DER_OPENADR_ISO"
VEN_RESOURCE_ENV = "DER_OPENADR_RESOURCE_ID"
VEN_LEVELS_ENV = "DER_OPENADR_SIMPLE_LEVELS_KW"
# TLS and XML signatures, as a production VTN requires (OpenADRClient's own options)
VEN_TLS_ENV = {"cert": "DER_OPENADR_CERT", "key": "DER_OPENADR_KEY", "passphrase": "DER_OPENADR_KEY_PASSPHRASE",
               "ca_file": "DER_OPENADR_CA_FILE", "vtn_fingerprint": "DER_OPENADR_VTN_FINGERPRINT"}

_UTC = dt.timezone.utc


def _now() -> dt.datetime:
    return dt.datetime.now(_UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value is not None else None


def demo_secrets() -> dict[str, str]:
    """Deterministic webhook secrets for `der dev` (never for production: they are in this file)."""
    def token(name: str) -> str:
        return hashlib.sha256(f"der-intake-demo|{name}".encode()).hexdigest()[:32]

    return {"hmac_secret": token("hmac"), "bearer_token": token("bearer")}


def _parse_levels(text: str) -> dict[int, float]:
    """``1=500,2=1000`` -> {1: 500.0, 2: 1000.0}: the program agreement's SIMPLE level -> kW table."""
    levels = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        level, sep, kw = part.partition("=")
        try:
            if not sep:
                raise ValueError
            levels[int(level)] = float(kw)
        except ValueError:
            raise UserError(f"{VEN_LEVELS_ENV}={text!r}: {part!r} is not LEVEL=KW (e.g. 1=500,2=1000)") from None
    return levels


@dataclass(frozen=True)
class IntakeSettings:
    """What the intake runs with; ``from_env`` is the only reader of its environment variables."""

    inbox: Path
    ready_file: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    poll_s: float = DEFAULT_POLL_S
    webhook: bool = True
    hmac_secret: str | None = None
    bearer_token: str | None = None
    vtn_url: str | None = None
    ven_name: str = DEFAULT_VEN_NAME
    ven_iso: str = "PJM"
    ven_resource_id: str | None = None
    simple_levels_kw: Mapping[int, float] | None = None
    ven_options: Mapping[str, str] = field(default_factory=dict)
    demo: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, demo: bool = False, **overrides) -> IntakeSettings:
        """Settings from the environment; ``overrides`` (command-line flags) win where not None."""
        env = os.environ if env is None else env
        home = config.data_home()

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value and value.strip() else None

        try:
            port = int(get(PORT_ENV) or DEFAULT_PORT)
            poll_s = float(get(POLL_ENV) or DEFAULT_POLL_S)
        except ValueError:
            raise UserError(f"{PORT_ENV} must be a port number and {POLL_ENV} a number of seconds") from None
        values = {
            "inbox": Path(get(INBOX_ENV) or home / "dispatch_inbox"),
            "ready_file": Path(get(READY_ENV) or home / "intake_ready.json"),
            "host": get(HOST_ENV) or DEFAULT_HOST,
            "port": port,
            "poll_s": poll_s,
            "hmac_secret": get(HMAC_ENV),
            "bearer_token": get(BEARER_ENV),
            "vtn_url": get(VTN_URL_ENV),
            "ven_name": get(VEN_NAME_ENV) or DEFAULT_VEN_NAME,
            "ven_iso": (get(VEN_ISO_ENV) or "PJM").upper(),
            "ven_resource_id": get(VEN_RESOURCE_ENV),
            "simple_levels_kw": _parse_levels(get(VEN_LEVELS_ENV)) if get(VEN_LEVELS_ENV) else None,
            "ven_options": {k: get(v) for k, v in VEN_TLS_ENV.items() if get(v)},
            "demo": demo,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if demo and not values["hmac_secret"] and not values["bearer_token"]:
            values.update(demo_secrets())
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"{PORT_ENV}={self.port} is not a TCP port (0-65535)")
        if not 0.1 <= self.poll_s <= 3600:
            raise UserError(f"{POLL_ENV}={self.poll_s:g} must be between 0.1 and 3600 seconds")
        if self.webhook and not (self.hmac_secret or self.bearer_token):
            raise UserError(f"the instruction webhook never runs unauthenticated: set {HMAC_ENV} and/or "
                            f"{BEARER_ENV} (or pass --no-webhook)")
        if self.vtn_url is not None and not self.vtn_url.startswith(("http://", "https://")):
            raise UserError(f"{VTN_URL_ENV}={self.vtn_url!r} is not an http(s) URL")


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket; a port in use is one line naming it and the setting to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"the intake webhook cannot listen on {host}:{port} ({exc.strerror}); "
                        f"set {PORT_ENV} or pass --port") from None
    sock.set_inheritable(True)
    return sock


class _Format(logging.Formatter):
    """``2026-07-15T17:40:00Z INFO der_assets.intake: message``: UTC, one line, no tracebacks for known errors."""

    def formatTime(self, record, datefmt=None) -> str:  # noqa: N802 (logging's name)
        return dt.datetime.fromtimestamp(record.created, _UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def format(self, record) -> str:
        return super().format(record).replace("\n", " | ")


_CHATTY = ("openleadr", "apscheduler", "uvicorn", "aiohttp")


def _quiet_libraries(record: logging.LogRecord) -> bool:
    # openleadr logs every poll at INFO with message dict reprs (and resets its level on import),
    # so its INFO lines are filtered at the handler; our own lines say what happened
    return record.levelno >= logging.WARNING or not record.name.startswith(_CHATTY)


def configure_logging(stream=None, level: int = logging.INFO) -> None:
    """Readable one-line logs for a long-running intake or VTN process; libraries' chatter only from WARNING."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Format("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_quiet_libraries)
    handler.addFilter(RedactingFilter())  # a bearer token or a vendor key never reaches the log
    install_redaction()
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class IntakeService:
    """The three intake components and their health, in one asyncio loop (``run`` until ``stop``)."""

    def __init__(self, engine: Engine, settings: IntakeSettings, *, resource_ids=None):
        from der_assets.dispatch.intake.resources import RegistryResources

        self.engine = engine
        self.settings = settings
        self.resources = resource_ids if resource_ids is not None else RegistryResources(engine)
        self.started_at = _now()
        self.port: int | None = None
        self.webhook = {"status": "disabled" if not settings.webhook else "starting"}
        self.inbox = {"status": "starting", "path": str(settings.inbox), "poll_s": settings.poll_s,
                      "last_scan_at": None, "recorded": 0, "rejected": 0, "last_error": None}
        self.ven = ({"status": "disabled", "reason": f"{VTN_URL_ENV} is not set"} if settings.vtn_url is None else
                    {"status": "starting", "vtn_url": settings.vtn_url, "ven_name": settings.ven_name,
                     "ven_id": None, "last_poll_at": None, "events": 0, "last_error": None})
        self._ven_obj = None
        self._written: str | None = None

    # ---------------------------------------------------------------- health

    def health(self) -> dict:
        """The ready file's content (secrets only in demo mode)."""
        try:
            known = sorted(self.resources)
        except Exception as exc:  # the warehouse is down: say so, do not crash the health line
            known = [f"unavailable: {type(exc).__name__}"]
        out = {
            "schema": READY_SCHEMA,
            "pid": os.getpid(),
            "started_at": _iso(self.started_at),
            "webhook": dict(self.webhook),
            "inbox": dict(self.inbox),
            "ven": dict(self.ven),
            "resources": known,
        }
        demo = demo_secrets()
        if self.settings.demo and self.settings.hmac_secret in (None, demo["hmac_secret"]) \
                and self.settings.bearer_token in (None, demo["bearer_token"]):
            # only the generated demo secrets are ever written; an operator's own stay in the environment
            out["credentials"] = {"hmac_secret": self.settings.hmac_secret, "bearer_token": self.settings.bearer_token}
        return out

    def public_health(self) -> dict:
        """What ``GET /health`` shows: the component lines, never the credentials."""
        return {k: v for k, v in self.health().items() if k in ("webhook", "inbox", "ven", "resources")}

    def write_ready(self) -> None:
        body = self.health()
        text = json.dumps(body, indent=1)
        if text != self._written:
            body["updated_at"] = _iso(_now())
            write_atomic(self.settings.ready_file, lambda tmp: tmp.write_text(json.dumps(body, indent=1) + "\n"),
                         private=True)  # under der dev it holds the demo webhook secrets
            self._written = text

    # ---------------------------------------------------------------- components

    async def _serve_webhook(self, sock: socket.socket, stop: asyncio.Event) -> None:
        import uvicorn

        from der_assets.dispatch.intake.http import build_app

        s = self.settings
        app = build_app(self.engine, hmac_secret=s.hmac_secret.encode() if s.hmac_secret else None,
                        bearer_token=s.bearer_token, resource_ids=self.resources, health=self.public_health)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("the webhook server stopped while starting")
            await asyncio.sleep(0.02)
        base = f"http://{'127.0.0.1' if s.host in ('0.0.0.0', '') else s.host}:{self.port}"
        auth = [name for name, v in (("hmac", s.hmac_secret), ("bearer", s.bearer_token)) if v]
        self.webhook = {"status": "listening", "url": f"{base}/instructions", "health_url": f"{base}/health",
                        "auth": auth}
        log.info("webhook listening url=%s/instructions auth=%s", base, "+".join(auth))
        self.write_ready()
        await stop.wait()
        server.should_exit = True
        await task
        self.webhook = {**self.webhook, "status": "stopped"}

    def scan_inbox(self) -> list:
        """One scan of the inbox folder (the watcher's step; tests call it directly)."""
        from der_assets.dispatch.intake.inbox import ingest_inbox
        from der_assets.dispatch.intake.store import Outcome

        outcomes = ingest_inbox(self.engine, self.settings.inbox, resource_ids=self.resources)
        rejected = sum(o is Outcome.REJECTED for o in outcomes)
        self.inbox.update(status="watching", last_scan_at=_iso(_now()), last_error=None,
                          recorded=self.inbox["recorded"] + len(outcomes) - rejected,
                          rejected=self.inbox["rejected"] + rejected)
        return outcomes

    async def _watch_inbox(self, stop: asyncio.Event) -> None:
        self.settings.inbox.mkdir(parents=True, exist_ok=True)
        log.info("inbox watching path=%s every=%gs", self.settings.inbox, self.settings.poll_s)
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.scan_inbox)
            except Exception as exc:  # a warehouse outage must not end the watcher; files stay for the next scan
                message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
                if self.inbox.get("last_error") != message:
                    log.error("inbox scan failed (files stay in place): %s", message)
                self.inbox.update(status="error", last_scan_at=_iso(_now()), last_error=message)
            self.write_ready()
            await _sleep(stop, self.settings.poll_s)
        self.inbox["status"] = "stopped"

    async def _run_ven(self, stop: asyncio.Event) -> None:
        from der_assets.dispatch.intake.openadr import InstructionVEN

        s = self.settings
        backoff = 2.0
        while not stop.is_set():
            ven = InstructionVEN(self.engine, vtn_url=s.vtn_url, ven_name=s.ven_name, iso=s.ven_iso,
                                 resource_id=s.ven_resource_id, simple_levels_kw=s.simple_levels_kw,
                                 resource_ids=self.resources, **dict(s.ven_options))
            self._ven_obj = ven
            self.ven.update(status="connecting")
            self.write_ready()
            try:
                await asyncio.wait_for(ven.client.run(), timeout=30)
            except (Exception, TimeoutError) as exc:
                self.ven["last_error"] = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:500]
            if ven.client.registration_id:
                backoff = 2.0
                self.ven.update(status="registered", ven_id=ven.client.ven_id, last_error=None,
                                poll_s=ven.client.poll_frequency.total_seconds() if ven.client.poll_frequency else None)
                log.info("ven registered vtn=%s ven_name=%s ven_id=%s", s.vtn_url, s.ven_name, ven.client.ven_id)
                while not stop.is_set() and ven.client.registration_id:
                    self.ven.update(last_poll_at=_iso(ven.last_reply_at), events=len(ven.results))
                    silent_s = (_now() - ven.last_reply_at).total_seconds() if ven.last_reply_at else 0.0
                    limit = max(30.0, 3 * (self.ven.get("poll_s") or 10.0))
                    self.ven["status"] = "registered" if silent_s <= limit else "no reply"
                    self.write_ready()
                    await _sleep(stop, 1.0)
                if not stop.is_set():
                    log.warning("ven registration with %s ended; registering again", s.vtn_url)
            else:
                self.ven.update(status="unreachable")
                log.warning("ven cannot register with %s (%s); retrying in %gs", s.vtn_url,
                            self.ven.get("last_error") or "no registration id", backoff)
                self.write_ready()
            await _stop_ven(ven)
            if not stop.is_set() and not ven.client.registration_id:
                await _sleep(stop, backoff)
                backoff = min(backoff * 2, 30.0)
        self.ven["status"] = "stopped"

    async def run(self, stop: asyncio.Event, *, sock: socket.socket | None = None) -> None:
        """Serve until ``stop`` is set; the ready file is first written once the webhook listens."""
        s = self.settings
        tasks = []
        if s.webhook:
            sock = sock or bind(s.host, s.port)
            self.port = sock.getsockname()[1]
            tasks.append(asyncio.create_task(self._serve_webhook(sock, stop), name="intake-webhook"))
            while self.webhook["status"] == "starting" and not tasks[0].done():
                await asyncio.sleep(0.02)
            if tasks[0].done():
                await tasks[0]
        tasks.append(asyncio.create_task(self._watch_inbox(stop), name="intake-inbox"))
        if s.vtn_url is not None:
            tasks.append(asyncio.create_task(self._run_ven(stop), name="intake-ven"))
        self.write_ready()
        log.info("intake ready file=%s resources=%s", s.ready_file, ",".join(sorted(self.resources)) or "none")
        try:
            done, _ = await asyncio.wait([*tasks, asyncio.create_task(stop.wait())],
                                         return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task in tasks and task.exception() is not None:
                    raise task.exception()
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.write_ready()
            log.info("intake stopped")


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _stop_ven(ven) -> None:
    """Stop openleadr's client whatever state its run() left it in (it may have stopped itself)."""
    client = ven.client
    try:
        if client.scheduler.running:
            client.scheduler.shutdown(wait=False)
        if client.report_queue_task:
            client.report_queue_task.cancel()
        if client.client_session is not None and not client.client_session.closed:
            await client.client_session.close()
    except Exception as exc:  # shutting down: note it, keep going
        log.warning("ven stop: %s: %s", type(exc).__name__, exc)
