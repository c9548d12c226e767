"""One UTC day of vendor telemetry: landed payloads in, the canonical quality-flagged series out.

Pure: the caller (the Dagster asset) reads the landed bytes and writes the results. Parse
failures do not stop the day: each bad payload is reported (quarantined) and the other sites
carry on; their intervals simply show as `missing` unless another payload covers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from der_assets.telemetry import ParseError, empty_frame, parse_payload
from der_assets.telemetry.dense import RowBlock, SeriesKeys, complete_day, other_length_reports, utc_ns
from der_assets.telemetry.batch import BatchContext
from der_assets.telemetry.batch import readers as batch_readers
from der_assets.telemetry.quality import (collected_gap_runs, complete_grid, ended_by, flag_suspect, gap_summary,
                                         lateness_s, other_length_items, review_items)
from der_assets.telemetry.quality import other_length_reports as other_length_rows
from der_assets.telemetry.schema import CANONICAL_COLUMNS

# what each registry device type reports, and at what resolution by default
DEVICE_CHANNELS = {"pv_inverter": ("pv_kwh",), "battery": ("battery_kwh", "soc_pct")}
DEFAULT_INTERVAL_S = {"solaredge": 900}
# per channel where a vendor differs by channel: Enphase v4 reports batteries every 15 minutes
CHANNEL_INTERVAL_S = {("enphase", "battery_kwh"): 900, ("enphase", "soc_pct"): 900}
LATE_AFTER_S = 6 * 3600  # a value that took more than six hours to arrive counts as late
# Device-local APIs answer with a snapshot; a day's polls are parsed as one log (counters need two).
SNAPSHOT_ENDPOINTS = {
    ("enphase", "production.json"), ("enphase", "ivp_meters_readings"), ("sonnen", "status"),
    ("sonnen", "powermeter"), ("fronius", "GetPowerFlowRealtimeData"), ("sunspec", "snapshot"),
    ("generac", "snapshot"),
}
# Series that only a device-local snapshot API reports (None: every channel of the source). Such a
# device keeps no history, so the platform has its data from its first poll on and never before:
# an interval before the first payload ever landed for the site is "not collected", not a gap an
# operator can fix. It stays a missing row, but the gap check does not judge it (DayResult.stats).
# Fronius: the archive carries PV and the grid meter, not the battery (parsers/fronius.py).
SNAPSHOT_ONLY = {"sonnen": None, "sunspec": None, "generac": None,
                 "fronius": ("battery_kwh", "soc_pct", "load_kwh")}


@dataclass(frozen=True)
class LandedPayload:
    payload_id: int
    source: str
    endpoint: str
    site_id: str | None
    received_at: pd.Timestamp
    content: bytes


@dataclass
class DayResult:
    rows: pd.DataFrame
    review: pd.DataFrame
    quarantined: list[dict] = field(default_factory=list)
    parsed_ids: list[int] = field(default_factory=list)
    #: collection_starts() of the snapshot-only sources; None: every interval is judged
    collection: pd.DataFrame | None = None

    def not_collected(self) -> np.ndarray:
        """Per row: missing because the platform had not yet begun collecting its device (not judged)."""
        return not_collected(self.rows, self.collection)

    def stats(self, as_of: pd.Timestamp | None = None) -> dict[str, float]:
        """The day's counts. The gap share judges only intervals that have ended by `as_of` (the
        platform's now; None judges every interval, as for a day wholly past) and were collectable:
        missing counts the judged intervals without a value, future_intervals those not yet ended,
        not_collected_intervals the ended ones before the platform first polled a snapshot-only
        device (missing rows, never judged), and gap_pct is None while nothing is judged (not judged is
        not 0 % missing)."""
        rows = self.rows
        n = len(rows)
        is_missing = (rows["quality"] == "missing").to_numpy(dtype=bool)
        ended = ended_by(rows, as_of)
        before = self.not_collected() & ended  # an interval still to come is future, whoever polls it
        judged = ended & ~before
        n_judged = int(judged.sum())
        missing = int((is_missing & judged).sum())
        late = lateness_s(rows)
        return {
            "rows": n,
            "missing": missing,
            "reported": int(n - is_missing.sum()),
            "judged_intervals": n_judged,
            "future_intervals": int((~ended).sum()),
            "not_collected_intervals": int(before.sum()),
            "gap_pct": round(100.0 * missing / n_judged, 3) if n_judged else (None if n else 0.0),
            "suspect": int((rows["quality"] == "suspect").sum()),
            "late": int((late > LATE_AFTER_S).sum()),
            "quarantined_payloads": len(self.quarantined),
        }

    def by_source(self, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
        """quality.gap_summary per source, with the not-collected intervals and each source's
        collection start (its sites' first poll; empty for a source with a history API)."""
        if self.collection is None:
            return gap_summary(self.rows, as_of)
        out = gap_summary(self.rows, as_of, not_collected=self.not_collected())
        first = self.collection.dropna(subset=["site_id"]).groupby("source")["collection_start"].min()
        out["collection_start"] = [first[s].isoformat() if s in first.index else None for s in out["source"]]
        return out


def collection_starts(first_landed: pd.DataFrame | None) -> pd.DataFrame:
    """When the platform began collecting each snapshot-only source: source, site_id, collection_start.

    first_landed: source, site_id, endpoint, first_received_at of the payloads ever landed (parsed
    or quarantined: a device that answered garbage was being collected). Per site, its first
    snapshot payload; a row with site_id None holds the source's first, which stands for a site
    that never answered (it has been polled since then, so its silence is a gap). A source with
    no payload at all has no row and its series stay judged: nothing shows it was not polled.
    """
    columns = ["source", "site_id", "collection_start"]
    if first_landed is None or first_landed.empty:
        return pd.DataFrame(columns=columns)
    snap = first_landed[[(src, ep) in SNAPSHOT_ENDPOINTS and src in SNAPSHOT_ONLY
                         for src, ep in zip(first_landed["source"], first_landed["endpoint"], strict=True)]]
    if snap.empty:
        return pd.DataFrame(columns=columns)
    per_site = (snap.assign(collection_start=pd.to_datetime(snap["first_received_at"], utc=True))
                .groupby(["source", "site_id"], as_index=False)["collection_start"].min())
    per_source = per_site.groupby("source", as_index=False)["collection_start"].min().assign(site_id=None)
    return pd.concat([per_site, per_source[columns]], ignore_index=True)[columns]


def not_collected(rows: pd.DataFrame, starts: pd.DataFrame | None) -> np.ndarray:
    """True for each missing row of a snapshot-only series whose interval began before the platform
    first collected from its site (collection_starts); False everywhere else (judged as before)."""
    out = np.zeros(len(rows), dtype=bool)
    if starts is None or starts.empty or not len(rows):
        return out
    missing = (rows["quality"] == "missing").to_numpy(dtype=bool)  # categorical compares: no strings made
    interval_ns = None
    for src, group in starts.groupby("source"):
        sel = (rows["source"] == src).to_numpy(dtype=bool) & missing
        channels = SNAPSHOT_ONLY.get(src, ())
        if channels is not None and sel.any():
            sel &= rows["channel"].isin(channels).to_numpy(dtype=bool)
        if not sel.any():
            continue
        by_site = group.dropna(subset=["site_id"]).set_index("site_id")["collection_start"]
        fallback = group.loc[group["site_id"].isna(), "collection_start"]
        begin = pd.to_datetime(pd.Series(rows["site_id"].to_numpy()[sel]).astype(str).map(by_site), utc=True)
        if len(fallback):
            begin = begin.fillna(fallback.iloc[0])
        known = begin.notna().to_numpy()
        begin_ns = utc_ns(begin.fillna(pd.Timestamp(0, tz="UTC")))
        interval_ns = utc_ns(rows["interval_start"]) if interval_ns is None else interval_ns
        out[np.flatnonzero(sel)] = known & (interval_ns[sel] < begin_ns)
    return out



def expected_series(registry: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Every (site, device, source, channel) the registry says should report, with its interval."""
    devices = registry[registry["telemetry_source"].isin(sources) & (registry["device_status"] == "active")
                       & registry["device_type"].isin(list(DEVICE_CHANNELS))]
    columns = ["site_id", "device_id", "source", "channel", "interval_s"]
    frames = []
    for kind, channels in DEVICE_CHANNELS.items():
        of_kind = devices[devices["device_type"] == kind]
        for channel in channels:
            source = of_kind["telemetry_source"].to_numpy(dtype=object)
            interval = [CHANNEL_INTERVAL_S.get((s, channel), DEFAULT_INTERVAL_S.get(s, 300)) for s in source]
            frames.append(pd.DataFrame({"site_id": of_kind["site_id"].to_numpy(dtype=object),
                                        "device_id": of_kind["device_id"].to_numpy(dtype=object),
                                        "source": source, "channel": channel,
                                        "interval_s": np.asarray(interval, dtype=np.int64)}, columns=columns))
    return pd.concat(frames, ignore_index=True)  # by device type and channel; the grid sorts by key


def assign_devices(rows: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Give each parsed row its registry device: PV to the site's inverter, battery and SoC to its
    battery; grid and load stay on the site (the meter at the grid connection)."""
    return device_assigner(registry)(rows)


def device_assigner(registry: pd.DataFrame):
    """assign_devices for one registry with its lookup built once: normalize_day assigns each of a
    day's thousands of poll logs, and building the lookup per log made that quadratic in fleet size."""
    devices = registry[registry["device_type"].isin(list(DEVICE_CHANNELS))]
    by_type = devices.set_index(["site_id", "device_type"])["device_id"]
    by_type = by_type[~by_type.index.duplicated()]

    def assign(rows: pd.DataFrame) -> pd.DataFrame:
        if rows.empty:
            return rows
        kind = rows["channel"].map({"pv_kwh": "pv_inverter", "battery_kwh": "battery", "soc_pct": "battery"})
        keys = pd.MultiIndex.from_arrays([rows["site_id"], kind])
        mapped = pd.Series(by_type.reindex(keys).to_numpy(), index=rows.index)
        return rows.assign(device_id=mapped.fillna(rows["site_id"]))

    return assign


def _device_lookup(registry: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(site_id, channel) -> device_id for the channels a registry device reports (assign_devices)."""
    devices = registry[registry["device_type"].isin(list(DEVICE_CHANNELS))].drop_duplicates(["site_id", "device_type"])
    out: dict[tuple[str, str], str] = {}
    for site, kind, device in zip(devices["site_id"], devices["device_type"], devices["device_id"]):
        for channel in DEVICE_CHANNELS[kind]:
            out[(site, channel)] = device
    return out


def _parse_singly(payloads: list[tuple[int, LandedPayload]], registry: pd.DataFrame, log_order: int):
    """Payloads one at a time (snapshot endpoints as one poll log per site).

    Returns ([(order, frame)], quarantined, parsed_ids); `order` is the payload's position and
    poll logs are numbered from `log_order` on (after every single payload): that is how values
    reported for the same interval at the same instant are ranked.
    """
    sites = registry.drop_duplicates("site_id").set_index("site_id")
    frames, quarantined, parsed = [], [], []

    def parse(p: LandedPayload, content: bytes):
        tz = sites["timezone"].get(p.site_id) if p.site_id in sites.index else None
        return parse_payload(p.source, p.endpoint, content, site_id=p.site_id or "unknown", tz=tz,
                             received_at=p.received_at.to_pydatetime())

    def quarantine(p: LandedPayload, exc: Exception) -> None:
        quarantined.append({"payload_id": p.payload_id, "source": p.source, "endpoint": p.endpoint,
                            "site_id": p.site_id, "error": str(exc)})

    logs: dict[tuple, list[LandedPayload]] = {}
    for k, p in payloads:
        if (p.source, p.endpoint) in SNAPSHOT_ENDPOINTS:
            logs.setdefault((p.source, p.endpoint, p.site_id), []).append(p)
            continue
        try:
            frames.append((k, parse(p, p.content)))
            parsed.append(p.payload_id)
        except ParseError as exc:
            quarantine(p, exc)
    for n, group in enumerate(logs.values(), start=log_order):
        group = sorted(group, key=lambda p: (p.received_at, p.payload_id))
        try:
            frames.append((n, parse(group[-1], b"\n".join(p.content.strip() for p in group))))
            parsed.extend(p.payload_id for p in group)
        except ParseError:
            # find the bad polls, quarantine them, and read the log of the good ones
            good = []
            for p in group:
                try:
                    parse(p, p.content)
                    good.append(p)
                except ParseError as exc:
                    quarantine(p, exc)
            if good:
                try:
                    frames.append((n, parse(good[-1], b"\n".join(p.content.strip() for p in good))))
                    parsed.extend(p.payload_id for p in good)
                except ParseError as exc:
                    for p in good:
                        quarantine(p, exc)
    return frames, quarantined, parsed


def _nameplates(registry: pd.DataFrame) -> pd.Series:
    nameplate = registry.set_index("device_id")["rated_kw"]
    return nameplate[~nameplate.index.duplicated()]


def normalize_day(
    payloads: list[LandedPayload],
    registry: pd.DataFrame,
    *,
    day_start: pd.Timestamp,
    believed_at: pd.Timestamp,
    sources: list[str],
    collection: pd.DataFrame | None = None,
) -> DayResult:
    """Parse, assign devices, complete the grid and flag one day. Never raises on a bad payload.

    collection: collection_starts() of the snapshot-only sources; intervals before a device's
    collection began are left out of the gap check and its review runs (DayResult.stats).

    Same result as `normalize_day_reference`, at fleet scale: the bodies of each endpoint that
    has a batch reader (telemetry/batch/) are read together into arrays, everything else one
    payload at a time, and the grid and flags are computed on arrays (dense.complete_day).
    """
    day_end = day_start + pd.Timedelta(days=1)
    keys = SeriesKeys()
    device_of = _device_lookup(registry)
    blocks: list[RowBlock] = []
    parsed: list[int] = []
    readers = batch_readers()
    batches: dict[tuple[str, str], list[int]] = {}
    singly: list[tuple[int, LandedPayload]] = []
    for k, p in enumerate(payloads):
        if (p.source, p.endpoint) in readers:
            batches.setdefault((p.source, p.endpoint), []).append(k)
        else:
            singly.append((k, p))
    zone_of = registry.drop_duplicates("site_id").set_index("site_id")["timezone"]
    for (source, endpoint), positions in batches.items():
        group = [payloads[k] for k in positions]
        sites = [p.site_id or "unknown" for p in group]
        received = utc_ns([p.received_at for p in group])
        received -= received % 1000  # microseconds, as parse_payload and the warehouse keep them
        context = BatchContext(site_ids=sites, timezones=[zone_of.get(s) for s in sites], received_ns=received)
        try:
            batch = readers[(source, endpoint)]([p.content for p in group], context)
        except Exception:  # noqa: BLE001 - a bug here must not cost the day: every body goes one at a time
            singly.extend(zip(positions, group))
            continue
        left = np.ones(len(positions), dtype=bool)
        left[batch.taken] = False
        singly.extend((positions[i], group[i]) for i in np.flatnonzero(left))
        parsed.extend(group[i].payload_id for i in batch.taken)
        order = np.asarray(positions, dtype=np.int64)
        for part in batch.parts:
            row_source = part.source or source
            codes = np.array([keys.code(sites[i], device_of.get((sites[i], part.channel), sites[i]), row_source,
                                        part.channel) for i in part.seg_body], dtype=np.int64)
            blocks.append(RowBlock(seg_series=codes, seg_rows=part.seg_rows, seg_interval_s=part.seg_interval_s,
                                   seg_received_ns=received[part.seg_body], seg_order=order[part.seg_body],
                                   start_ns=part.start_ns, value=part.value, quality=part.quality,
                                   sorted_grid=part.sorted_grid))
    singly.sort(key=lambda kp: kp[0])
    frames, quarantined, parsed_singly = _parse_singly(singly, registry, len(payloads))
    parsed.extend(parsed_singly)
    assign = device_assigner(registry)
    for order, frame in frames:
        if len(frame):
            blocks.append(RowBlock.from_frame(assign(frame), keys, order))
    day = complete_day(blocks, keys, expected_series(registry, sources), day_start=day_start, day_end=day_end,
                       believed_at=believed_at, nameplate_kw=_nameplates(registry))
    other = other_length_items(other_length_reports(blocks, keys, day, day_start=day_start, day_end=day_end))
    return _result(day.frame(), _with(day.review(), other), quarantined, parsed, collection)


def _with(review: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    return review if other.empty else pd.concat([review, other], ignore_index=True)


def _result(rows: pd.DataFrame, review: pd.DataFrame, quarantined: list, parsed: list,
            collection: pd.DataFrame | None) -> DayResult:
    """The DayResult, its gap runs starting where collection began (none before it is a gap)."""
    result = DayResult(rows=rows, review=review, quarantined=quarantined, parsed_ids=parsed, collection=collection)
    if collection is not None:
        result.review = collected_gap_runs(review, rows, result.not_collected())
    return result


def normalize_day_reference(
    payloads: list[LandedPayload],
    registry: pd.DataFrame,
    *,
    day_start: pd.Timestamp,
    believed_at: pd.Timestamp,
    sources: list[str],
    collection: pd.DataFrame | None = None,
) -> DayResult:
    """The readable definition of `normalize_day`: every payload through parse_payload, then the
    pandas quality functions. Too slow for a fleet (about 200 s for 10,000 sites); tests hold
    `normalize_day` equal to it."""
    day_end = day_start + pd.Timedelta(days=1)
    frames, quarantined, parsed = _parse_singly(list(enumerate(payloads)), registry, len(payloads))
    rows = assign_devices(pd.concat([empty_frame()] + [f for _, f in frames], ignore_index=True), registry)
    expected = expected_series(registry, sources)
    full = complete_grid(rows, expected, day_start=day_start, day_end=day_end, believed_at=believed_at)
    flagged = flag_suspect(full, _nameplates(registry))
    other = other_length_items(other_length_rows(rows, full, day_start=day_start, day_end=day_end))
    return _result(flagged[CANONICAL_COLUMNS], _with(review_items(flagged), other), quarantined, parsed, collection)
