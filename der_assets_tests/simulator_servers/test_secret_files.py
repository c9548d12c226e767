"""Files that hold credentials are the owner's alone (0600), whatever the umask: the twin's ready
file (every vendor server's credentials), the demo VTN's (its admin token) and the intake's under
`der dev` (the demo webhook secrets)."""

from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from der_assets.atomic import write_atomic
from der_assets.registry.demo import demo_fleet


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_private_write_is_0600_from_the_start_and_replaces_a_readable_file(tmp_path):
    path = tmp_path / "secret.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    seen = []
    old = os.umask(0)  # the loosest umask: only the code's own mode keeps others out
    try:
        write_atomic(path, lambda tmp: (seen.append(_mode(tmp)), tmp.write_text('{"token": "t"}')), private=True)
        plain = write_atomic(tmp_path / "plain.txt", lambda tmp: tmp.write_text("x"))
    finally:
        os.umask(old)
    assert seen == [0o600]  # before the first byte was written
    assert _mode(path) == 0o600 and path.read_text() == '{"token": "t"}'
    assert _mode(plain) == 0o666  # files without secrets keep the usual mode
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_twin_ready_file_is_private(tmp_path):
    from der_assets_tests.twin_history._running import running_twin

    with running_twin(demo_fleet(4), tmp_path, now=pd.Timestamp("2026-07-15T12:00Z"), history_days=0) as (data, ready):
        assert data["credentials"]  # what makes it secret
        assert _mode(ready) == 0o600


def test_the_intake_ready_file_with_demo_secrets_is_private(tmp_path):
    from der_assets.dispatch.intake.service import demo_secrets
    from der_assets.warehouse import connect_warehouse
    from der_assets_tests.dispatch_intake._running import import_demo_registry, running_intake

    engine = connect_warehouse(f"sqlite:///{tmp_path / 'warehouse.sqlite'}")
    import_demo_registry(engine, tmp_path)
    secrets = demo_secrets()
    with running_intake(engine, tmp_path, demo=True, hmac_secret=secrets["hmac_secret"],
                        bearer_token=secrets["bearer_token"]) as (_service, ready):
        assert ready["credentials"]["bearer_token"] == secrets["bearer_token"]
        assert _mode(tmp_path / "intake_ready.json") == 0o600
    assert _mode(tmp_path / "intake_ready.json") == 0o600  # rewritten on stop, still private
    engine.dispose()


@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
def test_the_demo_vtn_ready_file_is_private(tmp_path):
    pytest.importorskip("openleadr")
    from der_assets_tests.dispatch_intake._running import running_vtn

    with running_vtn(tmp_path) as ready:
        assert any("token" in key for key in ready)  # what makes it secret
        assert _mode(tmp_path / "vtn_ready.json") == 0o600
