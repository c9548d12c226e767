"""Green Button Connect My Data (NAESB REQ.21 ESPI REST) served from the twin's revenue meters.

Why: the Connect connector must meet the utility's real OAuth flow and Atom resource shapes over
HTTP, and a Connect pull must tell the same story as the inbox files (simulator/greenbutton.py):
the same quarter-hours, whole Wh, forward and reverse MeterReadings, one IntervalBlock per meter
and local day, published when the inbox file would have been delivered (24-48 h after the day).

Verification status: DOC-BASED. Sources:
- Resource paths: OpenESPI DataCustodian's route list (GET /resource/Authorization,
  /resource/Subscription/{subscriptionId}/UsagePoint[/{usagePointId}[/MeterReading[/{id}
  [/IntervalBlock[/{id}]]]]], /resource/ReadingType/{id}, /resource/LocalTimeParameters/{id},
  /resource/Batch/Subscription/{subscriptionId}[/UsagePoint/{usagePointId}]), under
  /espi/1_1/resource.
- published-min / published-max: inclusive bounds on an entry's Atom `published`, as ISO 8601 or
  epoch seconds (Xcel Energy's Connect API collection, Batch and IntervalBlock requests).
- Tokens: the Green Button Alliance's "Access Tokens" page: an access_token per customer
  authorization, a refresh_token issued with it to renew it, and resourceURI
  (.../Batch/Subscription/{id}) and authorizationURI (.../Authorization/{id}) with each.
- Authorization resource elements (authorizedPeriod, publishedPeriod, status 1 = active,
  expires_at, grant_type, scope, token_type, resourceURI, authorizationURI): the GBA
  Authorization resource page (green-button.github.io/espi/authorization).
- The OAuth 2.0 authorization code grant (RFC 6749 4.1; client authentication with HTTP Basic,
  RFC 6749 2.3.1) as UtilityAPI documents it for Green Button: /oauth/authorize with
  response_type=code, client_id, redirect_uri, scope, state.

What the twin does (its own choices, stated):
- One data custodian for the fleet. Authorization "1" is pre-consented (its refresh token is in
  the ready file, as the other vendors' OAuth tokens are): its Subscription holds every meter of
  the registry. /oauth/authorize consents at once (no login page); `login_hint=<site_id>` makes
  an authorization whose Subscription holds that retail customer's meter only.
- UsagePoint ids are the registry's meter ids, as in the inbox files.
- Refresh tokens rotate: each refresh answers a new one and the old one is refused afterwards
  (invalid_grant). Access tokens live `access_ttl_s` on the server's own clock (`wall`, the
  wall clock, not the twin's replay clock); an expired one is a 401 with
  `WWW-Authenticate: Bearer error="invalid_token"`.
- A Batch answer carries each published IntervalBlock with the entries it links to (UsagePoint,
  LocalTimeParameters, MeterReading, ReadingType), so every answer reads on its own;
  published-min/max select the IntervalBlocks. With no block in the window the feed has no entry.
  The feed's `updated` is the twin's now (seconds), which says how far the answer reaches.
- Rate limit: `rate_limit` = (requests, window_s) per client, a sliding window; beyond it a 429
  with Retry-After (whole seconds until a slot frees). None lifts it (history replays).
- Hrefs are absolute (scheme://host/espi/1_1/resource/...), as a utility serves them.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

import numpy as np
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from der_assets.simulator.greenbutton import (ESPI_NS, FORWARD, REVERSE, _block, _entry, _reading_type, _urn,
                                              day_window, delivery_delay, local_time_parameters, meter_intervals)
from der_assets.simulator.hub import TwinHub
from der_assets.simulator.servers.common import FaultMiddleware

VENDOR = "greenbutton"
ROOT = "/espi/1_1/resource"
ATOM = "application/atom+xml"
DEFAULT_SCOPE = "FB=4_5_15;IntervalDuration=900;BlockDuration=daily;HistoryLength=13"
DIRECTIONS = ((FORWARD, "forward_wh", "Delivered (grid import)"), (REVERSE, "reverse_wh", "Received (grid export)"))


def _stamp(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bound(text: str | None) -> pd.Timestamp | None:
    """A published-min/max value: ISO 8601 (UTC when no offset) or epoch seconds; ValueError otherwise."""
    if text is None or text == "":
        return None
    text = text.strip()
    if text.lstrip("-").isdigit():
        return pd.Timestamp(int(text), unit="s", tz="UTC")
    ts = pd.Timestamp(text)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass
class _Authorization:
    auth_id: str
    sites: list[str]
    scope: str
    refresh_token: str
    created: pd.Timestamp
    status: int = 1


@dataclass
class _OAuth:
    """Clients, codes and tokens of the twin's authorization server (thread-safe)."""

    client_id: str
    client_secret: str
    access_ttl_s: float
    wall: Callable[[], float]
    authorizations: dict[str, _Authorization] = field(default_factory=dict)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (auth_id, redirect_uri)
    access: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (auth_id, expires at wall)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client_ok(self, request: Request, form) -> bool:
        header = request.headers.get("Authorization", "")
        cid, secret = form.get("client_id"), form.get("client_secret")
        if header.startswith("Basic "):
            try:
                cid, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return False
        return (cid is not None and secret is not None and _same(cid, self.client_id)
                and _same(secret, self.client_secret))

    def issue(self, auth: _Authorization, *, rotate: bool) -> dict:
        now = self.wall()
        self.access = {t: held for t, held in self.access.items() if held[1] > now}  # forget expired tokens
        token = secrets.token_hex(24)
        if rotate:
            auth.refresh_token = secrets.token_hex(24)
        self.access[token] = (auth.auth_id, now + self.access_ttl_s)
        return {"access_token": token, "token_type": "Bearer", "expires_in": int(self.access_ttl_s),
                "refresh_token": auth.refresh_token, "scope": auth.scope}

    def bearer(self, request: Request) -> tuple[_Authorization | None, Response | None]:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        with self.lock:
            held = self.access.get(token) if token else None
            if held is None:
                return None, _unauthorized("invalid_token", "unknown access token")
            if self.wall() >= held[1]:
                return None, _unauthorized("invalid_token", "the access token expired")
            auth = self.authorizations[held[0]]
        if auth.status != 1:
            return None, _unauthorized("invalid_token", "the authorization was revoked")
        return auth, None


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two strings (any characters)."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def _unauthorized(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=401,
                        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'})


