"""Write registry versions to the warehouse and read the current registry back.

An import compares each entity with its current version. Unchanged entities are left alone,
so importing the same file twice writes nothing. A changed entity gets a new version and the
old one is closed (valid_to set), in one transaction with every other change of the import.
Entities missing from the file are not touched: retiring a site is a status change. The one
exception is a site's meter point: a site carries one in this format, so when the file names a new
meter_id for a site, the site's old meter is closed (its history kept) as the new one opens.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from der_assets.registry.columns import COLUMN_NAMES, ENTITY_KEYS, entity_columns
from der_assets.registry.validation import ParsedRegistry
from der_assets.warehouse.schema import REGISTRY_TABLES, registry_imports


@dataclass(frozen=True)
class ImportSummary:
    file_name: str
    file_sha256: str
    rows_read: int
    created: dict[str, int]  # entity -> new entities
    changed: dict[str, int]  # entity -> entities given a new version
    unchanged: dict[str, int]
    import_id: int | None  # None when nothing changed (or a dry run)
    closed: dict[str, int] = field(default_factory=dict)  # entity -> versions closed with no successor

    @property
    def versions_created(self) -> int:
        return sum(self.created.values()) + sum(self.changed.values())

    @property
    def versions_closed(self) -> int:
        return sum(self.closed.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file_name,
            "sha256": self.file_sha256,
            "rows_read": self.rows_read,
            "created": self.created,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "versions_created": self.versions_created,
            "closed": self.closed,
            "import_id": self.import_id,
        }


def _current_rows(conn: sa.Connection, entity: str) -> dict[str, dict[str, object]]:
    table = REGISTRY_TABLES[entity]
    names = entity_columns(entity)
    key = ENTITY_KEYS[entity]
    query = sa.select(table.c.version_id, *[table.c[n] for n in names]).where(table.c.valid_to.is_(None))
    return {row._mapping[key]: dict(row._mapping) for row in conn.execute(query)}


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and float(a) == float(b)
    return a == b


def plan_import(conn: sa.Connection, parsed: ParsedRegistry) -> dict[str, tuple[list, list, int]]:
    """Per entity: (new rows, (version_id, row, changed columns) to supersede, unchanged count)."""
    plan = {}
    for entity in ENTITY_KEYS:
        current = _current_rows(conn, entity)
        names = entity_columns(entity)
        new, superseded, unchanged = [], [], 0
        for key_value, values in parsed.entities[entity].items():
            existing = current.get(key_value)
            if existing is None:
                new.append(values)
                continue
            changed = [n for n in names if not _same(existing[n], values[n])]
            if changed:
                superseded.append((existing["version_id"], values, changed))
            else:
                unchanged += 1
        plan[entity] = (new, superseded, unchanged)
    return plan


def replaced_meters(conn: sa.Connection, parsed: ParsedRegistry) -> list[tuple[int, str, str]]:
    """(version_id, meter_id, site_id) of current meters a site in the file no longer names.

    A site has one meter point here: when its row names another meter_id, the old meter is
    closed. A meter the file names for some other site moves there (a changed row, not this);
    a site whose meter_id is blank keeps the meter it has.
    """
    named = {values["site_id"] for values in parsed.entities["meter"].values()}
    return [(row["version_id"], meter_id, row["site_id"]) for meter_id, row in _current_rows(conn, "meter").items()
            if row["site_id"] in named and meter_id not in parsed.entities["meter"]]


def apply_import(
    engine: Engine,
    parsed: ParsedRegistry,
    *,
    file_name: str,
    content: bytes,
    changed_by: str | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> ImportSummary:
    """Write the versions an import implies, all or nothing."""
    sha = hashlib.sha256(content).hexdigest()
    now = now or dt.datetime.now(dt.UTC)
    changed_by = changed_by or _whoami()
    with engine.begin() as conn:
        plan = plan_import(conn, parsed)
        replaced = replaced_meters(conn, parsed)
        created = {e: len(p[0]) for e, p in plan.items()}
        changed = {e: len(p[1]) for e, p in plan.items()}
        unchanged = {e: p[2] for e, p in plan.items()}
        closed = {e: len(replaced) if e == "meter" else 0 for e in plan}
        total = sum(created.values()) + sum(changed.values())
        import_id = None
        if (total or replaced) and not dry_run:
            import_id = conn.execute(
                registry_imports.insert()
                .values(
                    file_name=file_name,
                    file_sha256=sha,
                    imported_at=now,
                    imported_by=changed_by,
                    rows_read=parsed.rows_read,
                    versions_created=total,
                )
                .returning(registry_imports.c.import_id)
            ).scalar_one()
            if replaced:
                meters = REGISTRY_TABLES["meter"]
                conn.execute(meters.update().where(meters.c.version_id.in_([vid for vid, _, _ in replaced]))
                             .values(valid_to=now))
            for entity, (new, superseded, _) in plan.items():
                table = REGISTRY_TABLES[entity]
                if superseded:
                    conn.execute(
                        table.update()
                        .where(table.c.version_id.in_([vid for vid, _, _ in superseded]))
                        .values(valid_to=now)
                    )
                rows = [
                    {**values, "valid_from": now, "valid_to": None, "import_id": import_id,
                     "changed_by": changed_by, "change_summary": _created(entity, values, replaced)}
                    for values in new
                ] + [
                    {**values, "valid_from": now, "valid_to": None, "import_id": import_id,
                     "changed_by": changed_by, "change_summary": "changed: " + ", ".join(cols)}
                    for _, values, cols in superseded
                ]
                if rows:
                    conn.execute(table.insert(), rows)
    return ImportSummary(file_name, sha, parsed.rows_read, created, changed, unchanged, import_id, closed)


def _created(entity: str, values: dict, replaced: list[tuple[int, str, str]]) -> str:
    """`created`, or for a site's new meter `created, replacing meter <old id>`."""
    if entity != "meter":
        return "created"
    old = sorted(meter_id for _, meter_id, site_id in replaced if site_id == values["site_id"])
    return "created" + (f", replacing meter {', '.join(old)}" if old else "")


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def current_registry(engine: Engine, *, as_of: dt.datetime | None = None) -> pd.DataFrame:
    """The registry as one row per device, in the import file's columns.

    With `as_of`, the versions that were current at that instant: the registry can be
    reconstructed for any past date, as an audit asks.
    """
    frames = {}
    with engine.connect() as conn:
        for entity, table in REGISTRY_TABLES.items():
            names = entity_columns(entity)
            query = sa.select(*[table.c[n] for n in names])
            if as_of is None:
                query = query.where(table.c.valid_to.is_(None))
            else:
                query = query.where(
                    table.c.valid_from <= as_of,
                    sa.or_(table.c.valid_to.is_(None), table.c.valid_to > as_of),
                )
            frames[entity] = pd.DataFrame(conn.execute(query).mappings().all(), columns=names)
    return join_entities(frames)


def join_entities(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Entity frames (subscriber, site, meter, device) as one row per device in the import columns."""
    devices = frames["device"]
    sites = frames["site"]
    meters = frames["meter"].sort_values("meter_id").drop_duplicates("site_id")
    merged = (
        devices.merge(sites, on="site_id", how="left", suffixes=("", "_site"))
        .merge(frames["subscriber"], on="subscriber_id", how="left")
        .merge(meters, on="site_id", how="left")
    )
    merged = merged.reindex(columns=list(COLUMN_NAMES))
    return merged.sort_values(["site_id", "device_id"]).reset_index(drop=True)


def parsed_registry(parsed: ParsedRegistry) -> pd.DataFrame:
    """A validated registry file as the registry frame, without touching a warehouse."""
    return join_entities({entity: pd.DataFrame(list(rows.values()), columns=entity_columns(entity))
                          for entity, rows in parsed.entities.items()})


def history(engine: Engine, entity: str, key: str) -> pd.DataFrame:
    """Every version of one entity, oldest first, with who changed what and when."""
    table = REGISTRY_TABLES[entity]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table).where(table.c[ENTITY_KEYS[entity]] == key).order_by(table.c.valid_from, table.c.version_id)
        ).mappings().all()
    return pd.DataFrame(rows)
