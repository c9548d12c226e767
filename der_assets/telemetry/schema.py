"""The canonical interval table every parser must produce (DESIGN.md, "Canonical interval telemetry").

Checked with pandera so a parser bug cannot leak vendor quirks downstream: wrong channel
names, naive timestamps, zeros standing in for missing values, or signs that break the
schema's physics (pv and load are never negative unless the row is flagged suspect).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandas.api.types import is_object_dtype
from pandas._libs import lib
from pandera.typing import Series

CANONICAL_COLUMNS = [
    "site_id",
    "device_id",
    "source",
    "channel",
    "interval_start",
    "interval_s",
    "value",
    "quality",
    "received_at",
    "revision",
]
SOURCES = ["solaredge", "enphase", "sma", "generac", "sonnen", "fronius", "sunspec", "ami", "simulator"]
CHANNELS = ["pv_kwh", "battery_kwh", "grid_kwh", "load_kwh", "soc_pct"]
QUALITIES = ["measured", "estimated", "missing", "suspect"]
QUALITY_CODE = {name: np.int8(i) for i, name in enumerate(QUALITIES)}  # int8 codes of the fleet-day arrays
INTERVALS_S = [300, 900, 3600]
KEY_COLUMNS = ["site_id", "device_id", "source", "channel", "interval_start", "revision"]

_UTC = pd.DatetimeTZDtype(unit="ns", tz="UTC")


class IntervalTelemetry(pa.DataFrameModel):
    """One row per (site, device, source, channel, interval, revision)."""

    site_id: Series[str] = pa.Field(str_length={"min_value": 1})
    device_id: Series[str] = pa.Field(str_length={"min_value": 1})
    source: Series[str] = pa.Field(isin=SOURCES)
    channel: Series[str] = pa.Field(isin=CHANNELS)
    interval_start: Series[_UTC]
    interval_s: Series["int64"] = pa.Field(isin=INTERVALS_S)
    value: Series[float] = pa.Field(nullable=True)
    quality: Series[str] = pa.Field(isin=QUALITIES)
    received_at: Series[_UTC]
    revision: Series["int64"] = pa.Field(ge=0)

    class Config:
        strict = True
        ordered = True
        unique = KEY_COLUMNS

    @pa.dataframe_check
    def null_iff_missing(cls, df: pd.DataFrame) -> Series[bool]:
        """Never a silent zero: a missing interval is null, and null means missing."""
        return df["value"].isna() == (df["quality"] == "missing")

    @pa.dataframe_check
    def sign_convention(cls, df: pd.DataFrame) -> Series[bool]:
        """pv/load >= 0 and soc in [0, 100], unless the row is already flagged suspect."""
        v = df["value"]
        nonneg = df["channel"].isin(["pv_kwh", "load_kwh"])
        soc = df["channel"] == "soc_pct"
        bad = (nonneg & (v < 0)) | (soc & ((v < 0) | (v > 100)))
        return ~bad | (df["quality"] == "suspect")

    @pa.dataframe_check
    def grid_aligned(cls, df: pd.DataFrame) -> Series[bool]:
        """interval_start sits on a 15-min UTC grid (5-min for 300 s rows); covers half-hour tz offsets."""
        secs = df["interval_start"].astype("int64") // 10**9
        step = df["interval_s"].clip(upper=900)
        return (secs % step) == 0


def empty_frame() -> pd.DataFrame:
    """A zero-row frame with canonical dtypes, so concat and validation never guess types."""
    return pd.DataFrame(
        {
            "site_id": pd.Series(dtype=object),
            "device_id": pd.Series(dtype=object),
            "source": pd.Series(dtype=object),
            "channel": pd.Series(dtype=object),
            "interval_start": pd.Series(dtype=_UTC),
            "interval_s": pd.Series(dtype="int64"),
            "value": pd.Series(dtype="float64"),
            "quality": pd.Series(dtype=object),
            "received_at": pd.Series(dtype=_UTC),
            "revision": pd.Series(dtype="int64"),
        }
    )[CANONICAL_COLUMNS]


def validate(df: pd.DataFrame) -> pd.DataFrame:
    """Validate eagerly (all failures at once) and return the frame unchanged."""
    return IntervalTelemetry.validate(df, lazy=True)


_STR_ISIN = {"source": frozenset(SOURCES), "channel": frozenset(CHANNELS), "quality": frozenset(QUALITIES)}


def _all_str(col: pd.Series) -> bool:
    if isinstance(col.dtype, pd.CategoricalDtype):  # the fleet-day frame's key columns
        return not bool(col.isna().any()) and _all_str(pd.Series(col.cat.categories, dtype=object))
    return is_object_dtype(col.dtype) and bool(lib.is_string_array(col.to_numpy(), skipna=False))


def _distinct(col: pd.Series) -> np.ndarray:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.categories[np.unique(col.cat.codes)].to_numpy()
    return pd.unique(col.to_numpy())


def passes_fast(df: pd.DataFrame) -> bool:
    """True only if `df` certainly passes `IntervalTelemetry` (every check, stricter or equal).

    A cheap numpy precheck so the common, valid frame skips pandera's per-call overhead. False
    means "not proven", never "invalid": the caller then runs `validate` for the real verdict and
    its failure report, so outcomes and error messages are exactly pandera's.
    """
    try:
        if list(df.columns) != CANONICAL_COLUMNS:
            return False
        for name in ("site_id", "device_id", "source", "channel", "quality"):
            if not _all_str(df[name]):
                return False
        for name in ("site_id", "device_id"):
            if any(len(u) < 1 for u in _distinct(df[name])):
                return False
        for name, allowed in _STR_ISIN.items():
            if not set(_distinct(df[name])) <= allowed:
                return False
        for name in ("interval_start", "received_at"):
            if df[name].dtype != _UTC or bool(df[name].isna().any()):
                return False
        for name in ("interval_s", "revision"):
            if df[name].dtype != np.dtype("int64"):
                return False
        if df["value"].dtype != np.dtype("float64"):
            return False
        interval_s = df["interval_s"].to_numpy()
        if not np.isin(interval_s, INTERVALS_S).all() or (df["revision"].to_numpy() < 0).any():
            return False
        value = df["value"].to_numpy()
        channel = df["channel"]
        quality = df["quality"]
        isnull = np.isnan(value)
        if not np.array_equal(isnull, (quality == "missing").to_numpy()):
            return False
        with np.errstate(invalid="ignore"):
            nonneg = ((channel == "pv_kwh") | (channel == "load_kwh")).to_numpy()
            soc = (channel == "soc_pct").to_numpy()
            bad = (nonneg & (value < 0)) | (soc & ((value < 0) | (value > 100)))
        if (bad & (quality != "suspect").to_numpy()).any():
            return False
        secs = df["interval_start"].array.asi8 // 10**9
        if ((secs % np.minimum(interval_s, 900)) != 0).any():
            return False
        return not bool(df.duplicated(KEY_COLUMNS).any())
    except Exception:  # anything unexpected: let pandera decide
        return False
