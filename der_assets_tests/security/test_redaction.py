"""Credentials never reach a log line, an exception or a connector error (issue 17 item 4).

The SolarEdge api_key and the Enphase key travel in request URLs, and httpx logs each URL at INFO:
pulled from the twin over loopback, the log shows the request with the value masked.
"""

from __future__ import annotations

import logging

import httpx
import pytest

from der_assets.connectors import enphase, solaredge
from der_assets.connectors.http import ConnectorError
from der_assets.connectors.settings import vendor_settings
from der_assets.redact import MASK, RedactingFilter, redact
from der_assets.simulator.servers.runner import serving
from der_assets_tests.connectors_vendor._twin import CREDS, DAY, make_hub, ready, run, server, site_ref

KEY = CREDS["solaredge_api_key"]


@pytest.mark.parametrize("text, expected", [
    ("GET https://monitoringapi.solaredge.com/site/1/energyDetails?startTime=2026-07-15&api_key=ABC123&meters=PV",
     "GET https://monitoringapi.solaredge.com/site/1/energyDetails?startTime=2026-07-15&api_key=[REDACTED]&meters=PV"),
    ("https://api.enphaseenergy.com/api/v4/systems/7/telemetry?key=abcdef0123&start_at=1", 
     "https://api.enphaseenergy.com/api/v4/systems/7/telemetry?key=[REDACTED]&start_at=1"),
    ("grant_type=refresh_token&refresh_token=r-tok&client_secret=s3&client_id=der-1",
     "grant_type=refresh_token&refresh_token=[REDACTED]&client_secret=[REDACTED]&client_id=der-1"),
    ("?token=t1&access_token=t2&password=p w", "?token=[REDACTED]&access_token=[REDACTED]&password=[REDACTED] w"),
    ("headers={'Authorization': 'Bearer eyJhbGciOi.x.y', 'Accept': 'json'}",
     "headers={'Authorization': '[REDACTED]', 'Accept': 'json'}"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: [REDACTED]"),
    ('{"access_token": "abc", "expires_in": 3600}', '{"access_token": "[REDACTED]", "expires_in": 3600}'),
    # what is not a credential stays: run keys, partition keys, the WWW-Authenticate realm
    ("run_key=PJM-1:0:active partition_key=2026-07-15", "run_key=PJM-1:0:active partition_key=2026-07-15"),
    ('WWW-Authenticate: Bearer realm="der-instructions"', 'WWW-Authenticate: Bearer realm="der-instructions"'),
    ("basic information about the installation", "basic information about the installation"),
    ("sent Bearer 3f9a0c1d2e4b5a6978 to the gateway", "sent Bearer [REDACTED] to the gateway"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_httpx_request_lines_from_a_solaredge_and_an_enphase_pull_show_no_key(caplog):
    caplog.set_level(logging.INFO, logger="httpx")
    hub, clock = make_hub()
    apps = {"solaredge": server("solaredge").build_app(hub, api_key=KEY),
            "enphase": server("enphase").build_app(hub, api_key=CREDS["enphase_api_key"],
                                                   access_token=CREDS["enphase_access_token"])}
    with serving(apps) as urls:
        async def go():
            async with solaredge.client(vendor_settings("solaredge", env={}, ready=ready(urls)), clock=clock) as h:
                await solaredge.pull(h, site_ref(hub, "S-00001"), *DAY, endpoints=("energyDetails",))
            async with enphase.client(vendor_settings("enphase", env={}, ready=ready(urls)), clock=clock,
                                      per_minute=50) as h:
                await enphase.pull(h, site_ref(hub, "S-00007"), *DAY, endpoints=("production_micro",))
        run(go())
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert any("energyDetails?" in line and f"api_key={MASK}" in line for line in lines), lines
    assert any("telemetry/production_micro?" in line and f"key={MASK}" in line for line in lines), lines
    text = caplog.text
    for secret in (KEY, CREDS["enphase_api_key"], CREDS["enphase_access_token"]):
        assert secret not in text


def test_exceptions_and_connector_errors_are_redacted(caplog):
    url = f"http://127.0.0.1:9/site/1/details?api_key={KEY}"
    try:
        raise httpx.ConnectError(f"cannot reach {url}")
    except httpx.ConnectError:
        logging.getLogger("der_assets.test").exception("pull failed for %s", url)
    record = caplog.records[-1]
    assert KEY not in record.getMessage() and KEY not in (record.exc_text or "") and KEY not in caplog.text
    assert f"api_key={MASK}" in record.exc_text
    err = ConnectorError(f"GET {url}: HTTP 403", source="solaredge", endpoint="details", site_id="S-1")
    assert KEY not in str(err) and f"api_key={MASK}" in str(err)


def test_the_filter_redacts_for_a_handler_of_its_own():
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Keep()
    handler.addFilter(RedactingFilter())
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "POST %s", ("/token?client_secret=zz9",), None)
    handler.handle(record)
    assert records == [f"POST /token?client_secret={MASK}"]


def test_the_log_guard_would_catch_a_credential_in_a_record_or_a_file():
    import tempfile
    from pathlib import Path

    from der_assets_tests import credential_log_guard as guard

    assert guard.find_credentials(f"GET /site/1/details?api_key={KEY}") == ["solaredge_api_key (seed 0)"]
    assert guard.find_credentials(f"GET /site/1/details?api_key={MASK}") == []
    with tempfile.TemporaryDirectory() as folder:  # not under the session's basetemp, which the guard scans
        log = Path(folder) / "intake.log"
        log.write_text(f"2026-07-15T18:00:00Z INFO token {CREDS['sonnen_auth_token']}\n")
        assert guard._scan_files(Path(folder)) == [f"log file {log}: sonnen_auth_token (seed 0)"]
    # a record made now passes the redaction before the guard looks at it: nothing is counted
    hits = len(guard._state["hits"])
    logging.getLogger("der_assets.test").warning("pulling ?api_key=%s", KEY)
    assert len(guard._state["hits"]) == hits