class _RateLimit:
    """At most `limit` requests per client in any `window_s` (sliding); the rest get a 429 with Retry-After."""

    def __init__(self, limit: int, window_s: float, wall: Callable[[], float] = time.monotonic):
        self.limit, self.window_s, self.wall = int(limit), float(window_s), wall
        self.starts: dict[str, deque] = {}
        self.lock = threading.Lock()

    def admit(self, key: str) -> float | None:
        """None when admitted, else the seconds until a slot frees."""
        with self.lock:
            now = self.wall()
            q = self.starts.setdefault(key, deque())
            while q and now - q[0] >= self.window_s:
                q.popleft()
            if len(q) >= self.limit:
                return self.window_s - (now - q[0])
            q.append(now)
            return None


class _Custodian:
    """The resource server: Atom feeds of the twin's meters, by subscription."""

    def __init__(self, hub: TwinHub, oauth: _OAuth):
        self.hub, self.oauth = hub, oauth
        sites = hub.sites[hub.sites["meter_id"].notna()] if "meter_id" in hub.sites else hub.sites.iloc[0:0]
        self.meter_of = {str(s): str(m) for s, m in sites["meter_id"].items()}
        self.site_of_meter = {m: s for s, m in self.meter_of.items()}
        self.tz_of = {str(s): str(tz) for s, tz in sites["timezone"].items()}

    # ---- which blocks exist

    def published(self, site_id: str, day: dt.date) -> pd.Timestamp:
        """When the utility published a meter's day: when the inbox file of that day is delivered."""
        _, end = day_window(self.tz_of[site_id], day)
        return (end + delivery_delay(self.meter_of[site_id], day)).floor("s")

    def days(self, site_id: str, lo: pd.Timestamp | None, hi: pd.Timestamp | None) -> list[dt.date]:
        """Local days of a meter published by now and within [lo, hi] (inclusive), oldest first."""
        now, tz = self.hub.now(), self.tz_of[site_id]
        day, out = self.hub.start.tz_convert(tz).date(), []
        while True:
            start, end = day_window(tz, day)
            if end > now:
                return out
            when = self.published(site_id, day)
            if start >= self.hub.start and when <= now and (lo is None or when >= lo) and (hi is None or when <= hi):
                out.append(day)
            day += dt.timedelta(days=1)

    # ---- entries

    def hrefs(self, base: str, sub: str, site_id: str) -> dict:
        meter = self.meter_of[site_id]
        up = f"{base}{ROOT}/Subscription/{sub}/UsagePoint/{meter}"
        return {"up": up, "ups": f"{base}{ROOT}/Subscription/{sub}/UsagePoint",
                "ltp": f"{base}{ROOT}/LocalTimeParameters/{meter}",
                "mr": {d: f"{up}/MeterReading/{n:02d}" for n, (d, _, _) in enumerate(DIRECTIONS, start=1)},
                "rt": {d: f"{base}{ROOT}/ReadingType/{meter}-{d}" for d, _, _ in DIRECTIONS}}

    def usage_point_entry(self, h: dict, site_id: str) -> str:
        stamp = _stamp(self.hub.start)
        return _entry(h["up"], h["ups"], f"Meter {self.meter_of[site_id]}",
                      f'<UsagePoint xmlns="{ESPI_NS}"><ServiceCategory><kind>0</kind></ServiceCategory></UsagePoint>',
                      related=(f"{h['up']}/MeterReading", h["ltp"]), updated=stamp)

    def ltp_entry(self, h: dict, site_id: str) -> str:
        tz = self.tz_of[site_id]
        ltp = local_time_parameters(tz, self.hub.start.year)
        return _entry(h["ltp"], h["ltp"].rsplit("/", 1)[0], f"Local time {tz}",
                      f'<LocalTimeParameters xmlns="{ESPI_NS}"><dstEndRule>{ltp["dstEndRule"]}</dstEndRule>'
                      f'<dstOffset>{ltp["dstOffset"]}</dstOffset><dstStartRule>{ltp["dstStartRule"]}</dstStartRule>'
                      f'<tzOffset>{ltp["tzOffset"]}</tzOffset></LocalTimeParameters>', updated=_stamp(self.hub.start))

    def meter_reading_entry(self, h: dict, direction: int, title: str) -> str:
        mr = h["mr"][direction]
        return _entry(mr, f"{h['up']}/MeterReading", f"Fifteen Minute Electricity {title}",
                      f'<MeterReading xmlns="{ESPI_NS}"/>', related=(f"{mr}/IntervalBlock", h["rt"][direction]),
                      updated=_stamp(self.hub.start))

    def reading_type_entry(self, h: dict, direction: int) -> str:
        rt = h["rt"][direction]
        return _entry(rt, rt.rsplit("/", 1)[0], "Type of Meter Reading Data", _reading_type(direction),
                      updated=_stamp(self.hub.start))

    def block_entries(self, h: dict, site_id: str, days: list[dt.date]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {d: [] for d, _, _ in DIRECTIONS}
        for day in days:
            start, end = day_window(self.tz_of[site_id], day)
            data = meter_intervals(self.hub, site_id, day)
            starts = (data["interval_start"].astype("int64") // 10**9).to_numpy()
            stamp = _stamp(self.published(site_id, day))
            for direction, column, _ in DIRECTIONS:
                mr = h["mr"][direction]
                out[direction].append(_entry(
                    f"{mr}/IntervalBlock/{day:%Y%m%d}", f"{mr}/IntervalBlock", "",
                    _block(int(start.value // 10**9), int((end - start).total_seconds()), starts,
                           data[column].to_numpy(dtype=np.int64)), updated=stamp))
        return out

    def tree(self, h: dict, site_id: str, days: list[dt.date]) -> list[str]:
        """A usage point's published blocks with every entry they link to; nothing when no block."""
        if not days:
            return []
        blocks = self.block_entries(h, site_id, days)
        entries = [self.usage_point_entry(h, site_id), self.ltp_entry(h, site_id)]
        for direction, _, title in DIRECTIONS:
            entries += [self.meter_reading_entry(h, direction, title), self.reading_type_entry(h, direction),
                        *blocks[direction]]
        return entries

    def feed(self, self_href: str, title: str, entries: list[str]) -> Response:
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
                f"<id>{_urn(self_href)}</id><title>{title}</title><updated>{_stamp(self.hub.now())}</updated>"
                f'<link rel="self" href="{self_href}"/>{"".join(entries)}</feed>\n')
        return Response(body.encode("utf-8"), media_type=ATOM)

    def authorization_entry(self, base: str, auth: _Authorization) -> str:
        start = int(auth.created.value // 10**9)
        year = 365 * 86400
        content = (f'<Authorization xmlns="{ESPI_NS}">'
                   f"<authorizedPeriod><duration>{year}</duration><start>{start}</start></authorizedPeriod>"
                   f"<publishedPeriod><duration>{year}</duration><start>{start}</start></publishedPeriod>"
                   f"<status>{auth.status}</status><expires_at>{start + year}</expires_at>"
                   f"<grant_type>authorization_code</grant_type><scope>{auth.scope}</scope>"
                   f"<token_type>bearer</token_type>"
                   f"<resourceURI>{base}{ROOT}/Batch/Subscription/{auth.auth_id}</resourceURI>"
                   f"<authorizationURI>{base}{ROOT}/Authorization/{auth.auth_id}</authorizationURI>"
                   f"</Authorization>")
        return _entry(f"{base}{ROOT}/Authorization/{auth.auth_id}", f"{base}{ROOT}/Authorization",
                      "Authorization", content, updated=_stamp(auth.created))


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def build_app(hub: TwinHub, *, client_id: str, client_secret: str, refresh_token: str,
              access_ttl_s: float = 3600.0, rate_limit: tuple[int, float] | None = (120, 60.0),
              wall: Callable[[], float] = time.time, scope: str = DEFAULT_SCOPE) -> Starlette:
    """The twin's data custodian: OAuth (authorize, token) and the ESPI resources of every meter."""
    oauth = _OAuth(client_id, client_secret, float(access_ttl_s), wall)
    custodian = _Custodian(hub, oauth)
    oauth.authorizations["1"] = _Authorization("1", sorted(custodian.meter_of), scope, refresh_token, hub.start)
    limiter = _RateLimit(*rate_limit) if rate_limit is not None else None

    def limited() -> Response | None:
        """A 429 with Retry-After (whole seconds until a slot frees) when the client is over its limit."""
        if limiter is not None and (wait := limiter.admit(client_id)) is not None:
            return JSONResponse({"error": "rate_limit_exceeded"}, status_code=429,
                                headers={"Retry-After": str(max(1, math.ceil(wait)))})
        return None

    def guarded(handler):
        async def endpoint(request: Request):
            if (refused := limited()) is not None:
                return refused
            auth, refused = oauth.bearer(request)
            if refused is not None:
                return refused
            return await handler(request, auth)
        return endpoint

    def subscription(request: Request, auth: _Authorization) -> Response | None:
        if request.path_params["sub"] != auth.auth_id:
            return JSONResponse({"error": "insufficient_scope"}, status_code=403)
        return None

    def site_in(request: Request, auth: _Authorization) -> str | None:
        site = custodian.site_of_meter.get(request.path_params.get("up", ""))
        return site if site in auth.sites else None

    def point(request: Request, auth: _Authorization) -> tuple[str, dict] | Response:
        """(site, hrefs) of the usage point in the path, or the 403/404 that refuses it."""
        if (refused := subscription(request, auth)) is not None:
            return refused
        if (site := site_in(request, auth)) is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return site, custodian.hrefs(_base(request), auth.auth_id, site)

    def bounds(request: Request):
        return (parse_bound(request.query_params.get("published-min")),
                parse_bound(request.query_params.get("published-max")))

    def bad(exc: Exception) -> Response:
        return JSONResponse({"error": "invalid_request", "error_description": str(exc)}, status_code=400)

    async def authorizations(request: Request, auth: _Authorization):
        base = _base(request)
        return custodian.feed(f"{base}{ROOT}/Authorization", "Authorizations",
                              [custodian.authorization_entry(base, auth)])

    async def authorization(request: Request, auth: _Authorization):
        if request.path_params["aid"] != auth.auth_id:
            return JSONResponse({"error": "insufficient_scope"}, status_code=403)
        base = _base(request)
        return custodian.feed(f"{base}{ROOT}/Authorization/{auth.auth_id}", "Authorization",
                              [custodian.authorization_entry(base, auth)])

    async def usage_points(request: Request, auth: _Authorization):
        if (refused := subscription(request, auth)) is not None:
            return refused
        base, sub = _base(request), auth.auth_id
        entries = [custodian.usage_point_entry(custodian.hrefs(base, sub, s), s) for s in auth.sites]
        return custodian.feed(f"{base}{ROOT}/Subscription/{sub}/UsagePoint", "UsagePoints", entries)

    async def one_usage_point(request: Request, auth: _Authorization):
        if isinstance(found := point(request, auth), Response):
            return found
        site, h = found
        return custodian.feed(h["up"], "UsagePoint", [custodian.usage_point_entry(h, site)])

    async def meter_readings(request: Request, auth: _Authorization):
        if isinstance(found := point(request, auth), Response):
            return found
        _, h = found
        return custodian.feed(f"{h['up']}/MeterReading", "MeterReadings",
                              [custodian.meter_reading_entry(h, d, t) for d, _, t in DIRECTIONS])

    def direction_of(request: Request) -> int | None:
        n = request.path_params["mr"]
        return {f"{i:02d}": d for i, (d, _, _) in enumerate(DIRECTIONS, start=1)}.get(n)

    async def one_meter_reading(request: Request, auth: _Authorization):
        if isinstance(found := point(request, auth), Response):
            return found
        if (direction := direction_of(request)) is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        _, h = found
        title = dict((d, t) for d, _, t in DIRECTIONS)[direction]
        return custodian.feed(h["mr"][direction], "MeterReading", [custodian.meter_reading_entry(h, direction, title)])

    async def interval_blocks(request: Request, auth: _Authorization):
        if isinstance(found := point(request, auth), Response):
            return found
        if (direction := direction_of(request)) is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        try:
            lo, hi = bounds(request)
        except ValueError as exc:
            return bad(exc)
        site, h = found
        blocks = await run_in_threadpool(lambda: custodian.block_entries(h, site, custodian.days(site, lo, hi)))
        return custodian.feed(f"{h['mr'][direction]}/IntervalBlock", "IntervalBlocks", blocks[direction])

    async def reading_type(request: Request, auth: _Authorization):
        meter, _, flow = request.path_params["rt"].rpartition("-")
        site = custodian.site_of_meter.get(meter)
        if site not in auth.sites or flow not in (str(FORWARD), str(REVERSE)):
            return JSONResponse({"error": "not_found"}, status_code=404)
        h = custodian.hrefs(_base(request), auth.auth_id, site)
        return custodian.feed(h["rt"][int(flow)], "ReadingType", [custodian.reading_type_entry(h, int(flow))])

    async def batch(request: Request, auth: _Authorization):
        if (refused := subscription(request, auth)) is not None:
            return refused
        try:
            lo, hi = bounds(request)
        except ValueError as exc:
            return bad(exc)
        base, sub = _base(request), auth.auth_id
        if "up" in request.path_params:
            if (site := site_in(request, auth)) is None:
                return JSONResponse({"error": "not_found"}, status_code=404)
            sites, self_href = [site], f"{base}{ROOT}/Batch/Subscription/{sub}/UsagePoint/{request.path_params['up']}"
        else:
            sites, self_href = auth.sites, f"{base}{ROOT}/Batch/Subscription/{sub}"

        def build() -> list[str]:
            out = []
            for s in sites:
                out += custodian.tree(custodian.hrefs(base, sub, s), s, custodian.days(s, lo, hi))
            return out

        return custodian.feed(self_href, "Green Button Usage Feed", await run_in_threadpool(build))

    async def authorize(request: Request):
        q = request.query_params
        if q.get("client_id") != client_id:
            return JSONResponse({"error": "unauthorized_client"}, status_code=400)
        redirect = q.get("redirect_uri")
        if not redirect or q.get("response_type") != "code":
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "response_type=code and redirect_uri are required"},
                                status_code=400)
        hint = q.get("login_hint")
        if hint is not None and hint not in custodian.meter_of:
            return JSONResponse({"error": "access_denied", "error_description": f"no retail customer {hint}"},
                                status_code=400)
        with oauth.lock:
            auth_id = str(len(oauth.authorizations) + 1)
            oauth.authorizations[auth_id] = _Authorization(
                auth_id, [hint] if hint else sorted(custodian.meter_of), q.get("scope") or scope,
                secrets.token_hex(24), hub.now().floor("s"))
            code = secrets.token_urlsafe(18)
            oauth.codes[code] = (auth_id, redirect)
        params = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return RedirectResponse(f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(params)}", status_code=302)

    async def token(request: Request):
        if (refused := limited()) is not None:
            return refused
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return JSONResponse({"error": "invalid_request",
                                 "error_description": "the body must be application/x-www-form-urlencoded"},
                                status_code=400)
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        if not oauth.client_ok(request, form):
            return JSONResponse({"error": "invalid_client"}, status_code=401,
                                headers={"WWW-Authenticate": 'Basic realm="oauth"'})
        grant = form.get("grant_type")
        base = _base(request)
        with oauth.lock:
            if grant == "authorization_code":
                held = oauth.codes.pop(str(form.get("code")), None)  # a code is good once
                if held is None or held[1] != form.get("redirect_uri"):
                    return JSONResponse({"error": "invalid_grant"}, status_code=400)
                auth = oauth.authorizations[held[0]]
                answer = oauth.issue(auth, rotate=False)
            elif grant == "refresh_token":
                auth = next((a for a in oauth.authorizations.values()
                             if _same(a.refresh_token, str(form.get("refresh_token")))), None)
                if auth is None or auth.status != 1:
                    return JSONResponse({"error": "invalid_grant"}, status_code=400)
                answer = oauth.issue(auth, rotate=True)
            else:
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        answer.update(resourceURI=f"{base}{ROOT}/Batch/Subscription/{auth.auth_id}",
                      authorizationURI=f"{base}{ROOT}/Authorization/{auth.auth_id}")
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    def site_of(request: Request) -> str:
        parts = request.url.path.strip("/").split("/")
        if "UsagePoint" in parts and parts.index("UsagePoint") + 1 < len(parts):
            return custodian.site_of_meter.get(parts[parts.index("UsagePoint") + 1], "*")
        return "*"

    sub = f"{ROOT}/Subscription/{{sub}}/UsagePoint"
    routes = [
        Route("/oauth/authorize", authorize),
        Route("/oauth/token", token, methods=["POST"]),
        Route(f"{ROOT}/Authorization", guarded(authorizations)),
        Route(f"{ROOT}/Authorization/{{aid}}", guarded(authorization)),
        Route(sub, guarded(usage_points)),
        Route(f"{sub}/{{up}}", guarded(one_usage_point)),
        Route(f"{sub}/{{up}}/MeterReading", guarded(meter_readings)),
        Route(f"{sub}/{{up}}/MeterReading/{{mr}}", guarded(one_meter_reading)),
        Route(f"{sub}/{{up}}/MeterReading/{{mr}}/IntervalBlock", guarded(interval_blocks)),
        Route(f"{ROOT}/ReadingType/{{rt}}", guarded(reading_type)),
        Route(f"{ROOT}/Batch/Subscription/{{sub}}", guarded(batch)),
        Route(f"{ROOT}/Batch/Subscription/{{sub}}/UsagePoint/{{up}}", guarded(batch)),
    ]
    return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, hub=hub, vendor=VENDOR, site_of=site_of)])
