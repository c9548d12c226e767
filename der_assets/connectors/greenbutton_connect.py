"""Green Button Connect My Data: the utility's ESPI REST API, pulled with OAuth 2.0. No parsing of data here.

Every Connect request quirk lives here. What it answers is ESPI Atom XML of the same shape as
an inbox file (UsagePoint, LocalTimeParameters, MeterReading, ReadingType, IntervalBlock), so it
is landed as source "greenbutton", endpoint "espi", and the ESPI parser reads it unchanged.

Sources (cited where each rule is used):
- [GBA tokens] greenbuttonalliance.org/access-tokens: an access_token per customer authorization,
  a refresh_token issued with it "used to renew an access_token"; with each a resourceURI
  (.../espi/1_1/resource/Batch/Subscription/{SubscriptionID}) and an authorizationURI
  (.../resource/Authorization/{id}). Per-subscription requests use that customer's access token.
- [OpenESPI routes] the OpenESPI DataCustodian's role list: GET /resource/Authorization,
  /resource/Subscription/{subscriptionId}/UsagePoint, /resource/Batch/Subscription/{subscriptionId}
  /UsagePoint/{usagePointId}, under /espi/1_1.
- [Xcel] Xcel Energy's Connect API collection: published-min / published-max are inclusive bounds
  on an entry's Atom `published`, ISO 8601 or epoch seconds; OAuth at /DataCustodian/oauth/authorize
  and /DataCustodian/oauth/token (authorization code flow).
- [UtilityAPI] utilityapi.com/docs/greenbutton/oauth: the authorization URL takes response_type=code,
  client_id, redirect_uri, scope and state; the code comes back on the redirect.
- [RFC 6749] the token request: grant_type=authorization_code (code, redirect_uri) or refresh_token,
  the client authenticated with HTTP Basic (2.3.1); a refresh may answer a new refresh token (6),
  which then replaces the old one.
- [PG&E] pge.com third-party page (Share My Data threshold limits): 1 request a second per
  vendor, 2,000 an hour and 20,000 a day per client id. The default budget, 60 a minute, keeps the
  first; DER_GBC_REQUESTS_PER_MINUTE sets another utility's. A 429's Retry-After is honoured
  (connectors/http.py).

Tokens. Client id and secret, and the first refresh token, come from the environment (per utility:
DER_GBC_<UTILITY>_<NAME> over DER_GBC_<NAME>) or the twin's ready file (connectors/settings.py).
Once a token answer arrives, the custodian's token store ($DER_HOME/greenbutton_connect/
tokens_<host and path>.json, mode 0600 in a 0700 folder, written atomically) holds each
authorization's access token, its expiry, and the latest refresh token; a rotated refresh token
is saved before it is used, under a file lock, so two processes never spend one token twice.
Tokens never appear in a log line, an error or a repr: no log line of this module names one,
der_assets.redact (installed by connectors/http.py) masks token parameters and Authorization
headers in every log record and ConnectorError, and the errors raised here also have the exact
values of the client secret and tokens in play masked (`mask`).

Incremental pulls: one cursor per subscription (`SubscriptionCursor`). A round asks every usage
point for what was published after the last round's end, up to the round's `published-max`; the
round ends at the earliest `updated` the custodian answered with (how far its answer reached), so
a block published later than the custodian's clock at the time is asked for again next round. A
round spans sensor ticks when the budget of one tick does not cover the fleet; its Authorization
and UsagePoint list are read once, when it begins. A usage point whose answer fails or is cut off
lags on its own: the round ends without it and the next asks it again from where it was.

A usage point is matched to its site by the registry's meter id, as the inbox files are.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional
from urllib.parse import urlencode, urlsplit

import pandas as pd
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET
from xml.etree.ElementTree import ParseError as XMLSyntaxError

from der_assets import config

from .http import ConnectorError, PerPeriod, RetryPolicy, Sleep, VendorHttp
from .payloads import Clock, RawPayload, as_utc, utc_now
from .settings import SettingsError, tuning, vendor_settings

log = logging.getLogger(__name__)

SOURCE = "greenbutton"  # the inbox's source and endpoint: the ESPI parser reads both
ENDPOINT = "espi"
VENDOR = "greenbutton_connect"
ROOT = "/espi/1_1/resource"
DEFAULT_SCOPE = "FB=4_5_15;IntervalDuration=900;BlockDuration=daily;HistoryLength=13"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8787/greenbutton/callback"
REFRESH_EARLY_S = 60.0  # refresh an access token this long before it expires
SEED = "seed"  # the store key of an authorization known only by its configured refresh token


# ---- settings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectSettings:
    """One data custodian: where it answers, the registered client, the first refresh token, the budget."""

    base_url: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: Optional[str] = field(default=None, repr=False)
    token_url: str = ""
    authorize_url: str = ""
    redirect_uri: str = DEFAULT_REDIRECT_URI
    scope: str = DEFAULT_SCOPE
    requests_per_minute: int = 60
    token_file: Optional[Path] = None

    def __post_init__(self):
        base = self.base_url.rstrip("/")
        object.__setattr__(self, "base_url", base)
        object.__setattr__(self, "token_url", self.token_url or f"{base}/oauth/token")
        object.__setattr__(self, "authorize_url", self.authorize_url or f"{base}/oauth/authorize")


def utility_key(utility: str) -> str:
    """A utility's name as it appears in environment variables: PECO -> PECO, "Con Edison" -> CON_EDISON."""
    return re.sub(r"[^A-Z0-9]+", "_", utility.upper()).strip("_")


