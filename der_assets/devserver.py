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
    log = open(home / "twin.log", "a")
    # same process group as `der dev`: a signal to the group stops the twin too
    return subprocess.Popen([_venv_bin("der"), "simulate", "--ready-file", str(ready)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def run_dagster_dev(env: dict[str, str], *, host: str, port: int, twin: bool = True) -> int:
    """Run the twin and `dagster dev` (webserver and daemon) in the foreground until interrupted."""
    dagster_home = Path(env["DAGSTER_HOME"])
    env = {**env, config.TWIN_READY_ENV: env.get(config.TWIN_READY_ENV) or str(config.data_home() / "twin_ready.json")}
    # SIGTERM ends `der dev` through the finally below, so the twin never outlives the UI
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    twin_proc = start_twin(env) if twin else None
    cmd = [_venv_bin("dagster"), "dev", "-w", str(dagster_home / "workspace.yaml"), "-h", host, "-p", str(port)]
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        if twin_proc is not None and twin_proc.poll() is None:
            twin_proc.terminate()
            try:
                twin_proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                twin_proc.kill()
