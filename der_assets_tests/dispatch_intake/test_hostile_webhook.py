"""The webhook under hostile input (issue 17 items 2, 5, 14, 15, 16), on SQLite and PostgreSQL.

Every case answers with its status and reason, never a 500; what passed authentication is
landed and quarantined with the reason; nothing absurd reaches dispatch_instructions.
"""

from __future__ import annotations

import datetime as dt
import json
import select
import socket
import threading

import httpx
import pytest
import sqlalchemy as sa

from der_assets.dispatch.intake.http import sign, signed_headers
from der_assets.simulator.servers.runner import serving
from der_assets.warehouse.schema import dispatch_instructions

from ._helpers import body, landed, raw, statuses
from ._sqlite import sqlite_engine  # noqa: F401 (fixture)

SECRET = b"hostile-hmac-key"
TOKEN = "hostile-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
ID = "PJM-2026-07-15-001"
LIMIT = 64_000


def _serve(engine):
    from der_assets.dispatch.intake.http import build_app

    from der_assets.dispatch.intake.resources import ResourceSet

    app = build_app(engine, hmac_secret=SECRET, bearer_token=TOKEN, resource_ids=ResourceSet({"AGG-1": {"PJM"}}),
                    max_body_bytes=LIMIT)
    return serving({"intake": app})


@pytest.fixture
def served(engine):
    """The webhook on SQLite and on PostgreSQL: for what the database can change."""
    with _serve(engine) as urls:
        yield urls["intake"]


@pytest.fixture
def served_sqlite(sqlite_engine):
    """The webhook on SQLite only: for what is decided before the database is reached."""
    with _serve(sqlite_engine) as urls:
        yield urls["intake"]


@pytest.fixture
def client(served):
    with httpx.Client(base_url=served, timeout=20) as http:
        yield http


def post(http, content: bytes, headers: dict) -> httpx.Response:
    return http.post("/instructions", content=content, headers={"content-type": "application/json", **headers})


# ------------------------------------------------------------------ item 14: the landing race


