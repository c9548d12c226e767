"""What `make dev` runs: a data home with the demo fleet, then `dagster dev`."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from der_assets import config

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def instance_yaml_source() -> Path:
    """The instance template: PostgreSQL when DER_DAGSTER_PG_URL is set, else SQLite."""
    name = "dagster.postgres.yaml" if os.environ.get(config.DAGSTER_PG_URL_ENV) else "dagster.yaml"
    return PROJECT_ROOT / name


def prepare(*, n_sites: int = 200, echo: Callable[[str], None] = print) -> dict[str, str]:
    """Create the data home, the Dagster home and the warehouse, and load the demo fleet.

    Idempotent: a second run re-imports the same demo file, which changes nothing.
    """
    from der_assets.registry.demo import demo_fleet
    from der_assets.registry.files import write_registry_file
    from der_assets.registry.service import import_registry_file
    from der_assets.warehouse import connect_warehouse
    from der_assets.warehouse.engine import normalize_url

    home = config.data_home()
    dagster_home = Path(os.environ.get("DAGSTER_HOME") or home / "dagster")
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(instance_yaml_source(), dagster_home / "dagster.yaml")
    (dagster_home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: der_assets.definitions\n      location_name: der_assets\n"
    )
    url = config.warehouse_url()
    engine = connect_warehouse(url)
    fleet_file = home / "demo_fleet.csv"
    write_registry_file(demo_fleet(n_sites), fleet_file)
    summary = import_registry_file(engine, fleet_file, changed_by="der dev")
    echo(f"demo fleet: {n_sites} sites, {summary.versions_created} new registry versions in "
         f"{engine.url.render_as_string(hide_password=True)}")
    env = dict(os.environ)
    env[config.DER_HOME_ENV] = str(home)
    env["DAGSTER_HOME"] = str(dagster_home)
    env.setdefault(config.WAREHOUSE_URL_ENV, url)
    if env.get(config.DAGSTER_PG_URL_ENV):
        env[config.DAGSTER_PG_URL_ENV] = normalize_url(env[config.DAGSTER_PG_URL_ENV])
    return env


def _venv_bin(name: str) -> str:
    return str(Path(shutil.which(name, path=str(Path(sys.executable).parent)) or name))


def start_twin(env: dict[str, str]) -> subprocess.Popen:
    """`der simulate` in real time beside the UI, so a new user watches pulls from a live fleet."""
    home = Path(env[config.DER_HOME_ENV])
    ready = Path(env[config.TWIN_READY_ENV])
    ready.unlink(missing_ok=True)
    env = {"DER_TWIN_UTILITY_CSV_SHARE": "0.25", **env}  # a quarter of the meters send utility CSV, not ESPI
    log = open(home / "twin.log", "a")
    # same process group as `der dev`: a signal to the group stops the twin too
    return subprocess.Popen([_venv_bin("der"), "simulate", "--ready-file", str(ready)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


DEMO_INTAKE_PORT = 8787  # the intake webhook's documented port (README, Intake)
DEMO_VTN_PORT = 8788


def _loopback_port(preferred: int) -> int:
    """``preferred`` when it is free on 127.0.0.1, else a free one: a second `der dev` (or a test
    run beside the first) still gets an intake, and says where it is."""
    import socket

    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free loopback port")


def start_vtn(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """The demo fleet's OpenADR VTN (`der demo vtn`), for when no external VTN is configured."""
    from der_assets.simulator.vtn import OPENADR_PATH

    home = Path(env[config.DER_HOME_ENV])
    port = _loopback_port(DEMO_VTN_PORT)
    (home / "vtn_ready.json").unlink(missing_ok=True)
    log = open(home / "vtn.log", "a")
    proc = subprocess.Popen([_venv_bin("der"), "demo", "vtn", "--port", str(port),
                             "--ready-file", str(home / "vtn_ready.json")],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}{OPENADR_PATH}"


