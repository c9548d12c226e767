"""What every twin HTTP server shares: which sites a vendor serves, credentials, and faults.

Each vendor module builds a Starlette app with `build_app(hub, *, <its credentials>)`. Device-local
APIs (sonnen, Fronius, the Enphase IQ Gateway) are served for every site under
`/sites/<site_id>/...`, so a connector treats `http://127.0.0.1:PORT/sites/<site_id>` as the
device's base URL and appends the vendor's real paths to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pandas as pd
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from der_assets.simulator.hub import TwinHub


def vendor_sites(hub: TwinHub, vendor: str) -> pd.DataFrame:
    """Sites with at least one device whose telemetry comes from `vendor`, with that device's vendor_ref.

    Columns: site_id, vendor_ref, timezone, pv_device_id, battery_device_id, plus the site's registry columns.
    """
    reg = hub.registry
    mine = reg[reg["telemetry_source"] == vendor]
    if mine.empty:
        return pd.DataFrame(columns=["site_id", "vendor_ref", "timezone", "pv_device_id", "battery_device_id"])
    first = mine.drop_duplicates("site_id").set_index("site_id")
    pv = mine[mine["device_type"] == "pv_inverter"].set_index("site_id")["device_id"]
    bat = mine[mine["device_type"] == "battery"].set_index("site_id")["device_id"]
    out = first.assign(pv_device_id=pv.reindex(first.index), battery_device_id=bat.reindex(first.index))
    return out.reset_index()


class FaultMiddleware(BaseHTTPMiddleware):
    """Applies the hub's transport faults to each request: 429, 5xx, a stall, or a truncated body.

    `site_of(request)` names the site the request is about ("*" when it is fleet-wide).
    """

    def __init__(self, app, *, hub: TwinHub, vendor: str, site_of: Callable[[Request], str]):
        super().__init__(app)
        self.hub, self.vendor, self.site_of = hub, vendor, site_of

    async def dispatch(self, request: Request, call_next):
        rule = self.hub.faults.transport_fault(self.vendor, self.site_of(request), self.hub.now())
        if rule is None:
            return await call_next(request)
        if rule.kind == "http_429":
            return JSONResponse({"message": "Too Many Requests"}, status_code=429,
                                headers={"Retry-After": str(int(rule.delay_s or 1))})
        if rule.kind == "http_5xx":
            return JSONResponse({"message": "Internal Server Error"}, status_code=503)
        if rule.kind == "timeout":
            await asyncio.sleep(rule.delay_s or 30.0)
            return await call_next(request)
        response = await call_next(request)  # truncate
        body = b"".join([chunk async for chunk in response.body_iterator])
        cut = body[: max(1, len(body) // 2)]
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        return Response(cut, status_code=response.status_code, headers=headers, media_type=response.media_type)


def site_from_path(request: Request) -> str:
    """The site of a `/sites/<site_id>/...` request, else '*'."""
    parts = request.url.path.strip("/").split("/")
    return parts[1] if len(parts) > 1 and parts[0] == "sites" else "*"