def test_twenty_simultaneous_identical_requests_all_succeed_with_one_effect(served_sqlite, sqlite_engine):
    """The race was on the landing zone's shared temporary file (13 of 20 got a 500); the store's lock
    under concurrency is tested on both databases in test_store."""
    served, engine = served_sqlite, sqlite_engine
    payload = raw()
    barrier = threading.Barrier(20)
    answers: list = [None] * 20

    def send(k: int) -> None:
        with httpx.Client(base_url=served, timeout=60) as http:
            barrier.wait()
            try:
                answers[k] = post(http, payload, BEARER).status_code
            except httpx.HTTPError as exc:
                answers[k] = repr(exc)

    threads = [threading.Thread(target=send, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(answers, key=str) == [200] * 19 + [201]
    assert statuses(engine) == {(ID, 0): "active"}
    assert landed(engine) == [("http", "parsed", None)] * 20


# ------------------------------------------------------------------ item 15: no 500s


def _quarantined_once(engine, words: str) -> None:
    kept = landed(engine)
    assert len(kept) == 1 and kept[0][1] == "quarantined" and words in kept[0][2], kept


# ------------------------------------------------------------------ item 16: absurd instructions

ABSURD = [
    (body(iso="XYZ"), "iso", "'XYZ' is not an ISO the registry enrolls in (PJM, NYISO, ISONE)"),
    (body(iso="NYISO"), "iso", "resource AGG-1 is enrolled in PJM, not NYISO"),
    (body(target_kw=1e308), "target_kw", "1e+308 kW is over 1e+07 kW (10 GW)"),
    (body(start="9999-07-15T18:00:00Z", end="9999-07-15T20:00:00Z"), "start",
     "9999-07-15T18:00:00Z is more than 400 days after it was received"),
    (body(issued_at="1970-01-01T00:00:00Z", start="1970-01-01T18:00:00Z", end="1970-01-01T20:00:00Z"), "start",
     "1970-01-01T18:00:00Z is before 2000-01-01T00:00:00Z"),
    (body(issued_at="2026-07-15T18:30:00Z"), "issued_at",
     "2026-07-15T18:30:00Z is after the event's start 2026-07-15T18:00:00Z"),
    (body(end="2046-07-15T18:00:00Z", interval_minutes=1), "end",
     "the event lasts 175320 h in 1-minute intervals; at most 10080 intervals"),
    (body(instruction_id="EVT-1\r\nINFO forged line"), "instruction_id", "control character U+000D at position 6"),
    (body(resource_id="AGG-1\n"), "resource_id", "control character U+000A at position 6"),
    (body(instruction_id="NEVER-SEEN", status="cancelled"), "instruction_id",
     "cancels instruction NEVER-SEEN, which was never received"),
]


def test_no_500_and_no_absurd_instruction_stored_on_either_database(client, engine):
    """Item 15 (nesting, modifications past the 32-bit column) and item 16 (absurd ranges)."""
    nested = b"[" * 30_000 + b"]" * 30_000
    r = post(client, nested, BEARER)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "http: not valid JSON (nested too deeply)"
    _quarantined_once(engine, "nested too deeply")
    for modification in (2**70, 2**31):  # SQLite overflowed at 2^63, PostgreSQL's INTEGER at 2^31
        r = post(client, raw(modification=modification), BEARER)
        assert r.status_code == 400, r.text
        assert r.json() == {"error": f"http field modification: {modification} is over 2147483647, the largest "
                                     "modification number stored", "field": "modification"}
    assert [s for _, s, _ in landed(engine)] == ["quarantined"] * 3
    for data, field, words in ABSURD:
        r = post(client, json.dumps(data).encode(), BEARER)
        assert r.status_code == 400, (data, r.text)
        assert r.json()["field"] == field, r.json()
        assert words in r.json()["error"], r.json()
    assert statuses(engine) == {}
    kept = landed(engine)
    assert len(kept) == 3 + len(ABSURD) and {s for _, s, _ in kept} == {"quarantined"}
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(dispatch_instructions)).scalar_one() == 0
    # the largest 32-bit modification is stored, the same on both databases
    r = post(client, raw(instruction_id="MAX-MOD", modification=2**31 - 1), BEARER)
    assert r.status_code == 201, r.text
    assert statuses(engine) == {("MAX-MOD", 2**31 - 1): "active"}
    # what is refused for a first issue is how a running event is changed: mid-event modifications
    assert post(client, raw(), BEARER).status_code == 201
    mid = "2026-07-15T19:00:00Z"
    assert post(client, raw(modification=1, issued_at=mid, target_kw=500), BEARER).status_code == 201
    assert post(client, raw(modification=2, issued_at=mid, target_kw=500, status="cancelled"), BEARER).json()[
        "outcome"] == "cancelled"
    assert statuses(engine)[(ID, 2)] == "cancelled"


# ------------------------------------------------------------------ item 5: replay


def test_a_signature_binds_a_timestamp_within_five_minutes(served_sqlite, sqlite_engine):
    engine = sqlite_engine
    client = httpx.Client(base_url=served_sqlite, timeout=20)
    payload = raw()
    now = dt.datetime.now(dt.timezone.utc)
    for when, words in ((dt.datetime(2020, 7, 15, tzinfo=dt.timezone.utc), "behind the server's clock"),
                        (now - dt.timedelta(minutes=6), "behind the server's clock"),
                        (now + dt.timedelta(minutes=6), "ahead of the server's clock")):
        r = post(client, payload, signed_headers(payload, SECRET, when))
        assert r.status_code == 401 and words in r.json()["error"], r.text
    # the old scheme (HMAC of the body alone, no timestamp) is a replayable credential: refused
    old = "sha256=" + __import__("hmac").new(SECRET, payload, "sha256").hexdigest()
    r = post(client, payload, {"X-DER-Signature": old})
    assert r.status_code == 401 and "X-DER-Timestamp" in r.json()["error"]
    stamp = str(int(now.timestamp()))
    r = post(client, payload, {"X-DER-Signature": old, "X-DER-Timestamp": stamp})
    assert r.status_code == 401
    # a timestamp changed after signing breaks the signature
    r = post(client, payload, {"X-DER-Signature": sign(payload, SECRET, int(now.timestamp()) - 1),
                               "X-DER-Timestamp": stamp})
    assert r.status_code == 401
    assert statuses(engine) == {} and landed(engine) == []
    r = post(client, payload, signed_headers(payload, SECRET, now - dt.timedelta(minutes=4)))
    assert r.status_code == 201, r.text


# ------------------------------------------------------------------ item 2: nothing read before the headers pass


def _vm(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(field)


def _status_line(sock: socket.socket) -> tuple[int, bytes]:
    """The whole answer: every refusal closes the connection, so read to the end."""
    data = b""
    sock.settimeout(20)
    while True:
        try:
            piece = sock.recv(65536)
        except ConnectionResetError:
            break
        if not piece:
            break
        data += piece
    return int(data.split(b" ", 2)[1]), data


def _chunked_upload(url: str, headers: dict, total_bytes: int) -> tuple[int, int, bytes]:
    """Send a chunked POST of up to ``total_bytes``, stopping as soon as an answer is readable or the
    server closes; (status, bytes sent, response head)."""
    host, port = url.removeprefix("http://").split(":")
    head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, "Content-Type": "application/json",
                                                  "Transfer-Encoding": "chunked", **headers}.items())
    chunk = b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n"
    sent = 0
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"POST /instructions HTTP/1.1\r\n{head}\r\n".encode())
        while sent < total_bytes:
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1 << 20
        status, response = _status_line(sock)
    return status, sent, response