def connect_settings(utility: Optional[str] = None, *, env: Optional[Mapping] = None,
                     ready: Optional[dict] = None) -> ConnectSettings:
    """A custodian's settings: each from its DER_GBC_* variable, else from the twin's ready file.

    utility: a registry `edc`; its own DER_GBC_<UTILITY>_<NAME> (e.g. DER_GBC_PECO_BASE_URL) wins
    over DER_GBC_<NAME>, so each utility on Connect can have its own custodian and client.
    """
    env = dict(os.environ if env is None else env)
    if utility:
        prefix = f"DER_GBC_{utility_key(utility)}_"
        env.update({"DER_GBC_" + k[len(prefix):]: v for k, v in list(env.items()) if k.startswith(prefix) and v})
    s = vendor_settings(VENDOR, env=env, ready=ready)
    return ConnectSettings(
        base_url=s.base_url, client_id=s.need("client_id"), client_secret=s.need("client_secret"),
        refresh_token=s.credentials.get("refresh_token"), token_url=env.get("DER_GBC_TOKEN_URL", ""),
        authorize_url=env.get("DER_GBC_AUTHORIZE_URL", ""),
        redirect_uri=env.get("DER_GBC_REDIRECT_URI") or DEFAULT_REDIRECT_URI,
        scope=env.get("DER_GBC_SCOPE") or DEFAULT_SCOPE,
        requests_per_minute=int(tuning("DER_GBC_REQUESTS_PER_MINUTE", env=env)))


def default_token_file(base_url: str) -> Path:
    """One token store per custodian (its host and path), under the data home."""
    parts = urlsplit(base_url)
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", f"{parts.netloc}{parts.path}").strip("_") or "custodian"
    return config.data_home() / "greenbutton_connect" / f"tokens_{slug}.json"


# ---- tokens -----------------------------------------------------------------------------------


def mask(text: str, *secrets: Optional[str]) -> str:
    """`text` with each of these exact secret values (non-empty) replaced by ***."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


@dataclass(frozen=True)
class Grant:
    """One authorization's tokens. repr shows no token."""

    refresh_token: str = field(repr=False)
    access_token: Optional[str] = field(default=None, repr=False)
    expires_at: Optional[float] = None  # epoch seconds on the client's wall clock
    resource_uri: Optional[str] = None
    authorization_uri: Optional[str] = None
    scope: Optional[str] = None
    origin: str = "settings"  # "settings": grown from the configured refresh token; "code": a consent's code

    def fresh(self, wall: float) -> bool:
        """An access token not yet (nearly) expired; one without a stated expiry is used until a 401."""
        return bool(self.access_token) and (self.expires_at is None or wall < self.expires_at - REFRESH_EARLY_S)

    def to_dict(self) -> dict:
        return {"refresh_token": self.refresh_token, "access_token": self.access_token, "expires_at": self.expires_at,
                "resource_uri": self.resource_uri, "authorization_uri": self.authorization_uri, "scope": self.scope,
                "origin": self.origin}


