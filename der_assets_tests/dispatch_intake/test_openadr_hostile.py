"""OpenADR under hostile XML (issue 17 item 1) and signed messages.

A DTD entity in an OpenADR message used to crash the receiving process (a segmentation fault in
lxml's schema-validating parser), so these run the VEN (`der intake`) and the demo VTN
(`der demo vtn`) as real processes and check that they are still alive afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

pytest.importorskip("openleadr")
from openleadr import OpenADRServer  # noqa: E402

from der_assets.dispatch.intake.store import latest  # noqa: E402
from der_assets.warehouse.schema import raw_payloads  # noqa: E402

from ._running import import_demo_registry, in_thread, read_ready, running_vtn, until  # noqa: E402
from ._sqlite import sqlite_engine  # noqa: E402, F401 (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")]

FIXTURES = Path(__file__).parent / "fixtures"
VEN_ID, REG_ID = "ven-der-1", "reg-der-1"
DER = str(Path(sys.executable).with_name("der"))


def entity_message() -> str:
    """The EPRI oadrDistributeEvent with a 3-character internal entity used in its vtnID."""
    xml = (FIXTURES / "distribute_event_active.xml").read_text()
    xml = xml.replace('<?xml version="1.0" encoding="utf-8"?>', "")
    return '<!DOCTYPE oadrPayload [<!ENTITY a "abc">]>' + xml.replace("<d3p1:vtnID>EPRI_VTN", "<d3p1:vtnID>&a;", 1)


def schema_failing_message() -> str:
    """The EPRI oadrDistributeEvent with a modificationNumber that is not a number."""
    xml = (FIXTURES / "distribute_event_active.xml").read_text()
    return xml.replace("<d3p1:modificationNumber>0<", "<d3p1:modificationNumber>zero<", 1)


def _quarantined(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(raw_payloads.c.error).where(
            raw_payloads.c.endpoint == "openadr", raw_payloads.c.status == "quarantined")).scalars())


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vtn(port: int, poison: list[str], **signing):
    """openleadr's VTN; while ``poison`` holds messages, a poll is answered with the next one."""
    from aiohttp import web

    server = OpenADRServer(vtn_id="TEST_VTN", http_host="127.0.0.1", http_port=port,
                           requested_poll_freq=dt.timedelta(seconds=1), show_server_cert_domain=False,
                           show_fingerprint=False,
                           ven_lookup=lambda ven_id: {"ven_id": VEN_ID, "ven_name": "der-ven", "fingerprint": None,
                                                      "registration_id": REG_ID}, **signing)

    async def register(info):
        return VEN_ID, REG_ID

    @web.middleware
    async def hostile(request, handler):
        if request.path.endswith("/OadrPoll") and poison:
            await request.read()
            return web.Response(text=poison.pop(0), content_type="application/xml")
        return await handler(request)

    server.add_handler("on_create_party_registration", register)
    server.app.middlewares.append(hostile)
    return server


def _simple_event(server, start: dt.datetime) -> str:
    intervals = [{"dtstart": start, "duration": dt.timedelta(minutes=30), "signal_payload": 1}]
    return server.add_event(ven_id=VEN_ID, signal_name="simple", signal_type="level", intervals=intervals,
                            target={"resource_id": "AGG-1"})