def test_nothing_is_read_before_the_headers_pass(served_sqlite, sqlite_engine):
    served, engine = served_sqlite, sqlite_engine
    _ = _vm("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as handle:  # reset the peak (VmHWM) to the current RSS
            handle.write("5")
    except OSError:
        pytest.skip("cannot reset VmHWM here")
    before = _vm("VmRSS")
    status, sent, response = _chunked_upload(served, {}, 200 << 20)
    peak = _vm("VmHWM")
    assert status == 401, response
    assert b"missing credentials" in response
    # 200 MB offered; the server never holds it (a loose bound: well under a quarter of the body)
    assert peak - before < 50 << 20, (peak - before, sent)
    assert landed(engine) == []
    # with credentials, the stream stops at the limit
    status, sent, response = _chunked_upload(served, BEARER, 64 << 20)
    assert status == 413 and f"body over {LIMIT} bytes".encode() in response
    assert landed(engine) == []
    # and a declared length, or none, is judged from the headers alone
    host, port = served.removeprefix("http://").split(":")
    for headers, expected in ((f"Authorization: Bearer {TOKEN}\r\nContent-Length: {LIMIT + 1}\r\n", 413),
                              (f"Authorization: Bearer {TOKEN}\r\n", 411),
                              (f"Authorization: Bearer wrong\r\nContent-Length: {10**12}\r\n", 401)):
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(f"POST /instructions HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode())
            status, response = _status_line(sock)  # answered with no body sent at all
        assert status == expected, response


def test_an_unreachable_warehouse_is_a_503_not_a_500():
    from der_assets.dispatch.intake.http import build_app

    down = sa.create_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    app = build_app(down, hmac_secret=None, bearer_token=TOKEN)
    with serving({"intake": app}) as urls, httpx.Client(base_url=urls["intake"], timeout=20) as http:
        r = post(http, raw(), BEARER)
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["error"] == "the warehouse is unreachable; nothing was recorded, send again"
