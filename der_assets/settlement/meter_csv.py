"""METER.csv: utility meter rows (contract in DESIGN.md): meter_id, interval_start, interval_s, grid_kwh.

interval_start is UTC (a 'Z' or offset is honoured; a time without one is taken as UTC, as the
contract says), grid_kwh is energy over the interval, + import. An empty grid_kwh stays NaN:
a missing reading is never a zero.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from der_assets.errors import ValidationFailed
from der_assets.inputs import read_input_bytes, require_file

COLUMNS = ("meter_id", "interval_start", "interval_s", "grid_kwh")
MAX_PROBLEMS = 200


def _row(i: int) -> int:
    """Row number as a spreadsheet shows it: the header is row 1."""
    return int(i) + 2


def read_meter_csv(path: str | Path) -> pd.DataFrame:
    """METER.csv -> DataFrame[meter_id str, interval_start datetime64[ns, UTC], interval_s int64,
    grid_kwh float64 (NaN kept)], sorted by meter and time.

    Raises ValidationFailed with one line per problem, each naming file, row and column.
    """
    path = Path(path)
    require_file(path)
    try:
        content = read_input_bytes(path, "a meter CSV")  # refused if still being written
        raw = pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False, skipinitialspace=True,
                          encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(f"{path}: not UTF-8 text", []) from None
    except pd.errors.EmptyDataError:
        raise ValidationFailed(f"{path}: empty file (expected header {','.join(COLUMNS)})", []) from None
    except pd.errors.ParserError as exc:
        raise ValidationFailed(f"{path}: not CSV: {str(exc).strip()}", []) from None
    if not isinstance(raw.index, pd.RangeIndex):  # pandas took column 1 as an index: rows longer than the header
        raise ValidationFailed(f"{path}: row 2: has {raw.shape[1] + 1} cells but the header has {raw.shape[1]} "
                               f"({','.join(map(str, raw.columns))})", [])
    return validate_meter_frame(raw, str(path))


def validate_meter_frame(raw: pd.DataFrame, where: str = "METER.csv") -> pd.DataFrame:
    """Parse and check string columns as read from METER.csv (see read_meter_csv)."""
    raw = raw.rename(columns=lambda c: str(c).strip())
    problems: list[str] = []
    unknown = [c for c in raw.columns if c not in COLUMNS]
    missing = [c for c in COLUMNS if c not in raw.columns]
    for c in unknown:
        problems.append(f"{where}: row 1, column {c!r}: unknown column (expected {','.join(COLUMNS)})")
    for c in missing:
        problems.append(f"{where}: row 1, column {c!r}: missing column")
    if problems:
        _raise(where, problems)

    def bad(mask: np.ndarray, column: str, why) -> None:
        for i in np.flatnonzero(mask)[:MAX_PROBLEMS - len(problems)]:
            problems.append(f"{where}: row {_row(i)}, column {column}: {why(i)}")

    meter_id = raw["meter_id"].astype(str).str.strip()
    bad((meter_id == "").to_numpy(), "meter_id", lambda i: "empty")

    text_t = raw["interval_start"].astype(str).str.strip()
    start = pd.to_datetime(text_t, format="ISO8601", utc=True, errors="coerce")
    bad(start.isna().to_numpy(), "interval_start", lambda i: f"not an ISO 8601 time: {text_t.iat[i]!r}")

    text_s = raw["interval_s"].astype(str).str.strip()
    interval_s = pd.to_numeric(text_s, errors="coerce")
    ok_s = interval_s.notna() & (interval_s > 0) & (interval_s == interval_s.round())
    ok_s &= (3600 % interval_s.where(ok_s, 1).astype("int64") == 0)
    bad((~ok_s).to_numpy(), "interval_s",
        lambda i: f"not a whole number of seconds that divides an hour: {text_s.iat[i]!r}")

    text_kwh = raw["grid_kwh"].astype(str).str.strip()
    kwh = pd.to_numeric(text_kwh.mask(text_kwh == ""), errors="coerce")
    nonnumeric = kwh.isna() & (text_kwh != "") & ~text_kwh.str.lower().isin(["nan", "na", "null"])
    bad(nonnumeric.to_numpy(), "grid_kwh", lambda i: f"not a number: {text_kwh.iat[i]!r}")
    bad(np.isinf(kwh.to_numpy(dtype=float, na_value=np.nan)), "grid_kwh", lambda i: f"not finite: {text_kwh.iat[i]!r}")

    ok = start.notna() & ok_s
    if ok.any():
        step = interval_s.where(ok, 1).astype("int64").to_numpy()
        sec = (start.dt.minute * 60 + start.dt.second).where(ok, 0).astype("int64").to_numpy()
        frac = (start.dt.microsecond.where(ok, 0).to_numpy() != 0) | (start.dt.nanosecond.where(ok, 0).to_numpy() != 0)
        off = ok.to_numpy() & ((sec % step != 0) | frac)
        bad(off, "interval_start", lambda i: f"off the {int(step[i])} s grid (not a multiple of interval_s from the hour): "
                                             f"{text_t.iat[i]!r}")
        keys = pd.DataFrame({"m": meter_id, "t": start})
        dup = keys.duplicated(keep="first") & ok
        if dup.any():
            first = keys.reset_index().groupby(["m", "t"])["index"].transform("min")
            bad(dup.to_numpy(), "interval_start",
                lambda i: f"duplicate meter {meter_id.iat[i]!r} and interval_start {text_t.iat[i]!r} (first at row {_row(first.iat[i])})")
    if problems:
        _raise(where, sorted(problems, key=lambda line: int(line.split(", column")[0].rsplit("row ", 1)[1])))
    out = pd.DataFrame({"meter_id": meter_id.to_numpy(dtype=object), "interval_start": start,
                        "interval_s": interval_s.astype("int64"), "grid_kwh": kwh.astype("float64")})
    return out.sort_values(["meter_id", "interval_start"], kind="stable").reset_index(drop=True)


def _raise(where: str, problems: list[str]):
    if len(problems) == 1:
        raise ValidationFailed(problems[0], [])
    raise ValidationFailed(f"{where}: {len(problems)} problems{' (first ' + str(MAX_PROBLEMS) + ' shown)' if len(problems) >= MAX_PROBLEMS else ''}", problems)


def write_meter_csv(meter: pd.DataFrame, path: str | Path) -> None:
    """The inverse of read_meter_csv, for tests and examples (UTC 'Z' times, empty = missing)."""
    out = meter[list(COLUMNS)].copy()
    out["interval_start"] = pd.to_datetime(out["interval_start"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    out.to_csv(path, index=False, na_rep="")
