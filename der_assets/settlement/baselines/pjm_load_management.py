"""PJM Load Management (capacity) compliance: Firm Service Level and Guaranteed Load Drop.

FSL (VERIFIED text, PJM via lawinsider): "the current Delivery Year peak load contribution
('PLC') minus the metered load ('Load') multiplied by the loss factor ('LF')". The grammar allows
PLC - Load x LF or (PLC - Load) x LF; parameter `reading` names the one used, default the first
(the reading of shared/reference/iso-rules-verification.md §2). The frame's baseline_kw is the
PLC and reduction_kw the compliance reduction, so reduction != baseline - load here.

GLD: a reduction against a customer baseline, counted for capacity only while metered load is
below the PLC (VERIFIED, FERC 135 FERC ¶61,212). The formula min((CBL - Load) x LF, PLC - Load x LF)
is UNVERIFIED; so is the export floor (believed: a battery driving net load below zero is
credited as if load were zero).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace

import numpy as np
import pandas as pd

from der_assets.errors import UserError, ValidationFailed
from der_assets.settlement.baselines import pjm_economic, pjm_match_day, pjm_same_day
from der_assets.settlement.baselines.common import Computed, EventGrid, event_load, v
from der_assets.settlement.baselines.matrix import MeterMatrix
from der_assets.settlement.baselines.parameters import Param, sub_params
from der_assets.settlement.events import Event

READINGS = ("plc_minus_load_times_lf", "plc_minus_load_all_times_lf")
CBL_MODULES = {"pjm_high_4_of_5": pjm_economic, "pjm_same_day_3_2": pjm_same_day, "pjm_match_day": pjm_match_day}


def plc_per_meter(mx: MeterMatrix, event: Event, plc_kw_by_meter, method: str) -> np.ndarray:
    """PLC (kW) per matrix meter: the mapping where given, else event.plc_kw; NaN where neither."""
    if plc_kw_by_meter is not None:
        plc = pd.Series(plc_kw_by_meter, dtype=float).reindex(mx.meter_ids).to_numpy(dtype=float)
        if event.plc_kw is not None:
            plc = np.where(np.isnan(plc), event.plc_kw, plc)
        if np.isnan(plc).any():
            lacking = ", ".join(map(str, mx.meter_ids[np.isnan(plc)][:5]))
            raise ValidationFailed(f"event {event.event_id}: key 'plc_kw': missing, and no PLC for meter(s) {lacking}; "
                                   f"{method} needs each customer's peak load contribution (kW)", [])
        return plc
    if event.plc_kw is None:
        raise ValidationFailed(f"event {event.event_id}: key 'plc_kw': missing; {method} needs the customer's peak "
                               "load contribution (kW)", [])
    return np.full(len(mx.meter_ids), float(event.plc_kw))


def loss_factor(event: Event, method: str) -> float:
    if event.loss_factor is None:
        raise ValidationFailed(f"event {event.event_id}: key 'loss_factor': missing; {method} needs the EDC's loss "
                               "factor", [])
    return float(event.loss_factor)


def floored(load: np.ndarray, floor_kw) -> np.ndarray:
    return load if floor_kw is None else np.maximum(load, floor_kw)  # NaN stays NaN


def _history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    return event.start - pd.Timedelta(hours=1), event.end + pd.Timedelta(hours=1)


def _fsl(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, *, plc_kw_by_meter=None,
         **_) -> Computed:
    """PLC (kW) as the baseline; reduction = PLC - Load x LF (or (PLC - Load) x LF)."""
    plc = plc_per_meter(mx, event, plc_kw_by_meter, "pjm_fsl")[:, None]
    lf = loss_factor(event, "pjm_fsl")
    load = event_load(mx, grid)
    counted = floored(load, v(p, "load_floor_kw"))
    reading = v(p, "reading")
    if reading == "plc_minus_load_times_lf":
        reduction = plc - counted * lf
    elif reading == "plc_minus_load_all_times_lf":
        reduction = (plc - counted) * lf
    else:
        raise ValueError(f"pjm_fsl.reading: unknown {reading!r} ({' | '.join(READINGS)})")
    return Computed(np.broadcast_to(plc, load.shape).copy(), load, reduction)


def _gld_uses(p: Mapping[str, Param]) -> tuple[str, ...]:
    method = v(p, "cbl_method")
    if method not in CBL_MODULES:
        raise UserError(f"pjm_gld.cbl_method: {method!r} is not one of {', '.join(CBL_MODULES)}")
    return (method,)


def _gld_history(event: Event, p: Mapping[str, Param]) -> tuple[pd.Timestamp, pd.Timestamp]:
    method = v(p, "cbl_method")
    return CBL_MODULES[method].history(event, sub_params(p, method))


def _gld(mx: MeterMatrix, event: Event, p: Mapping[str, Param], grid: EventGrid, *, plc_kw_by_meter=None,
         **_) -> Computed:
    """CBL (kW) from `cbl_method`; reduction = (CBL - Load) x LF, capped at PLC - Load x LF."""
    method = v(p, "cbl_method")
    inner = CBL_MODULES[method].compute(mx, event, sub_params(p, method), grid)
    lf = loss_factor(event, "pjm_gld")
    counted = floored(inner.load_kw, v(p, "load_floor_kw"))
    reduction = (inner.baseline_kw - counted) * lf
    if v(p, "plc_cap"):
        plc = plc_per_meter(mx, event, plc_kw_by_meter, "pjm_gld")[:, None]
        reduction = np.minimum(reduction, plc - counted * lf)  # NaN stays NaN
    return Computed(inner.baseline_kw, inner.load_kw, reduction, inner.notes)


fsl = SimpleNamespace(__doc__=__doc__, history=_history, compute=_fsl)
gld = SimpleNamespace(__doc__=__doc__, history=_gld_history, compute=_gld, uses_methods=_gld_uses)