class TokenStore:
    """Each authorization's tokens in one JSON file, mode 0600, written whole or not at all.

    Keyed by authorizationURI (or SEED before the first token answer named it).
    """

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> dict[str, Grant]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise SettingsError(f"Green Button Connect token store {self.path} is unreadable: "
                                f"{type(exc).__name__}") from None
        return {k: Grant(**v) for k, v in (data.get("authorizations") or {}).items()}

    def save(self, grants: Mapping[str, Grant]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path.parent, 0o700)
        body = json.dumps({"authorizations": {k: g.to_dict() for k, g in grants.items()}}, indent=1).encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.path)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock across processes, held while a refresh token is spent and its successor saved."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


# ---- Atom reading (navigation only: which subscriptions and usage points exist) -------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _atom_entries(content: bytes, what: str) -> list[dict]:
    """Each Atom entry's self link, its content resource's name and that resource's child texts."""
    try:
        root = SafeET.fromstring(content, forbid_dtd=True)
    except (DefusedXmlException, XMLSyntaxError) as exc:
        raise ValueError(f"{what}: not readable Atom XML ({type(exc).__name__})") from None
    out = []
    for entry in (e for e in root.iter() if _local(e.tag) == "entry"):
        rec = {"self": None, "kind": None, "fields": {}}
        for child in entry:
            name = _local(child.tag)
            if name == "link" and child.get("rel") == "self":
                rec["self"] = child.get("href")
            elif name == "content":
                resource = next(iter(child), None)
                if resource is not None:
                    rec["kind"] = _local(resource.tag)
                    rec["fields"] = {_local(c.tag): (c.text or "").strip() for c in resource}
        out.append(rec)
    return out


def answer_kind(content: bytes) -> str:
    """"data" (an IntervalBlock entry in it), "empty" (nothing new: not a payload) or "unreadable"
    (not well-formed XML, e.g. cut off: landed for the parser to quarantine, and asked again)."""
    try:
        entries = _atom_entries(content, "answer")
    except ValueError:
        return "unreadable"
    return "data" if any(e["kind"] == "IntervalBlock" for e in entries) else "empty"


def feed_updated(content: bytes) -> Optional[pd.Timestamp]:
    """The feed's own <updated> (the custodian's clock when it answered), or None."""
    try:
        root = SafeET.fromstring(content, forbid_dtd=True)
    except (DefusedXmlException, XMLSyntaxError):
        return None
    for child in root:
        if _local(child.tag) == "updated" and child.text:
            try:
                return pd.Timestamp(child.text.strip()).tz_convert("UTC")
            except (ValueError, TypeError):
                return None
    return None


@dataclass(frozen=True)
class Subscription:
    """An active authorization's subscription: where its data is, and whose tokens open it."""

    grant_key: str
    resource_uri: str  # .../espi/1_1/resource/Batch/Subscription/{id}
    status: int = 1

    @property
    def subscription_id(self) -> str:
        return self.resource_uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def usage_points_uri(self) -> str:
        return self.resource_uri.replace(f"/Batch/Subscription/{self.subscription_id}",
                                         f"/Subscription/{self.subscription_id}") + "/UsagePoint"

    def batch_uri(self, usage_point_id: str) -> str:
        return f"{self.resource_uri}/UsagePoint/{usage_point_id}"


def espi_time(ts: pd.Timestamp) -> str:
    """published-min/max as ISO 8601 UTC seconds ([Xcel] accepts ISO 8601 or epoch seconds)."""
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


# ---- the client -------------------------------------------------------------------------------


