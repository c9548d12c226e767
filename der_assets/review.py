"""The operators' review queue: gaps, suspect runs and quarantined payloads, each open until resolved.

The telemetry assets rebuild a day's items on every run, so an item is known by what it is, not
by its row: origin, day, site, device, source, channel, issue and its first interval (or, for a
quarantined payload, the payload and its error). `merge_day` carries each item's id, first
detection and status across a rebuild:

- an item found again keeps its id and its status, as long as it is the same finding;
- a resolved item found again with a different extent (last interval, interval count, detail)
  is reopened, and the history says what changed;
- an open item a rebuild no longer finds becomes `cleared` (late data filled the gap), and is open
  again if a later rebuild finds it again;
- a resolved item a rebuild no longer finds stays resolved, with its history.

No row is deleted, so an id always names the same item (SQLite would otherwise reuse the
highest id after a delete).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pandas as pd
import sqlalchemy as sa

from der_assets.errors import ValidationFailed
from der_assets.warehouse.bulk import bulk_insert
from der_assets.warehouse.schema import review_history, review_queue

KEY_COLUMNS = ["origin", "day", "site_id", "device_id", "source", "channel", "issue", "first_interval"]
EXTENT_COLUMNS = ["last_interval", "n_intervals", "detail"]
OPEN, RESOLVED, CLEARED = "open", "resolved", "cleared"
SYSTEM = "der_assets"  # who reopens an item whose extent changed


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        ts = pd.Timestamp(value)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _column_text(frame: pd.DataFrame, name: str) -> pd.Series:
    """One column as comparable text, the same whether it came from pandas or back from the database."""
    if name not in frame.columns or frame.empty:
        return pd.Series("", index=frame.index, dtype=object)
    column = frame[name]
    if name in ("first_interval", "last_interval"):
        seconds = pd.to_datetime(column, utc=True, errors="coerce").dt.tz_convert(None).to_numpy("datetime64[s]")
        return pd.Series(seconds.astype(str), index=frame.index, dtype=object).replace("NaT", "")
    if name == "n_intervals":
        return pd.to_numeric(column, errors="coerce").astype("Int64").astype(str).replace("<NA>", "")
    column = column.astype(object)
    return column.where(column.notna(), "").astype(str)


def _joined(frame: pd.DataFrame, names: list[str]) -> pd.Series:
    parts = [_column_text(frame, n) for n in names]
    return parts[0].str.cat(parts[1:], sep="|")


def item_keys(items: pd.DataFrame) -> pd.Series:
    """The natural identity of each item as a short hash; an item with no interval adds its detail."""
    if items.empty:
        return pd.Series([], index=items.index, dtype=object)
    joined = _joined(items, KEY_COLUMNS)
    joined = joined.where(_column_text(items, "first_interval") != "", joined + "|" + _column_text(items, "detail"))
    return pd.Series([hashlib.sha256(k.encode()).hexdigest()[:32] for k in joined], index=items.index, dtype=object)


def _extent(frame: pd.DataFrame) -> pd.Series:
    if frame.empty:
        return pd.Series([], index=frame.index, dtype=object)
    return _joined(frame, EXTENT_COLUMNS)


def _changes(old: pd.Series, new: pd.Series) -> str:
    said = [f"{c} {_text(old[c]) or '-'} -> {_text(new[c]) or '-'}" for c in EXTENT_COLUMNS
            if _text(old[c]) != _text(new[c])]
    return "changed since it was resolved: " + ", ".join(said)


def merge_day(conn: sa.Connection, items: pd.DataFrame, *, day: dt.date, origin: str, now: dt.datetime) -> dict:
    """Replace the day's items of `origin` with `items`, keeping ids, first detection and resolutions.

    Runs in the caller's transaction. Returns counts: new, kept, reopened, cleared.
    """
    t = review_queue
    existing = pd.DataFrame(conn.execute(sa.select(t).where(t.c.day == day, t.c.origin == origin)).mappings().all(),
                            columns=[c.name for c in t.columns])
    for column in ("first_interval", "last_interval", "detected_at", "seen_at", "resolved_at"):
        existing[column] = pd.to_datetime(existing[column], utc=True)
    items = items.assign(day=day, origin=origin).reset_index(drop=True)
    items = items.reindex(columns=list(dict.fromkeys([*items.columns, *KEY_COLUMNS, *EXTENT_COLUMNS])))
    items["item_key"] = item_keys(items)
    items = items.drop_duplicates("item_key").reset_index(drop=True)
    old = existing.dropna(subset=["item_key"]).drop_duplicates("item_key").set_index("item_key")
    before = old.reindex(items["item_key"])  # each item's stored row, NaN where it is new
    before.index = items.index
    matched = before["review_id"].notna().to_numpy()
    was_resolved = (before["status"] == RESOLVED).to_numpy()
    same = (_extent(items) == _extent(before)).to_numpy() if len(items) else matched
    keep = matched & was_resolved & same
    reopened = matched & was_resolved & ~same
    out = items.assign(review_id=before["review_id"].astype(object), seen_at=now, status=OPEN,
                       detected_at=before["detected_at"].where(matched, pd.Timestamp(now)))
    for column in ("resolved_at", "resolved_by", "resolution_note"):
        out[column] = before[column].astype(object).where(keep, None)
    out.loc[keep, "status"] = RESOLVED
    history = [{"review_id": int(before.at[i, "review_id"]), "item_key": items.at[i, "item_key"], "action": "reopened",
                "by": SYSTEM, "at": now, "note": _changes(before.loc[i], items.loc[i])}
               for i in items.index[reopened]]
    counts = {"new": int((~matched).sum()), "kept": int((matched & ~reopened).sum()), "reopened": int(reopened.sum())}
    gone = old[~old.index.isin(items["item_key"])].reset_index()
    counts["cleared"] = int((gone["status"] != RESOLVED).sum())
    gone.loc[gone["status"] != RESOLVED, "status"] = CLEARED  # kept, so its id is never reused
    conn.execute(t.delete().where(t.c.day == day, t.c.origin == origin))
    columns = [c.name for c in t.columns]
    parts = [f.dropna(axis=1, how="all") for f in (out[out["review_id"].notna()], gone) if not f.empty]
    carried = (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()).reindex(columns=columns)
    fresh = out[out["review_id"].isna()].reindex(columns=[c for c in columns if c != "review_id"])
    # a quarantined payload has no interval count: the column must stay integer, not float with NaN
    for frame in (carried, fresh):
        frame["n_intervals"] = pd.Series([None if pd.isna(v) else int(v) for v in frame["n_intervals"]],
                                         index=frame.index, dtype=object)
    bulk_insert(conn, t, carried.astype({"review_id": "int64"}))
    bulk_insert(conn, t, fresh)
    if history:
        conn.execute(review_history.insert(), history)
    return counts


def list_items(engine, *, status: str | None = OPEN, origin: str | None = None, day: dt.date | None = None) -> pd.DataFrame:
    """Review items, oldest detection first; status None lists every item. NULL status reads as open."""
    t = review_queue
    query = sa.select(t).order_by(t.c.detected_at, t.c.review_id)
    if status == OPEN:
        query = query.where(sa.or_(t.c.status.is_(None), t.c.status == OPEN))
    elif status is not None:
        query = query.where(t.c.status == status)
    if origin:
        query = query.where(t.c.origin == origin)
    if day:
        query = query.where(t.c.day == day)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in t.columns])
    frame["status"] = frame["status"].fillna(OPEN)
    frame["n_intervals"] = frame["n_intervals"].astype("Int64")
    frame["day"] = frame["day"].astype(str)
    for column in ("first_interval", "last_interval", "detected_at", "seen_at", "resolved_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def history_of(engine, review_id: int) -> pd.DataFrame:
    t = review_history
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(sa.select(t).where(t.c.review_id == review_id).order_by(t.c.history_id))
                            .mappings().all(), columns=[c.name for c in t.columns])


def resolve(engine, review_id: int, *, note: str, by: str, now: dt.datetime | None = None) -> dict:
    """Mark one item resolved with the operator's note, and keep who, when and why in its history."""
    if not note.strip():
        raise ValidationFailed("a resolution needs a note (--note) saying what was done", [])
    now = now or dt.datetime.now(dt.UTC)
    t = review_queue
    with engine.begin() as conn:
        row = conn.execute(sa.select(t).where(t.c.review_id == review_id)).mappings().first()
        if row is None:
            raise ValidationFailed(f"review item {review_id} does not exist (see `der review list --all`)", [])
        if row["status"] == RESOLVED:
            raise ValidationFailed(f"review item {review_id} is already resolved by {row['resolved_by']} "
                                   f"at {_text(row['resolved_at'])}: {row['resolution_note']}", [])
        conn.execute(t.update().where(t.c.review_id == review_id).values(
            status=RESOLVED, resolved_at=now, resolved_by=by, resolution_note=note))
        conn.execute(review_history.insert().values(review_id=review_id, item_key=row["item_key"], action=RESOLVED,
                                                    by=by, at=now, note=note))
    return {**dict(row), "status": RESOLVED, "resolved_at": now, "resolved_by": by, "resolution_note": note}


def summary(items: pd.DataFrame, *, now: pd.Timestamp, max_age_h: float) -> dict:
    """Open items counted by origin and issue, and those first detected more than max_age_h ago."""
    open_items = items[items["status"] == OPEN]
    by = (open_items.groupby(["origin", "issue"]).size().rename("open_items").reset_index()
          if not open_items.empty else pd.DataFrame(columns=["origin", "issue", "open_items"]))
    age_h = (now - open_items["detected_at"]).dt.total_seconds() / 3600.0
    stale = open_items[age_h > max_age_h]
    return {"open": len(open_items), "by_origin_issue": by, "stale": stale,
            "oldest_h": round(float(age_h.max()), 2) if len(age_h) else 0.0}


def as_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready rows (ISO times, no NaN)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))
