"""Read canonical interval CSV (as `der normalize` prints it) back into the canonical frame.

Errors are one line naming the file, the spreadsheet row (the header is row 1) and the
column: a missing column, an unknown channel/quality/source, a timestamp that is not UTC
ISO 8601, a value that is not a number, a null value not flagged missing. Parsing is
vectorized; the first bad row is reported.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from der_assets.errors import ValidationFailed
from der_assets.inputs import read_input_bytes
from der_assets.telemetry.schema import CANONICAL_COLUMNS, CHANNELS, INTERVALS_S, QUALITIES, SOURCES

REQUIRED = ("site_id", "device_id", "channel", "interval_start", "interval_s", "value", "quality")


def _fail(path: Path, row_index: int, column: str, message: str) -> None:
    raise ValidationFailed(f"{path}: row {row_index + 2}, column {column}: {message}", [])


def read_canonical_csv(path: str | Path, channels: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Canonical rows with categorical keys and UTC datetimes; `channels` keeps only those channels.

    source, received_at and revision are optional (defaults: unknown source is refused when
    present, received_at NaT, revision 0), so a hand-made file with the core columns reads.
    """
    path = Path(path)
    content = read_input_bytes(path, "a telemetry file")
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise ValidationFailed(f"{path}: row {line}: not UTF-8 text", []) from None
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.EmptyDataError:
        raise ValidationFailed(f"{path}: row 1: empty file, no header", []) from None
    except pd.errors.ParserError as exc:
        raise ValidationFailed(f"{path}: malformed CSV ({str(exc).strip()})", []) from None
    df.columns = [c.strip() for c in df.columns]
    for column in REQUIRED:
        if column not in df.columns:
            raise ValidationFailed(f"{path}: row 1, column {column}: missing required column", [])
    unknown = [c for c in df.columns if c not in CANONICAL_COLUMNS]
    if unknown:
        raise ValidationFailed(f"{path}: row 1, column {unknown[0]}: unknown column", [])
    if df.empty:
        raise ValidationFailed(f"{path}: row 2: no data rows", [])
    for column, allowed in (("channel", CHANNELS), ("quality", QUALITIES), ("source", SOURCES)):
        if column in df:
            bad = ~df[column].isin(allowed)
            if bad.any():
                i = int(np.argmax(bad.to_numpy()))
                _fail(path, i, column, f"unknown {column} {df[column].iloc[i]!r} (one of {', '.join(allowed)})")
    for column in ("site_id", "device_id"):
        blank = df[column].str.strip() == ""
        if blank.any():
            _fail(path, int(np.argmax(blank.to_numpy())), column, "empty")
    out = {}
    for column in ("interval_start", "received_at"):
        if column not in df:
            continue
        raw = df[column]
        ts = pd.to_datetime(raw, format="ISO8601", utc=False, errors="coerce")
        # require an explicit UTC offset: naive local times must not pass as UTC
        has_zone = raw.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        if column == "received_at":
            ok = (raw == "") | (ts.notna() & has_zone)
        else:
            ok = ts.notna() & has_zone
        if not ok.all():
            i = int(np.argmax(~ok.to_numpy()))
            _fail(path, i, column, f"{raw.iloc[i]!r} is not an ISO 8601 time with a UTC offset (e.g. 2026-07-15T19:00:00Z)")
        out[column] = pd.to_datetime(raw.where(raw != ""), format="ISO8601", utc=True)
    interval_s = pd.to_numeric(df["interval_s"], errors="coerce")
    bad = ~interval_s.isin(INTERVALS_S)
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        _fail(path, i, "interval_s", f"{df['interval_s'].iloc[i]!r} is not one of {', '.join(map(str, INTERVALS_S))}")
    value_text = df["value"].str.strip()
    value = pd.to_numeric(value_text.where(value_text != ""), errors="coerce")
    bad = value.isna() & (value_text != "")
    if bad.any():
        i = int(np.argmax(bad.to_numpy()))
        _fail(path, i, "value", f"{df['value'].iloc[i]!r} is not a number")
    mismatch = value.isna() != (df["quality"] == "missing")
    if mismatch.any():
        i = int(np.argmax(mismatch.to_numpy()))
        _fail(path, i, "value", "an empty value must have quality missing, and a missing row an empty value")
    revision = pd.Series(0, index=df.index, dtype=np.int64)
    if "revision" in df:
        revision = pd.to_numeric(df["revision"], errors="coerce")
        bad = revision.isna() | (revision < 0) | (revision % 1 != 0)
        if bad.any():
            i = int(np.argmax(bad.to_numpy()))
            _fail(path, i, "revision", f"{df['revision'].iloc[i]!r} is not a whole number >= 0")
    frame = pd.DataFrame({
        "site_id": pd.Categorical(df["site_id"]),
        "device_id": pd.Categorical(df["device_id"]),
        "source": pd.Categorical(df["source"]) if "source" in df else pd.Categorical(["unknown"] * len(df)),
        "channel": pd.Categorical(df["channel"], categories=CHANNELS),
        "interval_start": out["interval_start"],
        "interval_s": interval_s.astype(np.int64),
        "value": value.astype(float),
        "quality": pd.Categorical(df["quality"], categories=QUALITIES),
        "received_at": out.get("received_at", pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")),
        "revision": revision.astype(np.int64),
    })
    if channels is not None:
        frame = frame[frame["channel"].isin(channels)].reset_index(drop=True)
    return frame
