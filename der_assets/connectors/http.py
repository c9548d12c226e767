"""Shared async HTTP machinery for the vendor connectors (httpx): limits, retries, typed errors.

Why it exists: every vendor API punishes a careless client differently (SolarEdge cuts a
site off for the day after 300 calls, Enphase counts calls per plan per minute, a Fronius
Datamanager wants 120 s between archive queries). The vendor modules declare their limits
with the gates below; `VendorHttp.get` applies them to every attempt, retries what is worth
retrying and raises a one-line `ConnectorError` for the rest.

Policy:
- Retried: transport errors (connect/read timeouts, dropped connections, a body cut off
  mid-transfer), 429 and 5xx. Waits grow exponentially with full jitter, capped; a
  Retry-After header (seconds or HTTP date) on 429/503 is honoured instead, as is a
  vendor-specific hint (Enphase sends no Retry-After but says when its period ends).
- Not retried: other 4xx (401/403/404/422...): the request itself is wrong.
- A 200 whose body is truncated or not JSON is returned as bytes: the caller lands it and
  the parser's ParseError quarantines it. Connectors do not judge content.
- Credentials in URLs (SolarEdge api_key, Enphase key) never reach a log or an error:
  importing this module installs ``der_assets.redact`` on every log record (httpx logs each
  request URL at INFO), and every ConnectorError reason is redacted.
- Gates are per process. Across processes, Dagster's tag concurrency limits (one per vendor)
  keep the fleet inside the vendor's limits (see DESIGN.md, Scale-out).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import datetime as dt
import email.utils
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional

import httpx
import pandas as pd

from der_assets import redact as _redact

from .payloads import as_utc, utc_now

_redact.install()

Window = Optional[tuple[Optional[dt.datetime], Optional[dt.datetime]]]
Sleep = Callable[[float], Awaitable[None]]


def _fmt(ts) -> str:
    if ts is None:
        return "open"
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


class ConnectorError(RuntimeError):
    """A pull that failed: names source, site, endpoint and window, in one line.

    A request without a window (a snapshot: realtime status, a device list, a Modbus read) names
    the time it was made instead (`at`), so no message says `window=?`.
    status: the last HTTP status (None for transport failures); retryable: whether trying
    again later could help (429/5xx/transport) as opposed to a request that is wrong.
    """

    def __init__(self, reason: str, *, source: str, endpoint: str, site_id: Optional[str] = None,
                 window: Window = None, status: Optional[int] = None, retryable: bool = False,
                 at: Optional[dt.datetime] = None):
        self.reason = _redact.redact(" ".join(str(reason).split()))
        self.source, self.endpoint, self.site_id, self.window = source, endpoint, site_id, window
        self.status, self.retryable, self.at = status, retryable, at
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.window is not None:
            where = f"window={_fmt(self.window[0])}..{_fmt(self.window[1])}"
        else:
            where = "snapshot" + (f" at {_fmt(self.at)}" if self.at is not None else "")
        return f"{self.source}/{self.endpoint} site={self.site_id} {where}: {self.reason}"

    def __reduce__(self):  # picklable for multiprocess executors
        return (_rebuild, (self.reason, self.source, self.endpoint, self.site_id, self.window, self.status,
                           self.retryable, self.at))


def _rebuild(reason, source, endpoint, site_id, window, status, retryable, at=None):
    return ConnectorError(reason, source=source, endpoint=endpoint, site_id=site_id, window=window,
                          status=status, retryable=retryable, at=at)


class BudgetExhausted(Exception):
    """A hard request budget (e.g. SolarEdge 300/day per site) is used up: waiting is pointless."""


# ---- gates (rate limits) ----------------------------------------------------------------------


class Gate(abc.ABC):
    """Something every attempt passes through; `key` scopes it (a site, a device, or '*')."""

    @abc.abstractmethod
    def hold(self, key: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Enter before a request for `key`, leave after it."""


