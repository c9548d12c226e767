"""`der` starts light: no heavy library is imported to show help or to name a missing file.

Structural, not timed: what a command imports is what makes it slow, and that does not depend
on the machine (benchmarks/cli_startup.py times it).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI_DIR = Path(__file__).resolve().parents[2] / "der_assets" / "cli"
HEAVY = ("pandas", "numpy", "sqlalchemy", "dagster", "scipy", "pvlib", "matplotlib", "pandera", "great_expectations",
         "pyarrow", "httpx", "starlette", "uvicorn", "openleadr", "pymodbus", "rich", "openpyxl")
# The project modules `der` may load before a command runs: the cli package and what it may import.
LIGHT_PROJECT = {"der_assets", "der_assets.config", "der_assets.errors", "der_assets.inputs"}
ALLOWED_TOP_LEVEL = {"click", "der_assets.cli", "der_assets.cli.base", "der_assets.config", "der_assets.errors"}

PROBE = """
import json, sys
from der_assets.cli import main
try:
    main(json.loads(sys.argv[1]))
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _run(args: list[str], cwd: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules if m.split(".")[0] in HEAVY})


def test_import_der_assets_cli_loads_no_heavy_module(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import json, sys, der_assets.cli; print(json.dumps(sorted(sys.modules)))"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    modules = json.loads(done.stdout)
    assert "der_assets.cli.base" in modules  # the probe did import the package
    assert _heavy(modules) == []
    project = {m for m in modules if m.startswith("der_assets") and not m.startswith("der_assets.cli")}
    assert project <= LIGHT_PROJECT, sorted(project - LIGHT_PROJECT)


@pytest.mark.parametrize("args, code", [
    (["--help"], 0),
    (["capacity", "estimate", "--help"], 0),
    (["capacity", "estimate", "--bogus"], 2),
    (["capacity", "estimate", "--registry", "nofile.csv", "--telemetry", "t.csv", "--iso", "pjm",
      "--delivery-year", "2027/2028", "--class", "demand_resource"], 2),
    (["capacity", "estimate", "--registry", "r.csv", "--telemetry", "t.csv", "--iso", "pjm",
      "--delivery-year", "2027/2028", "--class", "demand_resource", "--months", "13"], 2),
    (["settle", "--iso", "pjm", "--statement", "nofile.csv", "--meter", "m.csv", "--events", "e.json",
      "--registry", "r.csv"], 2),
    (["registry", "import", "nofile.csv"], 2),
    (["baseline", "--method", "pjm_same_day_3_2", "--meter", "nofile.csv", "--event", "e.json"], 2),
    (["normalize", "--source", "solaredge", "--endpoint", "energyDetails", "nofile.json"], 2),
    (["dispatch", "plan", "--fleet", "nofile.csv", "--forecast", "f.csv", "--instruction", "i.json"], 2),
    (["simulate", "--registry", "nofile.csv"], 2),
])
def test_help_and_error_paths_load_no_heavy_module(tmp_path, args, code):
    result = _run(args, tmp_path)
    assert result["code"] == code
    assert _heavy(result["modules"]) == []


def _top_level_imports(tree: ast.Module) -> list[tuple[int, str]]:
    """Module names imported outside any function or class body (incl. under if/try at top level)."""
    found = []
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, f"<relative import, level {node.level}> {node.module}"))
            elif node.module == "der_assets":  # from der_assets import config
                found += [(node.lineno, f"der_assets.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
        else:
            stack += [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
    return found


def _allowed(name: str) -> bool:
    return name in ALLOWED_TOP_LEVEL or name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


@pytest.mark.parametrize("path", sorted(p for p in CLI_DIR.glob("*.py") if p.name != "base.py"), ids=lambda p: p.name)
def test_cli_module_imports_only_stdlib_click_and_base_at_top_level(path):
    bad = [f"{path.name}:{line}: {name}" for line, name in _top_level_imports(ast.parse(path.read_text()))
           if not _allowed(name)]
    assert bad == []


def test_base_imports_only_light_modules():
    names = {name for _, name in _top_level_imports(ast.parse((CLI_DIR / "base.py").read_text()))}
    assert {n for n in names if not _allowed(n)} <= {"der_assets.inputs"}


WALK = """
import json, sys
import click
from der_assets.cli import cli, main

def paths(group, prefix):
    for name, command in sorted(group.commands.items()):
        yield prefix + [name]
        if isinstance(command, click.Group):
            yield from paths(command, prefix + [name])

seen = []
for path in paths(cli, []):
    try:
        main(path + ["--help"])
    except SystemExit as exc:
        assert exc.code == 0, (path, exc.code)
    seen.append(" ".join(path))
print(json.dumps({"commands": seen, "modules": sorted(sys.modules)}))
"""


def test_every_commands_help_loads_no_heavy_module(tmp_path):
    """Every command and group, the ones added later included, shows its help without the domain code."""
    done = subprocess.run([sys.executable, "-c", WALK], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"settle", "capacity estimate", "registry import", "demo fleet"} <= set(result["commands"])
    assert _heavy(result["modules"]) == []