class ConnectClient:
    """OAuth and resource requests to one data custodian, within its request budget."""

    def __init__(self, settings: ConnectSettings, *, store: Optional[TokenStore] = None, clock: Clock = utc_now,
                 wall: Callable[[], float] = time.time, retry: RetryPolicy = RetryPolicy(),
                 sleep: Sleep = asyncio.sleep,
                 transport=None, per_minute: Optional[int] = None):
        self.settings = settings
        self.store = store or TokenStore(settings.token_file or default_token_file(settings.base_url))
        self.wall = wall
        limit = per_minute if per_minute is not None else settings.requests_per_minute
        self.http = VendorHttp(SOURCE, settings.base_url, gates=[(PerPeriod(limit, 60.0, sleep=sleep), "global")],
                               clock=clock, retry=retry, sleep=sleep, transport=transport,
                               headers={"Accept": "application/atom+xml"})
        self.requests = 0
        self.authorization_failures: list[dict] = []
        self._refreshing = asyncio.Lock()  # one refresh at a time in this process (the file lock is across processes)
        self._host = urlsplit(settings.base_url)[:2]

    async def __aenter__(self) -> "ConnectClient":
        await self.http.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.http.__aexit__(*exc)

    # ---- OAuth

    def authorize_url(self, state: str, *, login_hint: Optional[str] = None) -> str:
        """Where to send the customer to consent ([UtilityAPI]); the code comes back on redirect_uri."""
        q = {"response_type": "code", "client_id": self.settings.client_id, "redirect_uri": self.settings.redirect_uri,
             "scope": self.settings.scope, "state": state, **({"login_hint": login_hint} if login_hint else {})}
        return f"{self.settings.authorize_url}?{urlencode(q)}"

    def _secrets(self, *grants: Optional[Grant]) -> list[str]:
        out = [self.settings.client_secret, self.settings.refresh_token or ""]
        for g in grants:
            if g is not None:
                out += [g.refresh_token, g.access_token or ""]
        return out

    async def _token_request(self, form: dict, *, what: str) -> dict:
        basic = base64.b64encode(f"{self.settings.client_id}:{self.settings.client_secret}".encode()).decode()
        self.requests += 1
        try:
            got = await self.http.request("POST", self.settings.token_url, endpoint="oauth_token",
                                          content=urlencode(form).encode(),
                                          headers={"Authorization": f"Basic {basic}", "Accept": "application/json",
                                                   "Content-Type": "application/x-www-form-urlencoded"})
        except ConnectorError as exc:
            exc.reason = mask(f"{what}: {exc.reason}", form.get("code"), form.get("refresh_token"), *self._secrets())
            raise
        try:
            answer = json.loads(got.content)
            if not answer.get("access_token"):
                raise ValueError("no access_token")
        except (ValueError, AttributeError):
            raise ConnectorError(f"{what}: the token endpoint answered no access_token", source=SOURCE,
                                 endpoint="oauth_token", status=got.status) from None
        return answer

    def _grant(self, answer: dict, previous: Optional[Grant], origin: str = "settings") -> Grant:
        expires_in = answer.get("expires_in")
        before = previous or Grant(refresh_token="", origin=origin)
        return Grant(refresh_token=answer.get("refresh_token") or before.refresh_token,
                     access_token=answer["access_token"],
                     expires_at=self.wall() + float(expires_in) if expires_in is not None else None,
                     resource_uri=answer.get("resourceURI") or before.resource_uri,
                     authorization_uri=answer.get("authorizationURI") or before.authorization_uri,
                     scope=answer.get("scope") or before.scope, origin=before.origin)

    async def exchange_code(self, code: str) -> str:
        """The redirect's code for tokens ([RFC 6749] 4.1.3); stored; returns the authorization's store key."""
        answer = await self._token_request({"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": self.settings.redirect_uri}, what="authorization code")
        grant = self._grant(answer, None, origin="code")
        key = grant.authorization_uri or grant.resource_uri or f"auth-{len(self.store.load()) + 1}"
        with self.store.locked():
            grants = self.store.load()
            grants[key] = grant
            self.store.save(grants)
        log.info("Green Button Connect: authorization %s stored", key)
        return key

    def grants(self) -> dict[str, Grant]:
        """The stored authorizations, and the configured refresh token as one more (SEED) until a stored
        one has grown from it."""
        grants = self.store.load()
        if self.settings.refresh_token and not any(g.origin == "settings" for g in grants.values()):
            grants[SEED] = Grant(refresh_token=self.settings.refresh_token)
        return grants

    async def refresh(self, key: str, spent: Optional[Grant] = None) -> Grant:
        """A new access token for authorization `key` ([RFC 6749] 6), the rotated refresh token saved first.

        spent: the grant whose access token was just refused; if another process has refreshed since,
        its newer tokens are used instead of spending the refresh token again.
        """
        async with self._refreshing:
            return await self._refresh(key, spent)

    async def _refresh(self, key: str, spent: Optional[Grant]) -> Grant:
        with self.store.locked():
            stored = self.store.load()
            current = self.grants().get(key) or spent
            if current is None:
                raise SettingsError(f"Green Button Connect: no authorization {key!r} in {self.store.path}")
            if spent is not None and current.access_token and current.access_token != spent.access_token \
                    and current.fresh(self.wall()):
                return current
            try:
                answer = await self._token_request({"grant_type": "refresh_token",
                                                    "refresh_token": current.refresh_token},
                                                   what=f"refresh of authorization {key}")
            except ConnectorError as exc:
                configured = self.settings.refresh_token
                # a stored token the custodian no longer knows (a re-consent put a new one in the settings,
                # or the twin restarted): the configured one is tried once before giving up
                if exc.status != 400 or not configured or configured == current.refresh_token:
                    raise
                log.warning("Green Button Connect: stored refresh token of %s refused; trying the configured one", key)
                answer = await self._token_request({"grant_type": "refresh_token", "refresh_token": configured},
                                                   what=f"refresh of authorization {key} (configured token)")
            grant = self._grant(answer, current)
            new_key = grant.authorization_uri or key
            stored.pop(key, None)
            stored[new_key] = grant
            self.store.save(stored)
        if new_key != key:
            log.info("Green Button Connect: authorization %s is %s", key, new_key)
        return grant

    async def _access(self, key: str) -> tuple[str, Grant]:
        grant = self.grants().get(key)
        if grant is None or not grant.fresh(self.wall()):
            grant = await self.refresh(key)
            key = grant.authorization_uri or key
        return key, grant

    # ---- resources

    def _check_host(self, uri: str) -> None:
        if urlsplit(uri)[:2] != self._host:
            raise ConnectorError(f"{uri} is not on the configured data custodian {self.settings.base_url}; "
                                 "no token is sent there", source=SOURCE, endpoint=ENDPOINT)

    async def get(self, key: str, uri: str, *, endpoint: str, site_id: Optional[str] = None,
                  params: Optional[dict] = None, window=None):
        """GET with the authorization's bearer token; a 401 refreshes the token once and asks again."""
        self._check_host(uri)
        key, grant = await self._access(key)
        for attempt in (1, 2):
            self.requests += 1
            try:
                return await self.http.get(uri, endpoint=endpoint, site_id=site_id, params=params, window=window,
                                           headers={"Authorization": f"Bearer {grant.access_token}"})
            except ConnectorError as exc:
                exc.reason = mask(exc.reason, *self._secrets(grant))
                if exc.status != 401 or attempt == 2:
                    raise
                log.info("Green Button Connect: access token refused (401) on %s; refreshing", endpoint)
                grant = await self.refresh(key, spent=grant)
                key = grant.authorization_uri or key
        raise AssertionError("unreachable")

    async def authorization(self, key: str) -> list[Subscription]:
        """The active subscription(s) of one stored authorization, from the Authorization resource ([GBA tokens]).

        One not active (status 0 revoked, 2 denied) is not returned; it is in `authorization_failures`.
        """
        key, grant = await self._access(key)
        uri = f"{self.settings.base_url}{ROOT}/Authorization"
        got = await self.get(key, uri, endpoint="Authorization")
        try:
            entries = _atom_entries(got.content, uri)
        except ValueError as exc:
            raise ConnectorError(str(exc), source=SOURCE, endpoint="Authorization") from None
        out = []
        for e in entries:
            if e["kind"] != "Authorization":
                continue
            resource, status = e["fields"].get("resourceURI"), e["fields"].get("status", "1")
            if resource and status == "1":
                out.append(Subscription(grant.authorization_uri or key, resource.rstrip("/")))
            elif resource:
                self.authorization_failures.append({"authorization": key, "error": (
                    f"subscription {resource} has status {status} (0 revoked, 2 denied): not pulled")})
        return out

    async def subscriptions(self) -> list[Subscription]:
        """Every stored authorization's active subscriptions. One that cannot be read (its refresh refused,
        the custodian down) is in `authorization_failures` and the others carry on; when none can be
        read, the first error is raised."""
        self.authorization_failures = []
        out: list[Subscription] = []
        errors: list[ConnectorError] = []
        keys = list(self.grants())
        for key in keys:
            try:
                out += await self.authorization(key)
            except ConnectorError as exc:
                errors.append(exc)
                self.authorization_failures.append({"authorization": key, "error": str(exc)})
        if errors and len(errors) == len(keys):
            raise errors[0]
        return out

    async def usage_points(self, sub: Subscription) -> list[str]:
        got = await self.get(sub.grant_key, sub.usage_points_uri, endpoint="UsagePoint")
        try:
            entries = _atom_entries(got.content, sub.usage_points_uri)
        except ValueError as exc:
            raise ConnectorError(str(exc), source=SOURCE, endpoint="UsagePoint") from None
        return [e["self"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["kind"] == "UsagePoint" and e["self"]]

    async def batch(self, sub: Subscription, usage_point: str, *, site_id: Optional[str],
                    published_min: Optional[pd.Timestamp], published_max: pd.Timestamp,
                    tz: Optional[str] = None) -> tuple[Optional[RawPayload], Optional[pd.Timestamp], str]:
        """One usage point's Batch answer for [published_min, published_max] ([OpenESPI routes], [Xcel]).

        Returns (the payload, or None when it carries no IntervalBlock; the feed's <updated>; answer_kind).
        """
        params = {"published-max": espi_time(published_max)}
        if published_min is not None:
            params["published-min"] = espi_time(published_min)
        got = await self.get(sub.grant_key, sub.batch_uri(usage_point), endpoint=ENDPOINT, site_id=site_id,
                             params=params, window=(published_min, published_max))
        kind = answer_kind(got.content)
        if kind == "empty":
            return None, feed_updated(got.content), kind
        payload = RawPayload(got.content, SOURCE, ENDPOINT, site_id, None, None, got.received_at, tz=tz)
        return payload, feed_updated(got.content) if kind == "data" else None, kind


# ---- cursors and a pull -------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionCursor:
    """Where one subscription has been pulled to, and the round in progress."""

    through: Optional[pd.Timestamp] = None  # everything published up to here is in
    round_max: Optional[pd.Timestamp] = None  # the round's published-max
    done: frozenset = frozenset()  # usage points asked in this round
    reached: Optional[pd.Timestamp] = None  # earliest <updated> the custodian answered in this round
    points: tuple = ()  # the subscription's usage points, listed when the round began
    failed: frozenset = frozenset()  # usage points whose answer failed in this round
    behind: tuple = ()  # (usage point, its own `through`) for those that failed in an earlier round

    def published_min(self, point: Optional[str] = None) -> Optional[pd.Timestamp]:
        """Where a usage point's next ask starts: after its own `through` when it lags, else the subscription's."""
        lag = dict(self.behind)
        through = lag[point] if point in lag else self.through
        return None if through is None else through + pd.Timedelta(seconds=1)  # bounds are inclusive

    def finish(self, end: pd.Timestamp) -> "SubscriptionCursor":
        """The cursor once every usage point was asked: `through` moves to `end`; one that failed keeps
        where it was, so it is asked for that again next round (and does not hold the others back)."""
        lag = dict(self.behind)
        behind = tuple(sorted((p, lag.get(p, self.through)) for p in self.failed))
        return SubscriptionCursor(through=end if self.through is None else max(self.through, end), behind=behind)

    def to_dict(self) -> dict:
        iso = lambda t: None if t is None else pd.Timestamp(t).isoformat()  # noqa: E731
        return {"through": iso(self.through), "round_max": iso(self.round_max), "done": sorted(self.done),
                "reached": iso(self.reached), "points": list(self.points), "failed": sorted(self.failed),
                "behind": [[p, iso(t)] for p, t in self.behind]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "SubscriptionCursor":
        ts = lambda v: None if v is None else pd.Timestamp(v).tz_convert("UTC")  # noqa: E731
        return cls(ts(d.get("through")), ts(d.get("round_max")), frozenset(d.get("done") or ()), ts(d.get("reached")),
                   tuple(d.get("points") or ()), frozenset(d.get("failed") or ()),
                   tuple((p, ts(t)) for p, t in d.get("behind") or ()))


def cursors_from_json(text: Optional[str]) -> dict[str, SubscriptionCursor]:
    if not text:
        return {}
    return {k: SubscriptionCursor.from_dict(v) for k, v in json.loads(text).items()}


def cursors_to_json(cursors: Mapping[str, SubscriptionCursor]) -> str:
    return json.dumps({k: c.to_dict() for k, c in sorted(cursors.items())}, sort_keys=True)


@dataclass
class PullOutcome:
    payloads: list[RawPayload] = field(default_factory=list)
    cursors: dict[str, SubscriptionCursor] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # usage points no site in the registry takes over Connect
    rounds_finished: int = 0
    requests: int = 0


async def pull(client: ConnectClient, cursors: Mapping[str, SubscriptionCursor], *, now,
               site_of: Callable[[str], Optional[str]], tz_of: Callable[[str], Optional[str]] = lambda s: None,
               max_requests: Optional[int] = None) -> PullOutcome:
    """What every subscription published since its cursor, one Batch request per usage point.

    A round of a subscription begins with its Authorization (still active?) and its UsagePoint list,
    both kept in the cursor, so a round that spans calls spends its requests on data; with one
    authorization per customer that is three requests a meter and round.
    site_of: usage point id -> site id, or None to leave it alone (no site, or its utility is on
    the inbox). At most `max_requests` requests (the rest of a round waits for the next call).
    A usage point whose answer fails (after the retries) or is cut off lags: the round ends without
    it, and the next round asks it again from its own `through` (SubscriptionCursor.finish).
    """
    now = pd.Timestamp(as_utc(now)).floor("s")
    out = PullOutcome(cursors=dict(cursors))
    start_requests = client.requests
    client.authorization_failures = []

    def budget_left() -> bool:
        return max_requests is None or client.requests - start_requests < max_requests

    def fail(site, point, exc: ConnectorError, **extra) -> None:
        out.failures.append({"source": SOURCE, "site_id": site, "usage_point": point, **extra,
                             "error": str(exc).splitlines()[0][:300]})

    keys = list(client.grants())
    unread = 0
    for key in keys:
        grant = client.grants().get(key)
        known = grant.resource_uri.rstrip("/") if grant is not None and grant.resource_uri else None
        if known and out.cursors.get(known, SubscriptionCursor()).round_max is not None:
            subs = [Subscription(key, known)]  # mid-round: Authorization and usage points were read at its start
        elif not budget_left():
            break
        else:
            try:
                subs = await client.authorization(key)
            except ConnectorError as exc:
                fail(None, None, exc, authorization=key)
                unread += 1
                continue
        for sub in subs:
            state = out.cursors.get(sub.resource_uri, SubscriptionCursor())
            if state.round_max is None:
                if not budget_left():
                    break
                try:
                    points = await client.usage_points(sub)
                except ConnectorError as exc:
                    fail(None, None, exc, authorization=sub.grant_key)
                    continue
                state = replace(state, round_max=now, done=frozenset(), reached=None, points=tuple(points),
                                failed=frozenset())
            pending = False
            for point in state.points:
                if point in state.done:
                    continue
                site = site_of(point)
                if site is None:
                    out.skipped.append(point)
                    state = replace(state, done=state.done | {point})
                    continue
                if not budget_left():
                    pending = True
                    break
                try:
                    payload, reached, kind = await client.batch(
                        sub, point, site_id=site, published_min=state.published_min(point),
                        published_max=state.round_max, tz=tz_of(site))
                except ConnectorError as exc:
                    fail(site, point, exc)
                    state = replace(state, done=state.done | {point}, failed=state.failed | {point})
                    continue
                if payload is not None:
                    out.payloads.append(payload)
                if kind == "unreadable":
                    out.failures.append({"source": SOURCE, "site_id": site, "usage_point": point, "error": (
                        "the answer is not well-formed XML (cut off?): landed as it came, asked again next round")})
                    state = replace(state, failed=state.failed | {point})
                if reached is not None and (state.reached is None or reached < state.reached):
                    state = replace(state, reached=reached)
                state = replace(state, done=state.done | {point})
            if not pending and set(state.points) <= state.done:
                state = state.finish(state.round_max if state.reached is None
                                     else min(state.round_max, state.reached.floor("s")))
                out.rounds_finished += 1
            out.cursors[sub.resource_uri] = state
    out.failures += [{"source": SOURCE, "site_id": None, "usage_point": None, **f}
                     for f in client.authorization_failures]
    if keys and unread == len(keys):
        first = next(f for f in out.failures if f.get("authorization"))
        raise ConnectorError(f"no authorization could be read; first: {first['error']}", source=SOURCE,
                             endpoint="Authorization")
    out.requests = client.requests - start_requests
    return out