class Concurrency(Gate):
    """At most `limit` requests in flight per key (SolarEdge: 3 per source IP, key '*')."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self._sems: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        sem = self._sems.setdefault(key, asyncio.Semaphore(self.limit))
        async with sem:
            yield


class DailyBudget(Gate):
    """At most `limit` requests per key per UTC calendar day; beyond it BudgetExhausted, no waiting."""

    def __init__(self, limit: int, clock: Callable[[], dt.datetime] = utc_now):
        self.limit, self.clock = int(limit), clock
        self.used: dict[tuple[str, dt.date], int] = {}

    def remaining(self, key: str) -> int:
        return self.limit - self.used.get((key, as_utc(self.clock()).date()), 0)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        bucket = (key, as_utc(self.clock()).date())
        if self.used.get(bucket, 0) >= self.limit:
            raise BudgetExhausted(f"daily budget of {self.limit} requests for {key} used up")
        self.used[bucket] = self.used.get(bucket, 0) + 1
        yield


class PerPeriod(Gate):
    """At most `limit` request starts per key in any `period_s` (sliding); waits for a free slot."""

    def __init__(self, limit: int, period_s: float, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Sleep = asyncio.sleep):
        self.limit, self.period_s = int(limit), float(period_s)
        self.monotonic, self.sleep = monotonic, sleep
        self._starts: dict[str, deque] = {}
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self._lock:
            starts = self._starts.setdefault(key, deque())
            while True:
                now = self.monotonic()
                while starts and now - starts[0] >= self.period_s:
                    starts.popleft()
                if len(starts) < self.limit:
                    break
                await self.sleep(self.period_s - (now - starts[0]))
            starts.append(self.monotonic())
        yield


class Spacing(Gate):
    """One request at a time per key, each starting `gap_s` after the previous one finished."""

    def __init__(self, gap_s: float, *, monotonic: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep):
        self.gap_s, self.monotonic, self.sleep = float(gap_s), monotonic, sleep
        self._locks: dict[str, asyncio.Lock] = {}
        self._done: dict[str, float] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        async with self._locks.setdefault(key, asyncio.Lock()):
            last = self._done.get(key)
            if last is not None:
                wait = last + self.gap_s - self.monotonic()
                if wait > 0:
                    await self.sleep(wait)
            try:
                yield
            finally:
                self._done[key] = self.monotonic()


# ---- retries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; Retry-After wins when the server gives one.

    A server asking for longer than `max_wait_s` is not waited for: the pull fails with a
    retryable ConnectorError and the next scheduled run picks it up.
    """

    attempts: int = 4
    base_s: float = 0.5
    cap_s: float = 30.0
    max_wait_s: float = 120.0
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504)

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Wait before attempt `attempt + 1` (attempt counts from 1)."""
        return rng.uniform(0, min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


def retry_after_s(response: httpx.Response, now: Optional[dt.datetime] = None) -> Optional[float]:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), else None."""
    raw = response.headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - (now or utc_now())).total_seconds())


@dataclass(frozen=True)
class Timeouts:
    connect_s: float = 10.0
    read_s: float = 60.0
    write_s: float = 30.0
    pool_s: float = 60.0

    def httpx(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_s, read=self.read_s, write=self.write_s, pool=self.pool_s)


@dataclass(frozen=True)
class Fetched:
    """One successful answer: status 2xx, the body bytes exactly as received, and when."""

    content: bytes
    status: int
    received_at: dt.datetime
    headers: Mapping[str, str]
    attempts: int


TRANSPORT_ERRORS = (httpx.TransportError,)  # timeouts, connect errors, dropped or cut-off bodies


