"""Green Button Connect OAuth over loopback against the twin's custodian: the authorization code
grant, refresh with a rotating refresh token kept 0600, an expired access token refreshed and the
request asked again, a 429 waited out as its Retry-After says, and no token in any log line."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from der_assets.connectors import greenbutton_connect as gbc
from der_assets.connectors.http import ConnectorError, RetryPolicy
from der_assets.registry.demo import demo_fleet

from .greenbutton_connect_twin import CLIENT_ID, CLIENT_SECRET, SEED_REFRESH, connect_twin, meters

START = "2026-07-14T00:00Z"


@pytest.fixture(scope="module")
def fleet():
    return demo_fleet(3)


def _run(coro):
    return asyncio.run(coro)


def test_authorization_code_flow_then_its_usage_points(fleet, tmp_path):
    """authorize -> 302 with code and state -> token (HTTP Basic) -> the Authorization names this
    customer's subscription, whose one usage point is the customer's meter."""
    site = "S-00002"
    with connect_twin(fleet, START, advance_h=1) as twin:  # no data needed: consent, tokens, usage points
        settings = twin.settings(tmp_path / "gbc" / "tokens.json", refresh_token=None)

        async def flow():
            async with gbc.ConnectClient(settings) as client:
                url = client.authorize_url("st-42", login_hint=site)
                async with httpx.AsyncClient() as browser:  # the customer's browser, consenting
                    answer = await browser.get(url)
                assert answer.status_code == 302
                back = urlsplit(answer.headers["location"])
                assert f"{back.scheme}://{back.netloc}{back.path}" == settings.redirect_uri
                query = parse_qs(back.query)
                assert query["state"] == ["st-42"]
                key = await client.exchange_code(query["code"][0])
                with pytest.raises(ConnectorError, match="invalid_grant"):  # a code is good once
                    await client.exchange_code(query["code"][0])
                subs = await client.subscriptions()
                points = await client.usage_points(subs[0])
                return key, subs, points

        key, subs, points = _run(flow())
    assert key.endswith("/espi/1_1/resource/Authorization/2")  # "1" is the fleet's pre-consented one
    assert [s.subscription_id for s in subs] == ["2"]
    meter_of = {s: m for m, s in meters(fleet).items()}
    assert points == [meter_of[site]]


def test_refresh_rotates_and_is_stored_0600(fleet, tmp_path):
    token_file = tmp_path / "gbc" / "tokens.json"
    with connect_twin(fleet, START, advance_h=1) as twin:
        settings = twin.settings(token_file)

        async def twice():
            async with gbc.ConnectClient(settings) as client:
                first = await client.refresh(gbc.SEED)
                second = await client.refresh(first.authorization_uri)
            return first, second

        first, second = _run(twice())
        assert first.refresh_token != SEED_REFRESH and second.refresh_token != first.refresh_token
        stored = json.loads(token_file.read_text())["authorizations"]
        assert list(stored) == [second.authorization_uri]
        assert stored[second.authorization_uri]["refresh_token"] == second.refresh_token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        # the spent refresh token is refused by the custodian
        spent = httpx.post(f"{twin.url}/oauth/token", data={"grant_type": "refresh_token",
                                                            "refresh_token": first.refresh_token},
                           auth=(CLIENT_ID, CLIENT_SECRET))
        assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"


def test_expired_access_token_is_refreshed_and_the_request_asked_again(fleet, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    token_file = tmp_path / "gbc" / "tokens.json"
    with connect_twin(fleet, START, advance_h=1, access_ttl_s=3600) as twin:
        settings = twin.settings(token_file)

        async def pull_after_expiry():
            async with gbc.ConnectClient(settings) as client:
                subs = await client.subscriptions()
                before = client.grants()[subs[0].grant_key]
                twin.wall.t += 3601  # the custodian's clock passes the token's expiry; ours does not know
                points = await client.usage_points(subs[0])
                return client, before, client.grants()[subs[0].grant_key], points

        client, before, after, points = _run(pull_after_expiry())
    statuses = [(endpoint, status) for endpoint, status, _ in client.http.attempts_log]
    assert statuses == [("oauth_token", 200), ("Authorization", 200),
                        ("UsagePoint", 401), ("oauth_token", 200), ("UsagePoint", 200)]
    assert len(points) == 3
    assert after.access_token != before.access_token and after.refresh_token != before.refresh_token
    # no token or client secret in any log line (ours, httpx's)
    stored = json.loads(token_file.read_text())["authorizations"]
    secrets = {CLIENT_SECRET, SEED_REFRESH, before.access_token, before.refresh_token,
               *(g["access_token"] for g in stored.values()), *(g["refresh_token"] for g in stored.values())}
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    for s in secrets:
        assert s not in caplog.text
        assert s not in repr(after) and s not in repr(settings)


def test_wrong_client_secret_is_one_line_without_the_secret(fleet, tmp_path):
    with connect_twin(fleet, START, advance_h=1) as twin:
        settings = twin.settings(tmp_path / "tokens.json")
        bad = gbc.ConnectSettings(base_url=settings.base_url, client_id=CLIENT_ID, client_secret="wrong-secret-9",
                                  refresh_token=SEED_REFRESH, token_file=settings.token_file)

        async def go():
            async with gbc.ConnectClient(bad) as client:
                await client.subscriptions()

        with pytest.raises(ConnectorError) as info:
            _run(go())
    message = str(info.value)
    assert "\n" not in message and "HTTP 401" in message and "invalid_client" in message
    assert "wrong-secret-9" not in message and SEED_REFRESH not in message


def test_429_is_waited_out_as_retry_after_says(fleet, tmp_path):
    """The custodian admits 3 requests a second: the fourth gets a 429 with Retry-After 1, the client
    waits that long (not its own backoff) and the pull completes."""
    with connect_twin(fleet, START, advance_h=24 * 4, rate_limit=(3, 1.0)) as twin:
        settings = twin.settings(tmp_path / "tokens.json")

        async def go():
            async with gbc.ConnectClient(settings, retry=RetryPolicy(attempts=4, base_s=30.0)) as client:
                out = await gbc.pull(client, {}, now=twin.clock(), site_of=meters(fleet).get)
                return client, out

        client, out = _run(go())
    limited = [(endpoint, wait) for endpoint, status, wait in client.http.attempts_log if status == 429]
    assert limited and all(wait == 1.0 for _, wait in limited)  # Retry-After, not a 30 s backoff
    assert not out.failures and len(out.payloads) == 3


def test_a_stored_token_the_custodian_forgot_falls_back_to_the_configured_one(fleet, tmp_path, caplog):
    """A twin restarted (or a re-consent put a new token in the settings): the stored, rotated refresh
    token is refused (invalid_grant), the configured one is tried once, and the pull goes on."""
    token_file = tmp_path / "gbc" / "tokens.json"
    for _ in range(2):
        with connect_twin(fleet, START, advance_h=1) as twin:
            async def go():
                async with gbc.ConnectClient(twin.settings(token_file)) as client:
                    return await client.subscriptions()
            subs = _run(go())
            assert [s.subscription_id for s in subs] == ["1"]
    assert "stored refresh token" in caplog.text and "refused" in caplog.text

