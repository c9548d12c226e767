"""Dispatch table: (source, endpoint) -> pure parser from payload bytes to canonical rows.

Verification status per endpoint (see each vendor module's docstring for detail):

FIXTURE-VERIFIED (tested against real payloads copied into der_assets_tests/fixtures/):
  enphase: production.json, ivp_meters_readings      (pyenphase gateway captures, MIT)
  sonnen: status, powermeter                         (MarkusBiggus mock dicts modelled on a real unit, MIT)
  fronius: GetArchiveData, GetPowerFlowRealtimeData  (akleber real captures + pyfronius, MIT)
  greenbutton: espi                                  (Green Button Alliance samples, Apache-2.0)
DOC-BASED (built from reference/vendor-formats.md; tested on payloads written to that shape):
  solaredge: energyDetails, powerDetails, storageData, meters, equipmentData
  enphase: production_micro, production_meter, consumption_meter, battery (cloud v4)
  sma: measurements
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple
from zoneinfo import ZoneInfo

import pandas as pd
import pandera.errors

from ..errors import ParseError
from ..schema import CANONICAL_COLUMNS, passes_fast, validate
from . import enphase, fronius, greenbutton, sma, solaredge, sonnen, sunspec, utility_csv
from ._common import Ctx

Parser = Callable[[bytes, Ctx], pd.DataFrame]

#: vendor module per --source, and the canonical `source` value its rows carry
VENDORS = {
    "solaredge": (solaredge, "solaredge"),
    "enphase": (enphase, "enphase"),
    "sma": (sma, "sma"),
    "sonnen": (sonnen, "sonnen"),
    "fronius": (fronius, "fronius"),
    "greenbutton": (greenbutton, "ami"),
    "utility_csv": (utility_csv, "ami"),  # endpoint = the mapping (telemetry/data/utility_csv/<name>.toml)
    "sunspec": (sunspec, "sunspec"),
    "generac": (sunspec, "generac"),  # PWRcell over SunSpec Modbus; rows keep the registry's source
}

PARSERS: Dict[Tuple[str, str], Parser] = {
    (src, ep): fn for src, (mod, _canon) in VENDORS.items() for ep, fn in mod.ENDPOINTS.items()
}

_WRAPPED = (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError, RecursionError)


def supported_endpoints() -> Dict[str, list]:
    out: Dict[str, list] = {}
    for src, ep in PARSERS:
        out.setdefault(src, []).append(ep)
    return out


def _lookup(source: str, endpoint: str) -> Tuple[str, Parser]:
    src = source.strip().lower()
    if src not in VENDORS:
        raise ParseError(f"unknown source {source!r}; known: {sorted(VENDORS)}", source=source,
                         endpoint=endpoint, site_id=None)
    ep = endpoint.strip()
    for suffix in (".fcgi", ".cgi"):
        if ep.endswith(suffix):
            ep = ep[: -len(suffix)]
    for (s, e), fn in PARSERS.items():
        if s == src and e.lower() == ep.lower():
            return e, fn
    raise ParseError(
        f"unknown endpoint {endpoint!r}; known for {src}: {sorted(e for s, e in PARSERS if s == src)}",
        source=source, endpoint=endpoint, site_id=None,
    )


def _flag_physics(df: pd.DataFrame) -> pd.DataFrame:
    """Keep implausible values but flag them suspect (pv/load < 0, soc outside 0-100)."""
    v = df["value"]
    bad = (df["channel"].isin(["pv_kwh", "load_kwh"]) & (v < 0)) | (
        (df["channel"] == "soc_pct") & ((v < 0) | (v > 100))
    )
    df.loc[bad, "quality"] = "suspect"
    return df


def parse_payload(
    source: str,
    endpoint: str,
    payload: bytes,
    *,
    site_id: str,
    device_id: Optional[str] = None,
    tz: Optional[str] = None,
    received_at,
    nameplate_kw: Optional[float] = None,
    notes: Optional[List[str]] = None,
) -> pd.DataFrame:
    """Parse one raw vendor payload into canonical interval rows (DESIGN.md column order).

    source: solaredge | enphase | sma | sonnen | fronius | greenbutton (rows of the latter
    carry source='ami'). endpoint: the vendor's own name (see `supported_endpoints()`).
    tz: IANA site zone, required for vendors that send local times without an offset.
    received_at: tz-aware time the payload reached us. nameplate_kw: the PV inverter's rated
    AC kW from the registry, so PV energy above what it can make is flagged `suspect` even in
    a payload too short for the relative spike check. notes: a list that receives what the
    parser read around, dropped or assumed (an unpaired meter, a payload with no whole
    interval), so a caller can say it. Raises ParseError naming source, site, endpoint and
    window for anything it will not turn into rows.
    """
    ep_name, fn = _lookup(source, endpoint)
    ts = pd.Timestamp(received_at)
    if ts.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if tz is not None:
        ZoneInfo(tz)  # unknown zone names fail here, loudly
    src = source.strip().lower()
    ctx = Ctx(
        source=VENDORS[src][1], endpoint=ep_name, site_id=str(site_id),
        received_at=ts.tz_convert("UTC"), device_id=device_id, tz=tz,
        nameplate_kw=None if nameplate_kw is None else float(nameplate_kw),
    )
    try:
        df = fn(payload, ctx)
        if not len(df):
            ctx.note(_nothing_said(ctx))
        if notes is not None:
            notes.extend(ctx.notes)
        df = _flag_physics(df)
        df = df.sort_values(["interval_start", "channel", "device_id"], kind="stable").reset_index(drop=True)
        df = df[CANONICAL_COLUMNS]
        return df if passes_fast(df) else validate(df)
    except ParseError as exc:
        exc.source = src
        raise
    except pandera.errors.SchemaErrors as exc:
        checks = sorted(set(exc.failure_cases["check"].astype(str)))[:5]
        raise ParseError(f"rows fail the canonical schema checks {checks}", source=src, endpoint=ep_name,
                         site_id=str(site_id), window=ctx.window) from exc
    except _WRAPPED as exc:
        what = f"missing required field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise ParseError(what, source=src, endpoint=ep_name, site_id=str(site_id), window=ctx.window) from exc


def _nothing_said(ctx: Ctx) -> str:
    """Why a payload gave no rows, in words: a counter needs two readings around a whole interval."""
    if ctx.window is None:
        return "no interval rows: the payload holds no readings"
    lo, hi = (pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ") for t in ctx.window)
    return (f"no interval rows: the payload's readings ({lo} to {hi}) bracket no whole interval, "
            "so nothing was measured")


def to_csv(df: pd.DataFrame) -> str:
    """Canonical rows as CSV: DESIGN.md column order, UTC ISO-8601 'Z' timestamps, empty = null."""
    out = df[CANONICAL_COLUMNS].copy()
    for col in ("interval_start", "received_at"):
        out[col] = out[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out.to_csv(index=False, lineterminator="\n", float_format="%.10g")


def normalize_to_csv(
    source: str,
    endpoint: str,
    payload: bytes,
    *,
    site_id: str = "unknown",
    device_id: Optional[str] = None,
    tz: Optional[str] = None,
    received_at=None,
    nameplate_kw: Optional[float] = None,
    notes: Optional[List[str]] = None,
) -> str:
    """`der normalize`: parse_payload, then CSV. received_at defaults to now (UTC); `notes`
    receives what the command should say on stderr."""
    if received_at is None:
        received_at = pd.Timestamp.now(tz="UTC").floor("s")
    df = parse_payload(source, endpoint, payload, site_id=site_id, device_id=device_id, tz=tz, received_at=received_at,
                       nameplate_kw=nameplate_kw, notes=notes)
    return to_csv(df)
