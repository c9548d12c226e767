"""sonnenBatterie local API v2 client (one battery per site). Every sonnen request quirk lives here.

- Header `Auth-Token: <token from the battery's web UI>`; wrong or missing -> 401, not retried.
- Everything is a snapshot: /api/v2/status (instantaneous W, local Timestamp without offset)
  and /api/v2/powermeter (LIFETIME kWh registers, and NO timestamp at all). Intervals need
  several polls in one payload. Powermeter bodies are wrapped as
  {"polled_at": <our poll time, RFC 3339>, "body": <raw body verbatim>} because the device
  gives no time; /status bodies go in bare (they carry their own Timestamp).
- No documented rate limits [A]; the poll spacing is the caller's choice (every_s).
- Battery control (setpoints, operating mode) belongs to the dispatch adapters, not here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .http import ConnectorError, RetryPolicy, Sleep, VendorHttp
from .payloads import Clock, PollLog, RawPayload, SiteRef, as_utc, utc_now, wrap_polled
from .settings import VendorSettings, vendor_settings

SOURCE = "sonnen"
PATHS = {"status": "/api/v2/status", "powermeter": "/api/v2/powermeter"}
WRAPPED = {"powermeter"}  # bodies without a time of their own


def client(site: SiteRef, settings: VendorSettings | None = None, *, clock: Clock = utc_now,
           retry: RetryPolicy = RetryPolicy(attempts=2), **kw) -> VendorHttp:
    s = settings or vendor_settings(SOURCE)
    return VendorHttp(SOURCE, s.url_for(site.site_id), headers={"Auth-Token": s.need("auth_token")},
                      clock=clock, retry=retry, **kw)


async def poll(http: VendorHttp, site: SiteRef, endpoint: str) -> tuple[object, bytes]:
    """One poll: (poll time, body as it goes into the log: wrapped for powermeter)."""
    got = await http.get(PATHS[endpoint], endpoint=endpoint, site_id=site.site_id)
    body = wrap_polled(got.received_at, got.content) if endpoint in WRAPPED else got.content
    return got.received_at, body


async def pull(http: VendorHttp, site: SiteRef, *, polls: int, every_s: float, sleep: Sleep = asyncio.sleep,
               endpoints: Sequence[str] = ("status", "powermeter")) -> list[RawPayload]:
    """Poll `polls` times, `every_s` apart; one poll-log payload per endpoint.

    A poll that still fails after retries leaves a gap; if every poll of an endpoint
    failed, its last error is raised.
    """
    logs = {ep: PollLog(SOURCE, ep, site.site_id, tz=site.tz) for ep in endpoints}
    errors: dict[str, ConnectorError] = {}
    for i in range(polls):
        if i:
            await sleep(every_s)
        for ep, log in logs.items():
            try:
                at, body = await poll(http, site, ep)
            except ConnectorError as exc:
                if not exc.retryable:
                    raise
                errors[ep] = exc
                continue
            log.add(at, body)
    out = []
    for ep, log in logs.items():
        if not log.polls and not log.rejected and ep in errors:
            raise errors[ep]
        out.extend(log.payloads(as_utc(http.clock())))
    return out