@dataclass
class VendorHttp:
    """One vendor's HTTP client: base URL, default auth, gates, retry policy.

    `hint` may read a vendor-specific wait out of a 429 body (seconds, or None). `clock`
    stamps received_at and drives daily budgets; `sleep` is injectable so tests do not wait.
    """

    source: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    gates: Sequence[tuple[Gate, str]] = ()  # (gate, scope) with scope "site", "device" or "global"
    retry: RetryPolicy = RetryPolicy()
    timeouts: Timeouts = Timeouts()
    clock: Callable[[], dt.datetime] = utc_now
    sleep: Sleep = asyncio.sleep
    hint: Optional[Callable[[httpx.Response, dt.datetime], Optional[float]]] = None
    transport: Optional[httpx.AsyncBaseTransport] = None
    seed: Optional[int] = None
    _client: Optional[httpx.AsyncClient] = field(default=None, init=False, repr=False)
    attempts_log: list = field(default_factory=list, init=False, repr=False)  # (endpoint, status|exc, wait_s)

    async def __aenter__(self) -> "VendorHttp":
        self._client = httpx.AsyncClient(base_url=self.base_url.rstrip("/"), headers=dict(self.headers),
                                         timeout=self.timeouts.httpx(), transport=self.transport,
                                         follow_redirects=False)
        return self

    async def __aexit__(self, *exc) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get(self, path: str, *, endpoint: str, site_id: Optional[str] = None, window: Window = None,
                  params: Optional[Mapping] = None, headers: Optional[Mapping[str, str]] = None,
                  device_key: Optional[str] = None, gates: Sequence[tuple[Gate, str]] = ()) -> Fetched:
        return await self.request("GET", path, endpoint=endpoint, site_id=site_id, window=window, params=params,
                                  headers=headers, device_key=device_key, gates=gates)

    async def request(self, method: str, path: str, *, endpoint: str, site_id: Optional[str] = None,
                      window: Window = None, params: Optional[Mapping] = None,
                      headers: Optional[Mapping[str, str]] = None, json=None, content: Optional[bytes] = None,
                      device_key: Optional[str] = None, gates: Sequence[tuple[Gate, str]] = ()) -> Fetched:
        """One logical request: gates + retries; raises ConnectorError when it cannot succeed."""
        if self._client is None:
            raise RuntimeError("use `async with VendorHttp(...)` before requesting")
        rng = random.Random(self.seed)
        merged = {**self.params, **(params or {})}

        def fail(reason: str, status: Optional[int] = None, retryable: bool = False) -> ConnectorError:
            return ConnectorError(reason, source=self.source, endpoint=endpoint, site_id=site_id,
                                  window=window, status=status, retryable=retryable,
                                  at=None if window is not None else as_utc(self.clock()))

        keys = {"site": site_id or "*", "device": device_key or site_id or "*", "global": "*"}
        last = "no attempt made"
        for attempt in range(1, self.retry.attempts + 1):
            wait: Optional[float] = None
            try:
                async with contextlib.AsyncExitStack() as stack:
                    for gate, scope in (*self.gates, *gates):
                        await stack.enter_async_context(gate.hold(keys[scope]))
                    response = await self._client.request(method, path, params=merged, headers=headers,
                                                          json=json, content=content)
                    body = response.content  # read fully inside the gates
            except BudgetExhausted as exc:
                raise fail(str(exc), status=429, retryable=True) from None
            except TRANSPORT_ERRORS as exc:
                last = f"{type(exc).__name__}: {exc or 'no detail'}"
                self.attempts_log.append((endpoint, type(exc).__name__, None))
                status = None
            else:
                status = response.status_code
                self.attempts_log.append((endpoint, status, None))
                if 200 <= status < 300:
                    return Fetched(body, status, as_utc(self.clock()), dict(response.headers), attempt)
                last = f"HTTP {status} {_snippet(body)}"
                if status not in self.retry.retry_statuses:
                    raise fail(f"{method} {path}: {last}", status=status, retryable=False)
                if status in (429, 503):
                    wait = retry_after_s(response, as_utc(self.clock()))
                if wait is None and self.hint is not None and status == 429:
                    wait = self.hint(response, as_utc(self.clock()))
                if wait is not None and wait > self.retry.max_wait_s:
                    raise fail(f"{method} {path}: {last}; server asks to wait {wait:.0f} s, more than "
                               f"{self.retry.max_wait_s:.0f} s", status=status, retryable=True)
            if attempt == self.retry.attempts:
                break
            delay = wait if wait is not None else self.retry.backoff_s(attempt, rng)
            self.attempts_log[-1] = (*self.attempts_log[-1][:2], delay)
            await self.sleep(delay)
        raise fail(f"{method} {path}: gave up after {self.retry.attempts} attempts; last: {last}",
                   status=status, retryable=True)


def _snippet(body: bytes, n: int = 120) -> str:
    text = body[:n].decode("utf-8", "replace").replace("\n", " ").strip()
    return repr(text + ("..." if len(body) > n else "")) if text else "(empty body)"
