"""The running intake end to end on loopback: the inbox watcher, the signed webhook, health lines,
and the registry's resources as the only ones accepted on every path."""

from __future__ import annotations

import json

import httpx
import pytest

from der_assets.dispatch.intake.http import signed_headers
from der_assets.dispatch.intake.store import latest

from ._helpers import body, landed, raw, statuses
from ._running import HMAC, TOKEN, import_demo_registry, read_ready, running_intake, until

pytestmark = pytest.mark.slow


@pytest.fixture
def registry(engine, tmp_path):
    return import_demo_registry(engine, tmp_path)


def test_a_file_dropped_in_the_inbox_is_recorded_and_moved(engine, tmp_path, registry):
    with running_intake(engine, tmp_path) as (service, ready):
        assert ready["inbox"]["path"] == str(tmp_path / "dispatch_inbox")
        assert ready["resources"] == ["AGG-1"] and ready["ven"]["status"] == "disabled"
        inbox = tmp_path / "dispatch_inbox"
        (inbox / "evt.json.tmp").write_text(json.dumps(body(instruction_id="INBOX-1")))
        (inbox / "evt.json.tmp").rename(inbox / "evt.json")  # how a writer drops a file whole
        (inbox / "other.json").write_text(json.dumps(body(instruction_id="INBOX-2", resource_id="AGG-9")))

        row = until(lambda: latest(engine, "INBOX-1"), "the inbox file in the store")
        assert (row.channel, row.status, row.resource_id) == ("inbox", "active", "AGG-1")
        until(lambda: (inbox / "done" / "evt.json").exists() and (inbox / "rejected" / "other.json").exists(),
              "both files moved")
        reason = (inbox / "rejected" / "other.json.error.txt").read_text()
        assert reason == "other.json field resource_id: resource AGG-9 is not in the registry; known: AGG-1\n"
        line = until(lambda: (r := read_ready(tmp_path / "intake_ready.json"))["inbox"]["rejected"] == 1 and r,
                     "the inbox health line to count both")["inbox"]
        assert (line["status"], line["recorded"], line["rejected"]) == ("watching", 1, 1)
        assert line["last_scan_at"].endswith("Z")
    assert statuses(engine) == {("INBOX-1", 0): "active"}
    assert sorted(s for _, s, _ in landed(engine)) == ["parsed", "quarantined"]
    assert read_ready(tmp_path / "intake_ready.json")["inbox"]["status"] == "stopped"


def test_a_signed_post_to_the_running_webhook_is_recorded(engine, tmp_path, registry):
    with running_intake(engine, tmp_path) as (service, ready):
        hook = ready["webhook"]
        assert hook["status"] == "listening" and hook["auth"] == ["hmac", "bearer"]
        assert "credentials" not in ready  # only `der dev`'s generated demo secrets are ever written
        payload = raw(instruction_id="HTTP-1")
        r = httpx.post(hook["url"], content=payload, headers=signed_headers(payload, HMAC.encode()),
                       timeout=10)
        assert (r.status_code, r.json()["outcome"]) == (201, "new")
        assert latest(engine, "HTTP-1").channel == "http"

        unknown = raw(instruction_id="HTTP-2", resource_id="AGG-9")
        r = httpx.post(hook["url"], content=unknown, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert r.status_code == 400
        assert r.json() == {"error": "http field resource_id: resource AGG-9 is not in the registry; known: AGG-1",
                            "field": "resource_id"}
        assert httpx.post(hook["url"], content=payload, timeout=10).status_code == 401

        health = httpx.get(hook["health_url"], timeout=10)
        assert health.status_code == 200
        assert health.json()["status"] == "ok" and health.json()["warehouse"] == "ok"
        assert health.json()["webhook"]["url"] == hook["url"] and "credentials" not in health.json()
    assert statuses(engine) == {("HTTP-1", 0): "active"}


def test_a_registry_import_is_picked_up_without_a_restart(engine, tmp_path, registry, monkeypatch):
    """The running intake re-reads the registry's resources (every few seconds), so a new resource is
    accepted once it is imported; here the cache is made to expire on the test's command."""
    from der_assets.registry.files import write_registry_file
    from der_assets.registry.demo import demo_fleet
    from der_assets.registry.service import import_registry_file

    with running_intake(engine, tmp_path) as (service, ready):
        clock = [0.0]
        service.resources._clock = lambda: clock[0]
        service.resources._ids = None
        assert "AGG-2" not in service.resources
        fleet = demo_fleet(4)
        fleet.loc[fleet.site_id == fleet.site_id.max(), "resource_id"] = "AGG-2"
        import_registry_file(engine, write_registry_file(fleet, tmp_path / "fleet2.csv"), changed_by="test")
        assert "AGG-2" not in service.resources  # within the cache period
        clock[0] += service.resources.ttl_s
        assert sorted(service.resources) == ["AGG-1", "AGG-2"]
        payload = raw(instruction_id="HTTP-3", resource_id="AGG-2")
        r = httpx.post(ready["webhook"]["url"], content=payload,
                       headers=signed_headers(payload, HMAC.encode()), timeout=10)
        assert r.status_code == 201, r.text


def test_the_webhook_never_starts_without_a_secret():
    from der_assets.dispatch.intake.service import IntakeSettings
    from der_assets.errors import UserError

    with pytest.raises(UserError, match="never runs unauthenticated: set DER_WEBHOOK_HMAC_SECRET"):
        IntakeSettings.from_env({})
    settings = IntakeSettings.from_env({}, demo=True)
    assert settings.bearer_token and settings.hmac_secret  # `der dev`'s deterministic demo secrets
    assert IntakeSettings.from_env({}, demo=True) == settings
    assert IntakeSettings.from_env({"DER_WEBHOOK_BEARER_TOKEN": "mine"}, demo=True).hmac_secret is None
    with pytest.raises(UserError, match="DER_OPENADR_SIMPLE_LEVELS_KW='1=x'"):
        IntakeSettings.from_env({"DER_WEBHOOK_BEARER_TOKEN": "t", "DER_OPENADR_SIMPLE_LEVELS_KW": "1=x"})
    levels = IntakeSettings.from_env({"DER_WEBHOOK_BEARER_TOKEN": "t", "DER_OPENADR_SIMPLE_LEVELS_KW": "1=500, 2=1000"})
    assert levels.simple_levels_kw == {1: 500.0, 2: 1000.0}
