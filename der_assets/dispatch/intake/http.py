"""The instruction webhook: POST /instructions with the DESIGN.md JSON, authenticated.

Order matters: authenticate, then land, then parse. An unauthenticated body is never written
anywhere (the landing zone is evidence for settlement, not a place for strangers' bytes).

Authentication: ``X-DER-Signature: sha256=<hex HMAC-SHA256>`` with ``X-DER-Timestamp: <Unix
seconds>``, and/or ``Authorization: Bearer <token>``. The HMAC input is the timestamp, a dot, then
the raw body (``b"1752601200." + body``), so a captured request cannot be replayed later: a
timestamp more than ``MAX_SKEW_S`` (5 minutes) from the server's clock is refused with 401 and its
reason. Every credential presented must verify and at least one must be presented; comparisons are
constant-time. An app with neither secret configured refuses to build rather than run open.

Nothing is read before the headers pass: no credential header is a 401, no Content-Length on a
body that is not chunked is a 411, a declared length over the limit is a 413, and a wrong bearer
token or a stale timestamp is a 401, all before the first byte of the body. The body is then
streamed with a hard limit (chunked bodies too): the 413 comes as soon as it is exceeded.

Responses are one-line JSON: 201 {"outcome": new|modified|cancelled, ...}; 200 for duplicate or
stale; 400 {"error", "field"} for a malformed or impossible instruction (an unknown resource
among them); 409 for the same (instruction_id, modification) with a different schedule; 401;
411; 413 for an oversized body; 503 when the warehouse cannot be reached (send again).

``GET /health`` (no credentials, nothing secret in it) answers 200 {"status": "ok", ...} when
the warehouse answers and 503 when it does not, with the running intake's component health.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Callable, Collection

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from der_assets.dispatch.errors import DispatchInputError
from der_assets.dispatch.intake.jsonbody import receive_json
from der_assets.dispatch.intake.store import InstructionConflict, Outcome

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-DER-Signature"
TIMESTAMP_HEADER = "X-DER-Timestamp"
MAX_BODY_BYTES = 1_000_000
MAX_SKEW_S = 300
_CREATED = {Outcome.NEW, Outcome.MODIFIED, Outcome.CANCELLED}


def sign(body: bytes, secret: bytes, timestamp: int) -> str:
    """The X-DER-Signature value: HMAC-SHA256 of ``b"<timestamp>." + body`` (see the module docstring)."""
    return "sha256=" + hmac.new(secret, str(int(timestamp)).encode() + b"." + body, hashlib.sha256).hexdigest()


def signed_headers(body: bytes, secret: bytes, now: dt.datetime | None = None) -> dict[str, str]:
    """The two headers a sender adds to POST ``body`` signed now (senders and tests use this)."""
    timestamp = int((now or dt.datetime.now(dt.timezone.utc)).timestamp())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(body, secret, timestamp)}


class Refused(Exception):
    """A request refused before or while its body is read: the status and the one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def check_headers(headers, *, hmac_secret: bytes | None, bearer_token: str | None, max_body_bytes: int,
                  now: dt.datetime) -> int | None:
    """Everything that can be judged before reading the body; the signed timestamp, when signed.

    Raises ``Refused`` (401, 411, 413). The signature itself needs the body: ``check_signature``.
    """
    signature = headers.get(SIGNATURE_HEADER)
    authorization = headers.get("Authorization")
    if signature is None and authorization is None:
        raise Refused(401, f"missing credentials: {SIGNATURE_HEADER} with {TIMESTAMP_HEADER}, or a bearer token")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if bearer_token is None or scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), bearer_token.encode()):
            raise Refused(401, "missing or invalid credentials")
    timestamp = None
    if signature is not None:
        if hmac_secret is None:
            raise Refused(401, "missing or invalid credentials")
        raw = (headers.get(TIMESTAMP_HEADER) or "").strip()
        if not raw.isdigit() or len(raw) > 12:
            raise Refused(401, f"a signed request needs {TIMESTAMP_HEADER}: Unix seconds, signed with the body")
        timestamp = int(raw)
        skew = timestamp - now.timestamp()
        if abs(skew) > MAX_SKEW_S:
            raise Refused(401, f"{TIMESTAMP_HEADER} is {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} "
                               f"the server's clock; at most {MAX_SKEW_S} s is accepted (a replay or a wrong clock)")
    declared = headers.get("content-length")
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if declared is None and not chunked:
        raise Refused(411, "Content-Length is required (or a chunked body)")
    if declared is not None:
        if not declared.strip().isdigit():
            raise Refused(400, f"Content-Length {declared!r} is not a number of bytes")
        if int(declared) > max_body_bytes:
            raise Refused(413, f"body over {max_body_bytes} bytes")
    return timestamp


