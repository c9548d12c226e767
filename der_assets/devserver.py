"""What `make dev` runs: a data home with the demo fleet, then `dagster dev`."""

from __future__ import annotations

import os
import shutil
import subprocess
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


def run_dagster_dev(env: dict[str, str], *, host: str, port: int) -> int:
    """Run `dagster dev` (webserver and daemon) in the foreground until interrupted."""
    dagster_home = Path(env["DAGSTER_HOME"])
    cmd = [str(Path(shutil.which("dagster", path=str(Path(os.sys.executable).parent)) or "dagster")),
           "dev", "-w", str(dagster_home / "workspace.yaml"), "-h", host, "-p", str(port)]
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
