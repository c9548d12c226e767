"""ISO customer baselines over many meters at once: `compute_baseline(method, meter, event)`.

Each method is one small module with `compute(matrix, event, params, grid)` and `history(event,
params)` (the span of meter data it reads). Rule numbers live in params/baselines.csv, each with
its source and tag; a result lists every unverified one it used in `warnings`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType

import numpy as np
import pandas as pd

from der_assets.errors import UserError
from der_assets.settlement.baselines import (isone, nyiso, pjm_economic, pjm_load_management, pjm_match_day,
                                             pjm_same_day)
from der_assets.settlement.baselines.common import event_grid
from der_assets.settlement.baselines.matrix import MeterMatrix, prepare_meter
from der_assets.settlement.baselines.parameters import Param, UsedParams, resolve, warnings_for
from der_assets.settlement.events import Event

FRAME_COLUMNS = ("meter_id", "interval_start", "interval_s", "baseline_kw", "load_kw", "reduction_kw")

_MODULES: dict[str, ModuleType] = {
    "pjm_high_4_of_5": pjm_economic,
    "pjm_same_day_3_2": pjm_same_day,
    "pjm_match_day": pjm_match_day,
    "pjm_fsl": pjm_load_management.fsl,
    "pjm_gld": pjm_load_management.gld,
    "nyiso_average_day": nyiso.average_day,
    "nyiso_acl": nyiso.acl,
    "isone_mean_10_of_10": isone,
}


@dataclasses.dataclass(frozen=True)
class BaselineResult:
    """frame: one row per meter and event interval (FRAME_COLUMNS, kW; NaN where inputs are
    missing, never zero). warnings: one line per unverified parameter used and per caveat.
    params: every parameter value used, with tag and source."""

    method: str
    event_id: str
    frame: pd.DataFrame
    warnings: list[str]
    params: dict[str, Param]


def _method_fn(name: str) -> Callable[..., BaselineResult]:
    def run(meter, event, params=None, **kw):
        return compute_baseline(name, meter, event, params, **kw)

    run.__name__ = name
    run.__doc__ = (_MODULES[name].__doc__ or "").strip()
    return run


METHODS: dict[str, Callable[..., BaselineResult]] = {name: _method_fn(name) for name in _MODULES}


def method_params(method: str, overrides: Mapping | None = None, *, where: str = "PARAMS.json") -> dict[str, Param]:
    """The parameters `method` uses (a GLD run also uses its CBL method's), overrides applied."""
    if method not in _MODULES:
        raise UserError(f"unknown baseline method {method!r} (expected one of {', '.join(_MODULES)})")
    extra = getattr(_MODULES[method], "uses_methods", lambda p: ())(resolve(method, overrides, where=where))
    return resolve(method, overrides, where=where, with_methods=tuple(extra))


def history_span(method: str, event: Event, params: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC span [start, end) of meter rows `method` reads for `event`."""
    return _MODULES[method].history(event, params)


def compute_baseline(method: str, meter: pd.DataFrame | MeterMatrix, event: Event, params: Mapping | None = None,
                     *, plc_kw_by_meter: Mapping[str, float] | pd.Series | None = None,
                     params_source: str = "PARAMS.json") -> BaselineResult:
    """Baseline, metered load and reduction (kW) per meter and event interval by `method`.

    meter: METER rows (meter_id, interval_start UTC, interval_s, grid_kwh) or a MeterMatrix from
    prepare_meter (build it once for many events). params: PARAMS.json-style overrides.
    plc_kw_by_meter: per-meter PLC for pjm_fsl/pjm_gld (else event.plc_kw for every meter).
    params_source: where the overrides came from (their `source` in result.params).
    """
    p = UsedParams(method_params(method, params, where=params_source))
    module = _MODULES[method]
    if isinstance(meter, MeterMatrix):
        mx = meter
    else:
        start, end = module.history(event, p)
        mx = prepare_meter(meter, start, end)
    grid = event_grid(mx, event, p["interval_s"].value)
    computed = module.compute(mx, event, p, grid, plc_kw_by_meter=plc_kw_by_meter)
    reduction = computed.reduction_kw if computed.reduction_kw is not None else computed.baseline_kw - computed.load_kw
    n_m, n_b = computed.baseline_kw.shape
    frame = pd.DataFrame({
        "meter_id": np.repeat(mx.meter_ids, n_b),
        "interval_start": pd.to_datetime(np.tile(grid.bin_start_ns, n_m)).tz_localize("UTC"),
        "interval_s": np.full(n_m * n_b, grid.bin_s, dtype=np.int64),
        "baseline_kw": computed.baseline_kw.reshape(-1),
        "load_kw": computed.load_kw.reshape(-1),
        "reduction_kw": reduction.reshape(-1),
    })
    warnings = warnings_for(p) + list(grid.notes) + list(computed.notes)
    method_iso = {"pjm": "PJM", "nyiso": "NYISO", "isone": "ISO-NE"}[method.split("_", 1)[0]]
    if event.iso != method_iso:
        warnings.append(f"{method} is a {method_iso} method but event {event.event_id} is {event.iso}")
    return BaselineResult(method, event.event_id, frame, warnings, p.used_params())


def compute_baselines(meter: pd.DataFrame | MeterMatrix, events: Sequence[Event], params: Mapping | None = None,
                      *, method: str | None = None, plc_kw_by_meter=None) -> pd.DataFrame:
    """Many events over one meter set, the matrix built once: frame with event_id and method first.

    Each event's own `method` is used unless `method` is given.
    """
    if not isinstance(meter, MeterMatrix):
        spans = [history_span(method or e.method, e, method_params(method or e.method, params)) for e in events]
        meter = prepare_meter(meter, min(s for s, _ in spans), max(e for _, e in spans))
    frames = []
    for e in events:
        r = compute_baseline(method or e.method, meter, e, params, plc_kw_by_meter=plc_kw_by_meter)
        frames.append(r.frame.assign(event_id=e.event_id, method=r.method))
    if not frames:
        return pd.DataFrame(columns=["event_id", "method", *FRAME_COLUMNS])
    out = pd.concat(frames, ignore_index=True)
    return out[["event_id", "method", *FRAME_COLUMNS]]


__all__ = ["FRAME_COLUMNS", "METHODS", "BaselineResult", "MeterMatrix", "compute_baseline", "compute_baselines",
           "history_span", "method_params", "prepare_meter"]
