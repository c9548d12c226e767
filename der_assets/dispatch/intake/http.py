"""The instruction webhook: POST /instructions with the DESIGN.md JSON, authenticated.

Order matters: authenticate, then land, then parse. An unauthenticated body is never written
anywhere (the landing zone is evidence for settlement, not a place for strangers' bytes).

Authentication: ``X-DER-Signature: sha256=<hex HMAC-SHA256 of the raw body>`` and/or
``Authorization: Bearer <token>``. Every credential presented must verify and at least one
must be presented; comparisons are constant-time. An app with neither secret configured
refuses to build rather than run open.

Responses are one-line JSON: 201 {"outcome": new|modified|cancelled, ...}; 200 for duplicate or
stale; 400 {"error", "field"} for a malformed or impossible instruction (an unknown resource
among them); 409 for the same (instruction_id, modification) with a different schedule; 401;
413 for an oversized body.

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
MAX_BODY_BYTES = 1_000_000
_CREATED = {Outcome.NEW, Outcome.MODIFIED, Outcome.CANCELLED}


def sign(body: bytes, secret: bytes) -> str:
    """The X-DER-Signature header value for ``body`` (senders and tests use this)."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _authorized(request: Request, body: bytes, hmac_secret: bytes | None, bearer_token: str | None) -> bool:
    presented = 0
    signature = request.headers.get(SIGNATURE_HEADER)
    if signature is not None:
        presented += 1
        if hmac_secret is None or not hmac.compare_digest(signature.strip().encode(), sign(body, hmac_secret).encode()):
            return False
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        presented += 1
        scheme, _, token = authorization.partition(" ")
        if bearer_token is None or scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), bearer_token.encode()
        ):
            return False
    return presented > 0


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
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return _error(413, f"body over {max_body_bytes} bytes")
        body = await request.body()
        if len(body) > max_body_bytes:
            return _error(413, f"body over {max_body_bytes} bytes")
        if not _authorized(request, body, hmac_secret, bearer_token):
            client = request.client.host if request.client else "?"
            log.warning("webhook refused unauthenticated POST /instructions from %s (%d bytes)", client, len(body))
            return JSONResponse({"error": "missing or invalid credentials"}, status_code=401,
                                headers={"WWW-Authenticate": 'Bearer realm="der-instructions"'})
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
