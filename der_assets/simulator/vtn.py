"""The demo fleet's ISO: a local OpenADR 2.0b VTN (openleadr's ``OpenADRServer``) on loopback.

`der dev` starts it when no external VTN is configured, and the intake's VEN registers with
it, so a new operator sees the whole path an ISO event takes: `der demo event` asks this VTN
(over a small admin endpoint on the same loopback port, bearer-token protected) to issue an
event; the VEN receives it on its next poll, lands and records it; the dispatch sensor makes a
run of it.

Events carry one ``LOAD_DISPATCH`` setpoint signal in kW (``powerReal``, scale ``k``): the
signal the VEN takes as the resource's required output. The target resource is named as the
event's ``resourceID``. Every VEN that registers is accepted (a demo has one), under a VEN id
derived from its name, so a VTN restart does not force a re-registration; events go to every
VEN that has registered, and to the configured one even before it has. Every request is screened
(``dispatch.intake.openadr_xml``) before openleadr validates it: a DTD or an entity is a 400.

Admin endpoint (JSON): ``POST /der-demo/events`` {"start", "duration_s", "kw", "resource_id",
"interval_minutes"} -> 201 {"event_id", "start", "end", "ven_ids"}; ``GET /der-demo/events``
lists what was issued and each VEN's opt response; ``POST /der-demo/events/{id}/cancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import secrets
import socket
from pathlib import Path

from der_assets.atomic import write_atomic

log = logging.getLogger("der_assets.vtn")

DEFAULT_PORT = 8788
OPENADR_PATH = "/OpenADR2/Simple/2.0b"
ADMIN_PATH = "/der-demo"
VTN_ID = "DER_DEMO_VTN"
MARKET_CONTEXT = "http://der-assets.demo/capacity"
READY_SCHEMA = "der-demo-vtn-ready/1"
_UTC = dt.timezone.utc


def demo_admin_token() -> str:
    """Deterministic, so `der demo event` and a test can read it from the ready file or compute it."""
    return hashlib.sha256(b"der-demo-vtn|admin").hexdigest()[:32]


def ven_id_for(ven_name: str) -> str:
    return "ven-" + hashlib.sha256(ven_name.encode()).hexdigest()[:12]


def _iso(value: dt.datetime) -> str:
    return value.astimezone(_UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class EventRequestError(ValueError):
    """An admin request the VTN cannot turn into an event; the message is the whole story."""


def build_event(*, event_id: str, start: dt.datetime, duration: dt.timedelta, kw: float, resource_id: str,
                interval_minutes: int, created: dt.datetime):
    """An openleadr Event: one LOAD_DISPATCH setpoint of ``kw`` in each ``interval_minutes`` interval."""
    from openleadr import objects

    if start.tzinfo is None:
        raise EventRequestError("start needs a UTC offset")
    if not (kw > 0 and kw < 1e7):
        raise EventRequestError(f"kw={kw:g} must be positive (kW the fleet must deliver)")
    step = dt.timedelta(minutes=interval_minutes)
    if interval_minutes <= 0 or duration <= dt.timedelta(0) or duration % step:
        raise EventRequestError(f"the duration ({duration.total_seconds() / 60:g} min) is not a positive whole "
                                f"number of {interval_minutes}-minute intervals")
    n = duration // step
    intervals = [objects.Interval(dtstart=start + k * step, duration=step, signal_payload=float(kw), uid=k)
                 for k in range(n)]
    event = objects.Event(
        event_descriptor=objects.EventDescriptor(event_id=event_id, modification_number=0,
                                                 market_context=MARKET_CONTEXT, event_status="far",
                                                 created_date_time=created),
        active_period=objects.ActivePeriod(dtstart=start, duration=duration),
        event_signals=[objects.EventSignal(
            intervals=intervals, signal_name="LOAD_DISPATCH", signal_type="setpoint", signal_id=f"{event_id}-kw",
            measurement=objects.Measurement(name="powerReal", description="RealPower", unit="W", scale="k",
                                            power_attributes=objects.PowerAttributes(hertz=60, voltage=240, ac=True)))],
        targets=[objects.Target(resource_id=resource_id)],
        response_required="always",
    )
    event.event_descriptor.event_status = "far"
    return event


class DemoVTN:
    """openleadr's VTN plus the admin routes; ``start()`` listens, ``stop()`` ends it."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT, ven_name: str = "der-ven",
                 poll_s: int = 2, admin_token: str | None = None):
        if int(poll_s) != poll_s or poll_s < 1:
            raise ValueError(f"poll_s={poll_s}: openleadr's VEN reads a fractional poll period as 0 s; use whole seconds")
        self.host = host
        self.ven_name = ven_name
        self.admin_token = admin_token or demo_admin_token()
        self.poll_s = poll_s
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.port = self.sock.getsockname()[1]
        self.registered: dict[str, str] = {}  # ven_id -> ven_name
        self.issued: list[dict] = []
        self.server = None

    @property
    def vtn_url(self) -> str:
        return f"http://{self.host}:{self.port}{OPENADR_PATH}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.port}{ADMIN_PATH}"

    def ready(self) -> dict:
        return {"schema": READY_SCHEMA, "vtn_id": VTN_ID, "vtn_url": self.vtn_url, "admin_url": self.admin_url,
                "admin_token": self.admin_token, "ven_name": self.ven_name, "ven_id": ven_id_for(self.ven_name),
                "poll_s": self.poll_s, "registered": sorted(self.registered)}

    async def start(self) -> None:
        from aiohttp import web
        from openleadr import OpenADRServer
        from openleadr.service import VTNService

        from der_assets.dispatch.intake.openadr_xml import install

        install()  # VEN requests are screened before lxml's validating parser (a DTD entity crashes it)
        def lookup(ven_id: str) -> dict:
            name = self.registered.get(ven_id) or (self.ven_name if ven_id == ven_id_for(self.ven_name) else None)
            if name is None:
                return {}
            return {"ven_id": ven_id, "ven_name": name, "fingerprint": None, "registration_id": f"reg-{ven_id}"}

        async def register(info: dict):
            name = info.get("ven_name") or self.ven_name
            ven_id = ven_id_for(name)
            self.registered[ven_id] = name
            log.info("vtn registered ven_name=%s ven_id=%s", name, ven_id)
            return ven_id, f"reg-{ven_id}"

        with contextlib.redirect_stdout(io.StringIO()):  # openleadr prints banners; our log says it once
            server = OpenADRServer(vtn_id=VTN_ID, http_host=self.host, http_port=self.port,
                                   requested_poll_freq=dt.timedelta(seconds=self.poll_s), ven_lookup=lookup,
                                   show_fingerprint=False, show_server_cert_domain=False)
        VTNService.ven_lookup = staticmethod(lookup)
        server.add_handler("on_create_party_registration", register)
        server.app.add_routes([
            web.get(f"{ADMIN_PATH}/events", self._list),
            web.post(f"{ADMIN_PATH}/events", self._issue),
            web.post(f"{ADMIN_PATH}/events/{{event_id}}/cancel", self._cancel),
            web.get(f"{ADMIN_PATH}/health", self._health),
        ])
        server.app_runner = web.AppRunner(server.app, access_log=None)
        await server.app_runner.setup()
        await web.SockSite(server.app_runner, self.sock).start()
        self.server = server
        log.info("vtn listening url=%s admin=%s", self.vtn_url, self.admin_url)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()

    # ---------------------------------------------------------------- events

    def issue(self, *, start: dt.datetime, duration: dt.timedelta, kw: float, resource_id: str,
              interval_minutes: int = 5) -> dict:
        """Queue one event for every VEN (the configured one included, registered or not)."""
        created = dt.datetime.now(_UTC)
        event_id = f"DEMO-{start.astimezone(_UTC):%Y%m%d-%H%M}-{secrets.token_hex(3)}"
        ven_ids = sorted({ven_id_for(self.ven_name), *self.registered})
        record = {"event_id": event_id, "start": _iso(start), "end": _iso(start + duration), "kw": kw,
                  "resource_id": resource_id, "interval_minutes": interval_minutes, "ven_ids": ven_ids,
                  "opt": {}, "issued_at": _iso(created), "status": "far"}
        for ven_id in ven_ids:
            event = build_event(event_id=event_id, start=start, duration=duration, kw=kw, resource_id=resource_id,
                                interval_minutes=interval_minutes, created=created)

            def opted(ven_id, event_id, opt_type, record=record):
                record["opt"][ven_id] = opt_type
                log.info("vtn opt event=%s ven_id=%s opt=%s", event_id, ven_id, opt_type)

            self.server.add_raw_event(ven_id=ven_id, event=event, callback=opted)
        self.issued.append(record)
        log.info("vtn issued event=%s resource=%s kw=%g start=%s end=%s vens=%s", event_id, resource_id, kw,
                 record["start"], record["end"], ",".join(ven_ids))
        return record

    def cancel(self, event_id: str) -> dict:
        record = next((r for r in self.issued if r["event_id"] == event_id), None)
        if record is None:
            raise KeyError(event_id)
        for ven_id in record["ven_ids"]:
            self.server.cancel_event(ven_id, event_id)
        record["status"] = "cancelled"
        log.info("vtn cancelled event=%s", event_id)
        return record

    # ---------------------------------------------------------------- admin routes

    def _authorized(self, request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.admin_token.encode())

    @staticmethod
    def _json(body: dict | list, status: int = 200):
        from aiohttp import web

        return web.json_response(body, status=status)

    async def _health(self, request):
        return self._json({"status": "ok", "vtn_url": self.vtn_url, "registered": sorted(self.registered)})

    async def _list(self, request):
        if not self._authorized(request):
            return self._json({"error": "missing or invalid admin token"}, 401)
        return self._json(self.issued)

    async def _issue(self, request):
        if not self._authorized(request):
            return self._json({"error": "missing or invalid admin token"}, 401)
        try:
            body = json.loads(await request.read())
            start = dt.datetime.fromisoformat(str(body["start"]).replace("Z", "+00:00"))
            duration = dt.timedelta(seconds=float(body["duration_s"]))
            record = self.issue(start=start, duration=duration, kw=float(body["kw"]),
                                resource_id=str(body["resource_id"]),
                                interval_minutes=int(body.get("interval_minutes", 5)))
        except (ValueError, KeyError, TypeError) as exc:
            detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            return self._json({"error": f"cannot issue the event: {detail}"}, 400)
        return self._json(record, 201)

    async def _cancel(self, request):
        if not self._authorized(request):
            return self._json({"error": "missing or invalid admin token"}, 401)
        try:
            return self._json(self.cancel(request.match_info["event_id"]))
        except KeyError:
            return self._json({"error": f"no event {request.match_info['event_id']} was issued here"}, 404)


async def run_vtn(*, ready_file: Path | None, stop: asyncio.Event, host: str = "127.0.0.1",
                  port: int = DEFAULT_PORT, ven_name: str = "der-ven", poll_s: int = 2) -> None:
    """Serve the demo VTN until ``stop``; the ready file says where, once it listens."""
    vtn = DemoVTN(host=host, port=port, ven_name=ven_name, poll_s=poll_s)
    await vtn.start()
    try:
        written = None
        while not stop.is_set():
            body = vtn.ready()
            if ready_file is not None and body != written:  # rewritten when a VEN registers
                write_atomic(ready_file, lambda tmp, b=body: tmp.write_text(json.dumps(b, indent=1) + "\n"),
                             private=True)  # it holds the admin token
                written = body
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except TimeoutError:
                pass
    finally:
        await vtn.stop()
