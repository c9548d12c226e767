"""What `der dev` starts beside the UI, as real processes: `der demo vtn` and `der intake --demo`.

The operator is told the webhook URL and the demo token; with them a POST is recorded, and the
VEN registers with the demo VTN. SIGTERM stops both, leaving "stopped" health lines.
"""

from __future__ import annotations

import os
import socket

import httpx
import pytest

from der_assets.dispatch.intake.store import latest

from ._helpers import raw
from ._running import import_demo_registry, read_ready, until

pytestmark = pytest.mark.slow


def test_der_dev_intake_and_demo_vtn_processes(isolated_home, tmp_path, monkeypatch):
    from der_assets import config
    from der_assets.devserver import _stop, start_intake
    from der_assets.warehouse import connect_warehouse

    for name in ("DER_OPENADR_VTN_URL", "DER_INTAKE_PORT", "DER_WEBHOOK_HMAC_SECRET", "DER_WEBHOOK_BEARER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    engine = connect_warehouse(config.warehouse_url())
    import_demo_registry(engine, tmp_path)
    env = {**os.environ, "DER_HOME": str(isolated_home)}
    said: list[str] = []
    procs = start_intake(env, said.append)
    try:
        ready = until(lambda: (r := read_ready(isolated_home / "intake_ready.json"))
                      and r["ven"]["status"] == "registered" and r, "the intake's VEN to register", timeout_s=60)
        vtn = read_ready(isolated_home / "vtn_ready.json")
        assert ready["ven"]["vtn_url"] == vtn["vtn_url"] and vtn["vtn_url"].startswith("http://127.0.0.1:")
        token = ready["credentials"]["bearer_token"]
        assert said[0] == (f"intake: webhook {ready['webhook']['url']} (Authorization: Bearer {token}; or "
                           f"X-DER-Timestamp: <Unix s> and X-DER-Signature: sha256=HMAC-SHA256 of "
                           f"'<timestamp>.<body>' with secret "
                           f"{ready['credentials']['hmac_secret']})")
        assert f"demo VTN {vtn['vtn_url']}" in said[1] and "der demo event --in 10m --kw 500" in said[1]
        r = httpx.post(ready["webhook"]["url"], content=raw(instruction_id="DEV-1"),
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 201, r.text
        assert latest(engine, "DEV-1").channel == "http"
    finally:
        for proc in reversed(procs):
            _stop(proc)
    assert [p.returncode for p in procs] == [0, 0]
    final = read_ready(isolated_home / "intake_ready.json")
    assert [final[c]["status"] for c in ("webhook", "inbox", "ven")] == ["stopped"] * 3
    log = (isolated_home / "intake.log").read_text()
    assert "webhook instruction=DEV-1 modification=0 resource=AGG-1 outcome=new" in log
    assert "{'" not in log and "Traceback" not in log  # readable lines, no reprs
    vtn_log = (isolated_home / "vtn.log").read_text()
    assert "vtn registered ven_name=der-ven" in vtn_log and "{'" not in vtn_log and "Traceback" not in vtn_log


def test_a_busy_port_is_one_line(capsys, monkeypatch):
    from der_assets.cli import main

    monkeypatch.setenv("DER_WEBHOOK_BEARER_TOKEN", "t")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as info:
            main(["intake", "--port", str(port)])
    out, err = capsys.readouterr()
    assert info.value.code == 2
    assert err.startswith(f"der: error: the intake webhook cannot listen on 127.0.0.1:{port} (")
    assert err.endswith("); set DER_INTAKE_PORT or pass --port\n") and err.count("\n") == 1