def _intake(home: Path, vtn_url: str, **extra) -> subprocess.Popen:
    env = {**os.environ, "DER_HOME": str(home), "DER_OPENADR_VTN_URL": vtn_url, "DER_OPENADR_ISO": "PJM",
           "DER_OPENADR_SIMPLE_LEVELS_KW": "1=1000", "DER_INTAKE_POLL_S": "1", **extra}
    env.pop("DER_WAREHOUSE_URL", None)
    log = open(home / "intake.log", "ab")
    return subprocess.Popen([DER, "intake", "--no-webhook", "--ready-file", str(home / "intake_ready.json")],
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def _alive(proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:  # -11 was the segfault
        raise AssertionError(f"the VEN process died (exit {proc.returncode})")
    return True


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_an_entity_bearing_message_is_quarantined_and_the_ven_lives_on(sqlite_engine, isolated_home, tmp_path):
    engine = sqlite_engine  # the data home's warehouse, which the `der intake` process opens too
    import_demo_registry(engine, tmp_path)
    port = _free_port()
    poison: list[str] = []
    server = _vtn(port, poison)

    async def serve(stop: asyncio.Event) -> None:
        await server.run()
        await stop.wait()
        await server.stop()

    with in_thread(serve):
        proc = _intake(isolated_home, f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b")
        try:
            until(lambda: (r := read_ready(isolated_home / "intake_ready.json")) and r["ven"]["status"] == "registered",
                  "the VEN to register", timeout_s=60)
            poison.append(entity_message())
            errors = until(lambda: _alive(proc) and _quarantined(engine), "the entity-bearing message quarantined")
            assert len(errors) == 1 and "DTDForbidden" in errors[0], errors
            # a message that fails the 2.0b schema is kept too, quarantined with the schema's complaint
            poison.append(schema_failing_message())
            errors = until(lambda: _alive(proc) and len(_quarantined(engine)) == 2 and _quarantined(engine),
                           "the schema-failing message quarantined")
            assert "fails the OpenADR 2.0b schema" in errors[1] and "modificationNumber" in errors[1], errors
            assert not poison  # it was served, and then
            # the VEN still records the next real event
            start = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
            event_id = _simple_event(server, start)
            row = until(lambda: _alive(proc) and latest(engine, event_id), "the next event in the store")
            assert (row.target_kw, row.status) == ((1000.0,), "active")
            assert proc.poll() is None
        finally:
            _stop(proc)
    assert proc.returncode == 0 or proc.returncode == -15, (isolated_home / "intake.log").read_text()[-2000:]


def test_the_demo_vtn_answers_an_entity_with_a_400_and_lives_on(tmp_path):
    """In this process (a `der demo vtn` process died with SIGSEGV on this request before the screen;
    run in a thread it would take pytest down with it, which fails as loudly)."""
    with running_vtn(tmp_path) as vtn:
        poll = ('<!DOCTYPE oadrPayload [<!ENTITY a "abc">]><oadrPayload xmlns="http://openadr.org/oadr-2.0b/2012/07">'
                '<oadrSignedObject><oadrPoll ei:schemaVersion="2.0b" '
                'xmlns:ei="http://docs.oasis-open.org/ns/energyinterop/201110"><ei:venID>&a;</ei:venID></oadrPoll>'
                '</oadrSignedObject></oadrPayload>')
        r = httpx.post(f"{vtn['vtn_url']}/OadrPoll", content=poll, headers={"Content-Type": "application/xml"},
                       timeout=10)
        assert r.status_code == 400 and "DTDForbidden" in r.text, r.text
        assert httpx.get(f"{vtn['admin_url']}/health", timeout=10).json()["status"] == "ok"


def _self_signed(folder: Path) -> tuple[str, str, str]:
    """(cert path, key path, fingerprint) of a fresh self-signed VTN certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from openleadr import utils

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-vtn")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (folder / "vtn.crt").write_bytes(pem)
    (folder / "vtn.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return str(folder / "vtn.crt"), str(folder / "vtn.key"), utils.certificate_fingerprint(pem)


def test_signed_messages_are_verified_against_the_pinned_fingerprint(sqlite_engine, tmp_path):
    engine = sqlite_engine
    from der_assets.dispatch.intake.openadr import InstructionVEN

    cert, key, fingerprint = _self_signed(tmp_path)
    port = _free_port()
    server = _vtn(port, [], cert=cert, key=key)
    url = f"http://127.0.0.1:{port}/OpenADR2/Simple/2.0b"
    wrong = ":".join(["00"] * 10)

    async def scenario():
        await server.run()
        pinned = InstructionVEN(engine, vtn_url=url, ven_name="der-ven", iso="PJM", resource_id="AGG-1",
                                simple_levels_kw={1: 1000.0}, vtn_fingerprint=fingerprint)
        impostor = InstructionVEN(engine, vtn_url=url, ven_name="der-ven", iso="PJM", resource_id="AGG-1",
                                  simple_levels_kw={1: 1000.0}, vtn_fingerprint=wrong)
        try:
            await asyncio.wait_for(impostor.client.create_party_registration(), 15)
            assert impostor.client.registration_id is None  # every answer of this VTN fails the check
            await asyncio.wait_for(pinned.run(), 15)
            assert pinned.client.registration_id == REG_ID
            start = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(second=0, microsecond=0)
            event_id = _simple_event(server, start)
            for _ in range(150):
                if await asyncio.to_thread(latest, engine, event_id):
                    break
                await asyncio.sleep(0.1)
            return impostor.refused, pinned.refused, await asyncio.to_thread(latest, engine, event_id)
        finally:
            await pinned.stop()
            await impostor.client.client_session.close()
            await server.stop()

    refused_impostor, refused_pinned, row = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert row is not None and row.target_kw == (1000.0,)  # signed by the pinned certificate: recorded
    assert refused_pinned == []
    assert len(refused_impostor) == 1 and "XML signature not verified against the VTN fingerprint" in \
        refused_impostor[0] and "FingerprintMismatch" in refused_impostor[0]
    errors = _quarantined(engine)
    assert errors == refused_impostor