def check_signature(headers, body: bytes, hmac_secret: bytes, timestamp: int) -> None:
    """Raise ``Refused(401)`` unless X-DER-Signature is the HMAC of this timestamp and body."""
    presented = headers.get(SIGNATURE_HEADER, "").strip().encode()
    if not hmac.compare_digest(presented, sign(body, hmac_secret, timestamp).encode()):
        raise Refused(401, "missing or invalid credentials")


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, streamed; ``Refused(413)`` as soon as more than ``limit`` bytes arrive."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message.replace("\n", " "), "field": field}, status_code=status)


def build_app(
    engine: Engine,
    *,
    hmac_secret: bytes | None,
    bearer_token: str | None,
    resource_ids: Collection[str] | None = None,
    max_body_bytes: int = MAX_BODY_BYTES,
    health: Callable[[], dict] | None = None,
) -> Starlette:
    """The webhook app.

    ``resource_ids``, when given, is what we accept instructions for; it is consulted on every
    request, so a live collection (``intake.resources.RegistryResources``) follows the registry.
    ``health`` adds the running service's component lines to ``GET /health``.
    """
    if not hmac_secret and not bearer_token:
        raise ValueError("the instruction webhook needs hmac_secret or bearer_token; it never runs unauthenticated")
    resources = resource_ids

    async def post_instruction(request: Request) -> JSONResponse:
        received_at = dt.datetime.now(dt.timezone.utc)
        client = request.client.host if request.client else "?"
        try:
            timestamp = check_headers(request.headers, hmac_secret=hmac_secret, bearer_token=bearer_token,
                                      max_body_bytes=max_body_bytes, now=received_at)
            body = await read_limited(request, max_body_bytes)
            if timestamp is not None:
                check_signature(request.headers, body, hmac_secret, timestamp)
        except Refused as exc:
            log.warning("webhook refused POST /instructions from %s: %d %s", client, exc.status, exc.reason)
            headers = {"WWW-Authenticate": 'Bearer realm="der-instructions"'} if exc.status == 401 else {}
            # the body may be unread: close the connection rather than drain it
            headers["Connection"] = "close"
            return JSONResponse({"error": exc.reason, "field": None}, status_code=exc.status, headers=headers)
        return await run_in_threadpool(_intake, body, received_at)

    def _intake(body: bytes, received_at: dt.datetime) -> JSONResponse:
        try:
            instruction, outcome, landed = receive_json(engine, body, channel="http", source="http",
                                                        received_at=received_at, resource_ids=resources)
        except InstructionConflict as exc:
            log.warning("webhook conflict: %s", exc)
            return _error(409, str(exc), exc.field)
        except DispatchInputError as exc:
            log.warning("webhook rejected: %s", exc)
            return _error(400, str(exc), exc.field)
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.DisconnectionError) as exc:
            log.error("webhook could not record (warehouse): %s", type(exc).__name__)
            return JSONResponse({"error": "the warehouse is unreachable; nothing was recorded, send again",
                                 "field": None}, status_code=503, headers={"Retry-After": "5"})
        log.info("webhook instruction=%s modification=%s resource=%s outcome=%s", instruction.instruction_id,
                 instruction.modification, instruction.resource_id, outcome.value)
        return JSONResponse(
            {"outcome": outcome.value, "instruction_id": instruction.instruction_id,
             "modification": instruction.modification, "raw_sha256": landed.sha256},
            status_code=201 if outcome in _CREATED else 200,
        )

    def _health() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            warehouse, status = "ok", 200
        except sa.exc.SQLAlchemyError as exc:
            warehouse, status = f"unreachable: {type(exc).__name__}", 503
        extra = health() if health is not None else {}
        return JSONResponse({"status": "ok" if status == 200 else "degraded", "warehouse": warehouse, **extra},
                            status_code=status)

    async def get_health(request: Request) -> JSONResponse:
        return await run_in_threadpool(_health)

    return Starlette(routes=[Route("/instructions", post_instruction, methods=["POST"]),
                             Route("/health", get_health, methods=["GET"])])