def start_intake(env: dict[str, str], echo: Callable[[str], None]) -> list[subprocess.Popen]:
    """`der intake` beside the UI (webhook, inbox watcher, VEN), plus the demo VTN its VEN talks to
    when DER_OPENADR_VTN_URL names no external one. Demo webhook secrets unless configured."""
    from der_assets.dispatch.intake import service as intake

    home = Path(env[config.DER_HOME_ENV])
    procs = []
    env = dict(env)
    vtn_note = f"external VTN {env.get(intake.VTN_URL_ENV)}"
    if not env.get(intake.VTN_URL_ENV):
        vtn, env[intake.VTN_URL_ENV] = start_vtn(env)
        procs.append(vtn)
        _wait_for(home / "vtn_ready.json", vtn, timeout_s=30)  # so the VEN's first registration finds it
        vtn_note = (f"demo VTN {env[intake.VTN_URL_ENV]} (log {home / 'vtn.log'}); "
                    f"issue an event with `der demo event --in 10m --kw 500`")
    configured = env.get(intake.PORT_ENV, "").strip()
    if configured and not configured.isdigit():
        from der_assets.errors import UserError

        raise UserError(f"{intake.PORT_ENV}={configured!r} is not a port number")
    port = int(configured) if configured else _loopback_port(DEMO_INTAKE_PORT)
    ready = Path(env.get(intake.READY_ENV) or home / "intake_ready.json")
    ready.unlink(missing_ok=True)
    log = open(home / "intake.log", "a")
    procs.append(subprocess.Popen([_venv_bin("der"), "intake", "--demo", "--port", str(port), "--ready-file", str(ready)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT))
    secrets = intake.demo_secrets()
    token = env.get(intake.BEARER_ENV) or (None if env.get(intake.HMAC_ENV) else secrets["bearer_token"])
    hmac_secret = env.get(intake.HMAC_ENV) or (None if env.get(intake.BEARER_ENV) else secrets["hmac_secret"])
    inbox = env.get(intake.INBOX_ENV) or home / "dispatch_inbox"
    echo(f"intake: webhook http://127.0.0.1:{port}/instructions"
         + (f" (Authorization: Bearer {token}" if token else " (")
         + (f"; or X-DER-Timestamp: <Unix s> and X-DER-Signature: sha256=HMAC-SHA256 of "
            f"'<timestamp>.<body>' with secret {hmac_secret})" if hmac_secret else ")"))
    echo(f"intake: inbox {inbox}; {vtn_note}")
    echo(f"intake: health lines in {ready}, log {home / 'intake.log'}")
    return procs


def _wait_for(ready: Path, proc: subprocess.Popen, *, timeout_s: float) -> bool:
    """Until ``proc`` has written its ready file (False if it died or took too long; the VEN retries)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_dagster_dev(env: dict[str, str], *, host: str, port: int, twin: bool = True, intake: bool = True,
                    echo: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> int:
    """Run the twin, the intake and `dagster dev` (webserver and daemon) in the foreground until interrupted."""
    dagster_home = Path(env["DAGSTER_HOME"])
    env = {**env, config.TWIN_READY_ENV: env.get(config.TWIN_READY_ENV) or str(config.data_home() / "twin_ready.json")}
    # alerts link to the UI this command serves, not to the default port
    env.setdefault("DER_UI_URL", f"http://{host}:{port}")
    # SIGTERM ends `der dev` through the finally below, so the twin and the intake never outlive the UI
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    procs = [start_twin(env)] if twin else []
    if twin:  # a week of the twin's past materialized once the UI is up (der backfill; DER_DEV_BACKFILL_DAYS=0: off)
        from der_assets.cli.backfill import start_dev_backfill
        procs += start_dev_backfill(env, host=host, port=port)
    cmd = [_venv_bin("dagster"), "dev", "-w", str(dagster_home / "workspace.yaml"), "-h", host, "-p", str(port)]
    try:
        if intake:
            procs += start_intake(env, echo)
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in reversed(procs):
            _stop(proc)
