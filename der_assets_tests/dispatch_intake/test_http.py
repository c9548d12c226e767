"""The webhook over real loopback HTTP: auth before anything is stored, one-line 400s naming the field."""

from __future__ import annotations

import json

import httpx
import pytest

from der_assets.dispatch.intake.http import build_app, signed_headers
from der_assets.dispatch.intake.store import latest
from der_assets.simulator.servers.runner import serving

from ._helpers import body, landed, raw, statuses

SECRET = b"s3cret-hmac-key"
TOKEN = "token-abc"
ID = "PJM-2026-07-15-001"


@pytest.fixture
def client(engine):
    app = build_app(engine, hmac_secret=SECRET, bearer_token=TOKEN, resource_ids={"AGG-1", "AGG-2"})
    with serving({"intake": app}) as urls, httpx.Client(base_url=urls["intake"], timeout=10) as http:
        yield http


def post(http: httpx.Client, content: bytes, headers: dict | None = None) -> httpx.Response:
    return http.post("/instructions", content=content, headers={"content-type": "application/json", **(headers or {})})


def test_signed_instruction_is_created_then_duplicate(client, engine):
    payload = raw()
    r = post(client, payload, signed_headers(payload, SECRET))
    assert r.status_code == 201, r.text
    assert r.json()["outcome"] == "new"
    assert statuses(engine) == {(ID, 0): "active"}
    assert latest(engine, ID).channel == "http"
    r = post(client, payload, signed_headers(payload, SECRET))
    assert (r.status_code, r.json()["outcome"]) == (200, "duplicate")
    assert landed(engine) == [("http", "parsed", None), ("http", "parsed", None)]


def test_bearer_token_modification_and_cancellation(client, engine):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert post(client, raw(), auth).status_code == 201
    r = post(client, raw(modification=1, target_kw=1000), auth)
    assert (r.status_code, r.json()["outcome"]) == (201, "modified")
    r = post(client, raw(modification=2, target_kw=1000, status="cancelled"), auth)
    assert (r.status_code, r.json()["outcome"]) == (201, "cancelled")
    assert statuses(engine) == {(ID, 0): "superseded", (ID, 1): "superseded", (ID, 2): "cancelled"}
    r = post(client, raw(modification=2, target_kw=5), auth)
    assert r.status_code == 409 and r.json()["field"] == "modification"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-DER-Signature": "sha256=" + "0" * 64},
        {"X-DER-Signature": "deadbeef"},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {},
    ],
    ids=["wrong-hmac", "malformed-hmac", "wrong-bearer", "not-bearer", "none"],
)
def test_bad_credentials_store_nothing(client, engine, isolated_home, headers):
    r = post(client, raw(), headers)
    assert r.status_code == 401
    assert statuses(engine) == {}
    assert landed(engine) == []
    assert not (isolated_home / "raw").exists() or not any((isolated_home / "raw").rglob("*"))


def test_valid_bearer_with_bad_signature_is_refused(client, engine):
    payload = raw()
    r = post(client, payload, {"Authorization": f"Bearer {TOKEN}", **signed_headers(b"other", SECRET)})
    assert r.status_code == 401
    assert landed(engine) == []


BAD = [
    (b"{not json", None, "not valid JSON"),
    (json.dumps(body(end="2026-07-15T17:00:00Z")).encode(), "end", "not after start"),
    (json.dumps(body(target_kw=[2000, -5, 0, 0])).encode(), "target_kw", "negative"),
    (json.dumps(body(interval_minutes=7)).encode(), "interval_minutes", "7-minute"),
    (json.dumps(body(interval_minutes=0)).encode(), "interval_minutes", "positive"),
    (json.dumps(body(resource_id="AGG-9")).encode(), "resource_id", "resource AGG-9 is not in the registry; known: AGG-1, AGG-2"),
    (json.dumps({k: v for k, v in body().items() if k != "iso"}).encode(), "iso", "required"),
    (json.dumps(body(start="2026-07-15T18:00:00")).encode(), "start", "UTC offset"),
    (json.dumps(body(status="paused")).encode(), "status", "paused"),
]


def test_malformed_or_impossible_instruction_is_400_naming_the_field(client, engine):
    for payload, field, words in BAD:
        r = post(client, payload, signed_headers(payload, SECRET))
        assert r.status_code == 400, (payload, r.text)
        assert "\n" not in r.text
        err = r.json()
        assert err["field"] == field, err
        assert words in err["error"]
        if field:
            assert f"field {field}" in err["error"]
    assert statuses(engine) == {}
    # each was still landed (it passed auth) and quarantined with its error
    kept = landed(engine)
    assert len(kept) == len(BAD)
    assert all(status == "quarantined" and error for _, status, error in kept)


def test_app_refuses_to_run_without_credentials(engine):
    with pytest.raises(ValueError, match="never runs unauthenticated"):
        build_app(engine, hmac_secret=None, bearer_token=None)
