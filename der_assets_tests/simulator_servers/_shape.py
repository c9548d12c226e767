"""Structure comparison for conformance tests: same keys, nesting and JSON value kinds as a real payload."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from der_assets.registry.demo import demo_fleet
from der_assets.simulator.hub import ManualClock, TwinHub

START = pd.Timestamp("2026-07-15T00:00Z")


def make_hub(start: pd.Timestamp = START, hours: float = 20.0, **kwargs) -> tuple[TwinHub, ManualClock]:
    """The 40-site demo fleet with a ManualClock moved `hours` past `start`."""
    clock = ManualClock(start)
    hub = TwinHub(demo_fleet(40), start=start, clock=clock, **kwargs)
    clock.advance(hours=hours)
    return hub, clock


def kind(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "str"
    if v is None:
        return "null"
    return "list" if isinstance(v, list) else "dict"


def assert_same_shape(ours, real, path: str = "$", *, match: Callable[[str, dict, list], dict] | None = None,
                      int_keys: frozenset = frozenset()) -> None:
    """`ours` has exactly the keys, nesting and value kinds of `real`; list items are compared with
    the real item `match(path, item, real_list)` picks (default: the first). Keys in int_keys must be
    JSON integers wherever the real payload has an integer there."""
    assert kind(ours) == kind(real), f"{path}: {kind(ours)} where the real payload has {kind(real)}"
    if isinstance(real, dict):
        assert set(ours) == set(real), f"{path}: extra {set(ours) - set(real)}, missing {set(real) - set(ours)}"
        for k in real:
            if k in int_keys and isinstance(real[k], int) and not isinstance(real[k], bool):
                assert isinstance(ours[k], int), f"{path}.{k}: {ours[k]!r} should be an integer"
            assert_same_shape(ours[k], real[k], f"{path}.{k}", match=match, int_keys=int_keys)
    elif isinstance(real, list) and real:
        assert ours, f"{path}: empty list where the real payload has items"
        for i, item in enumerate(ours):
            ref = match(path, item, real) if match else real[0]
            assert_same_shape(item, ref, f"{path}[{i}]", match=match, int_keys=int_keys)
