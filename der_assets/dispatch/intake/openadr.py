"""OpenADR 2.0b intake: a VEN (openleadr's ``OpenADRClient``) that records each event it is sent.

Mapping of an oadrDistributeEvent event (as openleadr's parser gives it) to an instruction:

- ``eventID`` -> instruction_id, ``modificationNumber`` -> modification, ``createdDateTime`` ->
  issued_at, ``eventStatus == cancelled`` -> a cancellation, ``eiActivePeriod`` dtstart/duration
  -> start/end, the chosen signal's intervals -> interval_minutes and target_kw.
- The resource is the event's ``resourceID`` target when it names one, else the configured one.

OpenADR quirks handled here (so nothing downstream knows them):

- Which signal carries kW. Events often carry several signals (the EPRI fixture has an
  ENERGY_PRICE price signal beside a SIMPLE one). We take a ``LOAD_DISPATCH`` signal of type
  ``setpoint`` with a ``powerReal`` item base (W times its SI scale code: k, M, ...) as the
  resource's required output. A ``SIMPLE`` signal carries levels 0-3, not kW: it is accepted
  only with a configured ``simple_levels_kw`` (the program agreement's level -> kW table), never
  guessed. Price and other signals are ignored; an event with no usable signal is rejected.
- ``simple`` in lower case is legal (2.0a heritage, and what EPRI's VTN sends); names compare
  case-insensitively.
- Interval ``dtstart`` is optional: absent, intervals run back to back from the active
  period's dtstart in ``uid`` order. Intervals of unequal length are expanded onto the gcd
  grid (a 60-minute level is two 30-minute levels), which is exact, not an interpolation.
- A duration of PT0S means "until further notice"; the contract needs an end, so it is rejected.
- Cancellation bumps modificationNumber (openleadr's VTN does; the spec requires it) and keeps
  the signals, so a cancelled event still converts.
- ``testEvent`` true: landed and acknowledged, not recorded (a test must not move batteries).
- openleadr itself remembers (event_id, modificationNumber) per process and calls
  ``on_event``/``on_update_event`` only for new ones; after a restart the VTN's re-sends reach
  the store, which answers ``duplicate``.
- openleadr exposes the XML only through hooks, as ``str``. ``before_parse_xml`` (after
  schema validation) lands every oadrDistributeEvent, re-encoded as UTF-8, before it is parsed;
  ``after_parse_xml`` ties the landed payload to the events it carried. Polls that return an
  empty oadrResponse every second are not landed. If no XML was seen for an event (a caller
  driving the handlers directly), the event dict is landed as JSON instead.
- Hostile or broken XML. Every VTN answer is screened before openleadr's lxml parser sees it
  (``openadr_xml``: a DTD or an entity crashes that parser's process). A refused answer, one
  that fails the 2.0b schema, or one whose signature does not verify is landed and marked
  ``quarantined`` with the reason (once per distinct body), and openleadr ignores it.
- Signatures. With ``vtn_fingerprint`` (``DER_OPENADR_VTN_FINGERPRINT``) every VTN message must
  carry an XML signature by the certificate with that fingerprint (openleadr's own check, plus
  the quarantine here). Without it, which is the default, messages are taken unsigned: anyone who
  can answer the VEN's polls can dispatch the fleet. A signed message seen without a configured
  fingerprint is logged once with the certificate's fingerprint, so the operator can pin it.
- A handler error makes openleadr opt out, and it will not offer that modification again in
  this process: the raw XML is still in the landing zone (``quarantined``) for a replay.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Collection, Mapping
from functools import reduce

from sqlalchemy.engine import Engine

from der_assets.connectors.landing import LandedPayload, land, mark
from der_assets.dispatch.contract import Instruction, parse_instruction
from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.intake.openadr_xml import install as install_xml_screen
from der_assets.dispatch.intake.openadr_xml import screen
from der_assets.dispatch.intake.store import check_storable, record_instruction

log = logging.getLogger(__name__)

SOURCE = "oadrDistributeEvent"
MIN_POLL = dt.timedelta(seconds=1)
_SI_SCALE = {"p": 1e-12, "n": 1e-9, "micro": 1e-6, "m": 1e-3, "c": 1e-2, "d": 1e-1, "none": 1.0,
             "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


# --------------------------------------------------------------------------------------------
# event dict -> Instruction (pure)


def _bad(message: str, field: str) -> DispatchInputError:
    return DispatchInputError(SOURCE, message, field=field)


def event_cancelled(event: Mapping) -> bool:
    return str(event["event_descriptor"].get("event_status", "")).lower() == "cancelled"


def is_test_event(event: Mapping) -> bool:
    # The schema types testEvent as a string; "true" may carry extra text after it.
    flag = event["event_descriptor"].get("test_event", False)
    return flag is True or (isinstance(flag, str) and flag.strip().lower().startswith("true"))


def _signals(event: Mapping) -> list[Mapping]:
    signals = event.get("event_signals") or []
    if isinstance(signals, Mapping):  # openleadr sometimes nests them one level deeper
        signals = signals.get("event_signals") or []
    return list(signals)


def _kw_factor(signal: Mapping) -> float:
    measurement = signal.get("measurement") or signal.get("item_base")
    if not measurement:
        raise _bad("LOAD_DISPATCH setpoint has no itemBase, so its unit is unknown", "event_signals")
    name, unit, scale = measurement.get("name"), measurement.get("unit"), measurement.get("scale") or "none"
    if name not in ("powerReal", "real_power") or unit != "W" or scale not in _SI_SCALE:
        raise _bad(f"LOAD_DISPATCH itemBase {name}/{scale}{unit} is not real power in W",
                   "event_signals")
    return _SI_SCALE[scale] / 1e3


def _choose_signal(event: Mapping, simple_levels_kw: Mapping[int, float] | None):
    """(signal, payload -> kW) for the one signal that says how much the resource must deliver."""
    signals = _signals(event)
    dispatch = [s for s in signals
                if s.get("signal_name") == "LOAD_DISPATCH" and s.get("signal_type") == "setpoint"]
    if len(dispatch) > 1:
        raise _bad(f"{len(dispatch)} LOAD_DISPATCH setpoint signals; expected one", "event_signals")
    if dispatch:
        factor = _kw_factor(dispatch[0])
        return dispatch[0], lambda value: float(value) * factor
    simple = [s for s in signals if str(s.get("signal_name", "")).upper() == "SIMPLE"]
    if len(simple) > 1:
        raise _bad(f"{len(simple)} SIMPLE signals; expected one", "event_signals")
    if simple:
        if simple_levels_kw is None:
            raise _bad("a SIMPLE signal gives levels, not kW; configure simple_levels_kw", "event_signals")

        def level_kw(value) -> float:
            value = float(value)
            if not math.isfinite(value) or value != int(value) or int(value) not in simple_levels_kw:
                raise _bad(f"SIMPLE level {value:g} has no kW in simple_levels_kw", "event_signals")
            return float(simple_levels_kw[int(value)])

        return simple[0], level_kw
    seen = ", ".join(f"{s.get('signal_name')}/{s.get('signal_type')}" for s in signals) or "none"
    raise _bad(f"no LOAD_DISPATCH setpoint or SIMPLE signal (signals: {seen})", "event_signals")


def _resource(event: Mapping, configured: str | None) -> str:
    named = list((event.get("targets_by_type") or {}).get("resource_id") or [])
    if not named:
        named = [t["resource_id"] for t in event.get("targets") or [] if t.get("resource_id")]
    if not named:
        if configured is None:
            raise _bad("the event names no resourceID and none is configured", "resource_id")
        return configured
    if configured is not None:
        if configured not in named:
            raise _bad(f"the event targets {', '.join(named)}, not {configured}", "resource_id")
        return configured
    if len(named) > 1:
        raise _bad(f"the event targets several resources ({', '.join(named)}); configure one", "resource_id")
    return named[0]


def _seconds(value) -> float:
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def instruction_from_event(
    event: Mapping,
    *,
    iso: str,
    resource_id: str | None,
    simple_levels_kw: Mapping[int, float] | None = None,
) -> Instruction:
    """One event (an element of openleadr's ``payload["events"]``) as a validated ``Instruction``."""
    descriptor = event["event_descriptor"]
    active = event["active_period"]
    start: dt.datetime = active["dtstart"]
    duration_s = _seconds(active["duration"])
    if duration_s <= 0:
        raise _bad("an open-ended event (duration PT0S) has no end to plan for", "end")
    signal, to_kw = _choose_signal(event, simple_levels_kw)
    intervals = list(signal.get("intervals") or [])
    if not intervals:
        raise _bad("the signal has no intervals", "target_kw")
    if all(isinstance(i.get("uid"), int) for i in intervals):
        intervals.sort(key=lambda i: i["uid"])
    at, pieces = start, []
    for interval in intervals:
        given = interval.get("dtstart")
        if given is not None and given != at:
            raise _bad(f"interval uid {interval.get('uid')} starts {given.isoformat()}, "
                       f"expected {at.isoformat()}", "start")
        seconds = _seconds(interval["duration"])
        if seconds <= 0 or seconds % 60:
            raise _bad(f"interval uid {interval.get('uid')} lasts {seconds:g} s, not whole minutes",
                       "interval_minutes")
        pieces.append((int(seconds // 60), to_kw(interval["signal_payload"])))
        at += dt.timedelta(seconds=seconds)
    covered_min = sum(m for m, _ in pieces)
    if covered_min * 60 != duration_s:
        raise _bad(f"the signal covers {covered_min} min but the event lasts {duration_s / 60:g} min",
                   "end")
    step = reduce(math.gcd, (m for m, _ in pieces))
    target = [kw for minutes, kw in pieces for _ in range(minutes // step)]
    data = {
        "instruction_id": descriptor["event_id"],
        "modification": descriptor["modification_number"],
        "iso": iso,
        "resource_id": _resource(event, resource_id),
        "issued_at": descriptor["created_date_time"].isoformat(),
        "start": start.isoformat(),
        "end": (start + dt.timedelta(seconds=duration_s)).isoformat(),
        "interval_minutes": step,
        "target_kw": target,
    }
    return parse_instruction(data, SOURCE)


# --------------------------------------------------------------------------------------------
# the VEN


class InstructionVEN:
    """An OpenADR 2.0b VEN whose only job is to land and record the instructions it is sent.

    ``run()`` registers with the VTN and starts polling at the VTN's requested frequency;
    ``stop()`` ends it. ``results`` lists (event_id, modification, outcome or error) in
    arrival order, for logs and tests. The opt response is optIn for a recorded instruction
    (a capacity resource is obliged to perform) and optOut for one we could not understand
    or whose resource is not in ``resource_ids`` (when given). ``last_reply_at`` is when the
    VTN last answered with a valid message (a poll included), for the intake's health line.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        vtn_url: str,
        ven_name: str,
        iso: str,
        resource_id: str | None = None,
        simple_levels_kw: Mapping[int, float] | None = None,
        resource_ids: Collection[str] | None = None,
        **client_options,
    ):
        from openleadr import OpenADRClient  # optional dependency: only the VEN needs it

        install_xml_screen()
        self.engine = engine
        self.iso = iso
        self.resource_id = resource_id
        self.resource_ids = resource_ids
        self.last_reply_at: dt.datetime | None = None
        self.simple_levels_kw = dict(simple_levels_kw) if simple_levels_kw is not None else None
        self.results: list[tuple[str, int, str]] = []
        self._xml: LandedPayload | None = None
        self._landed: dict[tuple[str, int], tuple[LandedPayload, bytes, dt.datetime]] = {}
        self._quarantined: set[int] = set()  # one bad event in a message keeps the message quarantined
        self.refused: list[str] = []  # reasons VTN answers were quarantined before parsing, in order
        self._refused_sha: set[str] = set()
        self._signed_warned = False
        client_options.setdefault("show_fingerprint", False)
        self.client = OpenADRClient(ven_name=ven_name, vtn_url=vtn_url, **client_options)
        self.client.add_handler("on_event", self._handle)
        self.client.add_handler("on_update_event", self._handle)
        self.client.add_hook("after_receive_xml", self._check_received)
        self.client.add_hook("before_parse_xml", self._land_xml)
        self.client.add_hook("after_parse_xml", self._tie_xml)
        register = self.client.create_party_registration

        async def registered(*args, **kwargs):
            # openleadr reads a requested poll period under 1 s (PT0.5S) as 0 and would then poll
            # without pause; a VEN never polls faster than once a second
            result = await register(*args, **kwargs)
            frequency = self.client.poll_frequency
            if frequency is not None and frequency < MIN_POLL:
                log.warning("openadr VTN asked for a %ss poll period; polling every %ss", frequency.total_seconds(),
                            MIN_POLL.total_seconds())
                self.client.poll_frequency = MIN_POLL
            return result

        self.client.create_party_registration = registered

    async def run(self) -> None:
        await self.client.run()

    async def stop(self) -> None:
        await self.client.stop()

    # hooks run synchronously inside openleadr's request, so the ones below see the same message
    def _check_received(self, content: str) -> None:
        """Every VTN answer, before openleadr validates it: what it will refuse is kept, quarantined."""
        if not content.strip():
            return
        reason = screen(content)
        if reason is None:
            reason = self._validation_problem(content)
        if reason is None:
            return
        raw = content.encode("utf-8")
        sha = hashlib.sha256(raw).hexdigest()
        if sha in self._refused_sha:  # the same answer again (a VTN repeating itself): kept once
            return
        self._refused_sha.add(sha)
        landed = land(self.engine, raw, source="dispatch", endpoint="openadr",
                      received_at=dt.datetime.now(dt.timezone.utc))
        mark(self.engine, landed.payload_id, "quarantined", reason)
        self.refused.append(reason)
        log.error("openadr answer from %s quarantined (raw %s): %s", self.client.vtn_url, sha[:12], reason)

    def _validation_problem(self, content: str) -> str | None:
        """Why openleadr would drop a screened message (schema, signature), or None."""
        from lxml.etree import XMLSyntaxError
        from openleadr import messaging, utils

        from der_assets.dispatch.intake.openadr_xml import validate_schema

        try:
            tree = validate_schema(content)
        except XMLSyntaxError as exc:
            return f"fails the OpenADR 2.0b schema: {exc}"
        fingerprint = self.client.vtn_fingerprint
        if fingerprint:
            # the certificate and the signature, as openleadr checks them next; not its ReplayProtect
            # nonce, which it records as used (checking it here would make openleadr refuse every message)
            try:
                cert = utils.extract_pem_cert(tree)
                seen = utils.certificate_fingerprint(cert)
                if seen != fingerprint:
                    raise ValueError(f"FingerprintMismatch: the certificate is {seen}, expected {fingerprint}")
                messaging.VERIFIER.verify(tree, x509_cert=utils.ensure_bytes(cert), expect_references=2)
            except Exception as exc:  # unsigned, invalid, another certificate
                return f"XML signature not verified against the VTN fingerprint: {type(exc).__name__}: {exc}"
        elif not self._signed_warned and tree.find(".//{http://www.w3.org/2000/09/xmldsig#}Signature") is not None:
            self._signed_warned = True
            try:
                seen = utils.certificate_fingerprint(utils.extract_pem_cert(tree))
            except Exception:
                seen = "unreadable"
            log.warning("openadr VTN %s signs its messages (certificate fingerprint %s) but no fingerprint is "
                        "configured, so signatures are not checked; set DER_OPENADR_VTN_FINGERPRINT",
                        self.client.vtn_url, seen)
        return None

    def _land_xml(self, content: str) -> None:
        self._xml = None
        self.last_reply_at = dt.datetime.now(dt.timezone.utc)
        if "oadrDistributeEvent" not in content:
            return
        raw = content.encode("utf-8")
        received_at = dt.datetime.now(dt.timezone.utc)
        self._xml = land(self.engine, raw, source="dispatch", endpoint="openadr", received_at=received_at)
        self._xml_bytes, self._xml_at = raw, received_at

    def _tie_xml(self, message_type: str, payload: Mapping) -> None:
        if message_type != "oadrDistributeEvent" or self._xml is None:
            return
        for event in payload.get("events") or []:
            d = event["event_descriptor"]
            self._landed[(d["event_id"], d["modification_number"])] = (self._xml, self._xml_bytes, self._xml_at)
        self._xml = None

    async def _handle(self, event: Mapping) -> str:
        d = event["event_descriptor"]
        key = (d["event_id"], d["modification_number"])
        landed = self._landed.pop(key, None)
        if landed is None:
            raw = json.dumps(event, default=str, sort_keys=True).encode()
            received_at = dt.datetime.now(dt.timezone.utc)
            payload = await asyncio.to_thread(land, self.engine, raw, source="dispatch", endpoint="openadr",
                                              received_at=received_at)
            landed = (payload, raw, received_at)
        payload, raw, received_at = landed
        try:
            if is_test_event(event):
                await asyncio.to_thread(mark, self.engine, payload.payload_id, "parsed")
                self.results.append((*key, "test event, not recorded"))
                return "optIn"
            instruction = instruction_from_event(event, iso=self.iso, resource_id=self.resource_id,
                                                 simple_levels_kw=self.simple_levels_kw)
            if self.resource_ids is not None:
                await asyncio.to_thread(check_storable, instruction, source=SOURCE, resource_ids=self.resource_ids)
            outcome = await asyncio.to_thread(record_instruction, self.engine, instruction, channel="openadr",
                                              raw=raw, received_at=received_at, cancelled=event_cancelled(event))
        except DispatchInputError as exc:
            self._quarantined.add(payload.payload_id)
            await asyncio.to_thread(mark, self.engine, payload.payload_id, "quarantined", str(exc))
            log.error("openadr event=%s modification=%s rejected: %s", *key, exc)
            self.results.append((*key, f"rejected: {exc}"))
            return "optOut"
        if payload.payload_id not in self._quarantined:
            await asyncio.to_thread(mark, self.engine, payload.payload_id, "parsed")
        log.info("openadr event=%s modification=%s resource=%s outcome=%s", *key, instruction.resource_id,
                 outcome.value)
        self.results.append((*key, outcome.value))
        return "optIn"
