"""Shared helpers: a demo-fleet hub on a manual clock, fixture access, and JSON shape comparison."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd

from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def make_hub(start: str, advance_h: float = 0.0) -> tuple[TwinHub, ManualClock]:
    clock = ManualClock(pd.Timestamp(start))
    hub = TwinHub(demo_fleet(40), start=pd.Timestamp(start), clock=clock)
    if advance_h:
        clock.advance(hours=advance_h)
    return hub, clock


def fixture_json(*parts: str):
    return json.loads(FIXTURES.joinpath(*parts).read_bytes())


def sonnen_mock(filename: str, func: str):
    """The dict a MarkusBiggus mock function returns, read with ast (never executed)."""
    src = FIXTURES.joinpath("sonnen_local_api", "MarkusBiggus_sonnen_api_v2", filename).read_text()
    for node in ast.parse(src).body:
        if isinstance(node, ast.FunctionDef) and node.name == func:
            return ast.literal_eval(next(n for n in node.body if isinstance(n, ast.Return)).value)
    raise KeyError(func)


def json_kind(v) -> str:
    """JSON type of a value: null, bool, number, string, array, object."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "array" if isinstance(v, list) else "object"


def shape_diff(ours, real, path: str = "$", *, exact_types: bool = True) -> list[str]:
    """Where `ours` differs from `real` in keys, nesting or value types (Python types if exact_types)."""
    if isinstance(real, dict):
        if not isinstance(ours, dict):
            return [f"{path}: object expected, got {type(ours).__name__}"]
        out = [f"{path}: missing key {k!r}" for k in real if k not in ours]
        out += [f"{path}: extra key {k!r}" for k in ours if k not in real]
        for k in real:
            if k in ours:
                out += shape_diff(ours[k], real[k], f"{path}.{k}", exact_types=exact_types)
        return out
    if isinstance(real, list):
        if not isinstance(ours, list):
            return [f"{path}: array expected"]
        return [d for i, (o, r) in enumerate(zip(ours, real)) for d in shape_diff(o, r, f"{path}[{i}]",
                                                                               exact_types=exact_types)]
    got, want = (type(ours).__name__, type(real).__name__) if exact_types else (json_kind(ours), json_kind(real))
    return [] if got == want else [f"{path}: {want} expected, got {got} ({ours!r})"]


def fifteen_min(frame: pd.DataFrame, column: str) -> pd.Series:
    """Twin 5-min energies summed per quarter-hour (only complete quarter-hours)."""
    q = frame.set_index("interval_start")[column].groupby(lambda t: t.floor("900s"))
    sums, counts = q.sum(), q.size()
    return sums[counts == 3]
