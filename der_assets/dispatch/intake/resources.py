"""Which resources an instruction may name: the ones the registry has sites for.

Every intake path (webhook, inbox, VEN, `der instruction submit`) checks the instruction's
resource_id against this, so an instruction for a resource configured nowhere is refused with
its reason instead of reaching a dispatch run with no batteries. A site's resource is
``registry.resources.site_resource``: its resource_id, blank -> ``<ISO>-<zone>``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterator

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from der_assets.registry.resources import site_resource
from der_assets.registry.store import REGISTRY_TABLES


def registry_resource_isos(engine: Engine) -> dict[str, frozenset[str]]:
    """Each resource id of the registry's current sites -> the ISOs its sites are enrolled in."""
    site = REGISTRY_TABLES["site"]
    with engine.connect() as conn:
        rows = conn.execute(sa.select(site.c.iso, site.c.zone, site.c.resource_id).where(site.c.valid_to.is_(None))).all()
    if not rows:
        return {}
    frame = pd.DataFrame(rows, columns=["iso", "zone", "resource_id"])
    frame["resource"] = site_resource(frame)
    return {r: frozenset(g.astype(str)) for r, g in frame.groupby("resource")["iso"]}


def registry_resource_ids(engine: Engine) -> frozenset[str]:
    """The resource ids of the registry's current sites (one light query on the site table)."""
    return frozenset(registry_resource_isos(engine))


class ResourceSet(frozenset):
    """Resource ids that also know each one's ISO(s), so an instruction's ISO is checked against them."""

    def __new__(cls, isos: dict[str, frozenset[str]]):
        self = super().__new__(cls, isos)
        self.isos = isos
        return self


def registry_resources(engine: Engine) -> ResourceSet:
    """The registry's resources with their ISOs (what the CLI checks a one-off instruction against)."""
    return ResourceSet(registry_resource_isos(engine))


class RegistryResources(Collection[str]):
    """The registry's resource ids for a long-running intake, re-read at most every ``ttl_s``.

    A registry import takes effect within seconds without restarting the intake; between
    re-reads every check costs a set lookup.
    """

    def __init__(self, engine: Engine, *, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: ResourceSet | None = None
        self._read_at = 0.0

    def snapshot(self) -> ResourceSet:
        with self._lock:
            now = self._clock()
            if self._ids is None or now - self._read_at >= self.ttl_s:
                self._ids = registry_resources(self.engine)
                self._read_at = now
            return self._ids

    @property
    def isos(self) -> dict[str, frozenset[str]]:
        """resource id -> the ISOs its sites are enrolled in."""
        return self.snapshot().isos

    def __contains__(self, resource_id: object) -> bool:
        return resource_id in self.snapshot()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.snapshot()))

    def __len__(self) -> int:
        return len(self.snapshot())
