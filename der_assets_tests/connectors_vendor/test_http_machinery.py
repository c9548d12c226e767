"""The shared HTTP machinery on a tiny local app: retries, Retry-After, no retry on 4xx, gates, errors."""

from __future__ import annotations

import pickle
import time

import pandas as pd
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from der_assets.connectors.http import (ConnectorError, DailyBudget, PerPeriod, RetryPolicy, Spacing, VendorHttp,
                                        retry_after_s)
from der_assets.simulator.servers.runner import serving

from ._twin import run


def _app(script: list[tuple[int, dict]]):
    """Answers the scripted (status, headers) in order, then 200 {"ok": true}; counts calls."""
    calls = []

    async def endpoint(request):
        calls.append(time.monotonic())
        if len(calls) <= len(script):
            status, headers = script[len(calls) - 1]
            return JSONResponse({"message": "scripted"}, status_code=status, headers=headers)
        return JSONResponse({"ok": True})

    async def truncated(request):
        return Response(b'{"energyDetails": {"timeUnit": "QUARTER', media_type="application/json")

    return Starlette(routes=[Route("/x", endpoint), Route("/cut", truncated)]), calls


def _client(url, sleeps, **kw):
    async def sleep(s):
        sleeps.append(s)

    return VendorHttp("testvendor", url, sleep=sleep, seed=1, **kw)


def test_retry_after_is_honoured_and_5xx_backs_off_then_succeeds():
    app, calls = _app([(429, {"Retry-After": "7"}), (503, {}), (502, {})])
    sleeps: list[float] = []
    with serving({"a": app}) as urls:
        async def go():
            async with _client(urls["a"], sleeps, retry=RetryPolicy(attempts=5, base_s=0.5, cap_s=8)) as h:
                return await h.get("/x", endpoint="x", site_id="S-1")
        got = run(go())
    assert got.status == 200 and got.attempts == 4 and len(calls) == 4
    assert sleeps[0] == 7.0  # the server's Retry-After, not our backoff
    assert 0 <= sleeps[1] <= 1.0 and 0 <= sleeps[2] <= 2.0  # full jitter under 0.5 * 2^(n-1)


def test_4xx_is_not_retried_and_the_error_names_source_site_endpoint_window():
    app, calls = _app([(401, {})])
    sleeps: list[float] = []
    w = (pd.Timestamp("2026-07-16T00:00Z"), pd.Timestamp("2026-07-17T00:00Z"))
    with serving({"a": app}) as urls:
        async def go():
            async with _client(urls["a"], sleeps) as h:
                await h.get("/x", endpoint="energyDetails", site_id="S-00001", window=w)
        with pytest.raises(ConnectorError) as info:
            run(go())
    err = info.value
    assert len(calls) == 1 and sleeps == []
    assert err.status == 401 and not err.retryable
    text = str(err)
    assert "\n" not in text
    assert text.startswith("testvendor/energyDetails site=S-00001 window=2026-07-16T00:00:00Z..2026-07-17T00:00:00Z:")
    assert "HTTP 401" in text
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == text and again.status == 401


def test_retries_give_up_with_a_retryable_error_and_a_long_retry_after_is_not_waited_for():
    app, calls = _app([(503, {})] * 10)
    sleeps: list[float] = []
    with serving({"a": app}) as urls:
        async def go(policy, path="/x"):
            async with _client(urls["a"], sleeps, retry=policy) as h:
                await h.get(path, endpoint="x")
        with pytest.raises(ConnectorError, match="gave up after 3 attempts; last: HTTP 503") as info:
            run(go(RetryPolicy(attempts=3)))
        assert info.value.retryable and len(calls) == 3
    app2, calls2 = _app([(429, {"Retry-After": "3600"})])
    with serving({"b": app2}) as urls:
        async def go2():
            async with _client(urls["b"], sleeps, retry=RetryPolicy(max_wait_s=60)) as h:
                await h.get("/x", endpoint="x")
        with pytest.raises(ConnectorError, match="asks to wait 3600 s"):
            run(go2())
        assert len(calls2) == 1


def test_a_truncated_200_body_is_returned_as_bytes_not_retried():
    app, _calls = _app([])
    with serving({"a": app}) as urls:
        async def go():
            async with _client(urls["a"], []) as h:
                return await h.get("/cut", endpoint="energyDetails")
        got = run(go())
    assert got.attempts == 1 and got.content.endswith(b"QUARTER")


def test_connection_refused_is_retried_then_reported():
    sleeps: list[float] = []

    async def go():
        async with _client("http://127.0.0.1:9", sleeps, retry=RetryPolicy(attempts=2)) as h:
            await h.get("/x", endpoint="status", site_id="S-1")
    with pytest.raises(ConnectorError, match="ConnectError") as info:
        run(go())
    assert info.value.status is None and info.value.retryable and len(sleeps) == 1


def test_retry_after_http_date():
    import httpx

    now = pd.Timestamp("2026-07-16T12:00:00Z").to_pydatetime()
    r = httpx.Response(429, headers={"Retry-After": "Thu, 16 Jul 2026 12:00:30 GMT"})
    assert retry_after_s(r, now) == 30.0
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "12"}), now) == 12.0
    assert retry_after_s(httpx.Response(429), now) is None


def test_gates_daily_budget_per_period_and_spacing():
    day = {"t": pd.Timestamp("2026-07-16T10:00Z")}
    budget = DailyBudget(2, clock=lambda: day["t"])

    async def use(gate, key):
        async with gate.hold(key):
            pass

    async def budget_case():
        await use(budget, "S-1")
        await use(budget, "S-1")
        await use(budget, "S-2")  # budgets are per key
        with pytest.raises(Exception, match="daily budget of 2"):
            await use(budget, "S-1")
        day["t"] = pd.Timestamp("2026-07-17T00:00Z")  # a new UTC day resets it
        await use(budget, "S-1")
    run(budget_case())

    fake = {"now": 0.0}
    waited: list[float] = []

    async def fake_sleep(s):
        waited.append(round(s, 6))
        fake["now"] += s

    per = PerPeriod(3, 60.0, monotonic=lambda: fake["now"], sleep=fake_sleep)

    async def per_case():
        for _ in range(4):
            await use(per, "*")
    run(per_case())
    assert waited == [60.0]  # the 4th call in a minute waits for the 1st to age out

    spacing = Spacing(0.25)

    async def spaced():
        t = []
        for _ in range(3):
            async with spacing.hold("dev-1"):
                t.append(time.monotonic())
        async with spacing.hold("dev-2"):  # another device is not held back
            t.append(time.monotonic())
        return t
    t = run(spaced())
    assert t[1] - t[0] >= 0.24 and t[2] - t[1] >= 0.24 and t[3] - t[2] < 0.2
