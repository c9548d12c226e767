"""One UTC day of vendor telemetry: landed payloads in, the canonical quality-flagged series out.

Pure: the caller (the Dagster asset) reads the landed bytes and writes the results. Parse
failures do not stop the day: each bad payload is reported (quarantined) and the other sites
carry on; their intervals simply show as `missing` unless another payload covers them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from der_assets.telemetry import ParseError, empty_frame, parse_payload
from der_assets.telemetry.quality import complete_grid, flag_suspect, lateness_s, review_items
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

    def stats(self) -> dict[str, float]:
        rows = self.rows
        n = len(rows)
        missing = int((rows["quality"] == "missing").sum())
        late = lateness_s(rows)
        return {
            "rows": n,
            "missing": missing,
            "gap_pct": round(100.0 * missing / n, 3) if n else 0.0,
            "suspect": int((rows["quality"] == "suspect").sum()),
            "late": int((late > LATE_AFTER_S).sum()),
            "quarantined_payloads": len(self.quarantined),
        }


def expected_series(registry: pd.DataFrame, sources: list[str]) -> pd.DataFrame:
    """Every (site, device, source, channel) the registry says should report, with its interval."""
    devices = registry[registry["telemetry_source"].isin(sources) & (registry["device_status"] == "active")
                       & registry["device_type"].isin(list(DEVICE_CHANNELS))]
    rows = [
        {"site_id": d.site_id, "device_id": d.device_id, "source": d.telemetry_source, "channel": channel,
         "interval_s": CHANNEL_INTERVAL_S.get((d.telemetry_source, channel),
                                              DEFAULT_INTERVAL_S.get(d.telemetry_source, 300))}
        for d in devices.itertuples() for channel in DEVICE_CHANNELS[d.device_type]
    ]
    return pd.DataFrame(rows, columns=["site_id", "device_id", "source", "channel", "interval_s"])


def assign_devices(rows: pd.DataFrame, registry: pd.DataFrame) -> pd.DataFrame:
    """Give each parsed row its registry device: PV to the site's inverter, battery and SoC to its
    battery; grid and load stay on the site (the meter at the grid connection)."""
    if rows.empty:
        return rows
    devices = registry[registry["device_type"].isin(list(DEVICE_CHANNELS))]
    by_type = devices.set_index(["site_id", "device_type"])["device_id"]
    by_type = by_type[~by_type.index.duplicated()]
    kind = rows["channel"].map({"pv_kwh": "pv_inverter", "battery_kwh": "battery", "soc_pct": "battery"})
    keys = pd.MultiIndex.from_arrays([rows["site_id"], kind])
    mapped = pd.Series(by_type.reindex(keys).to_numpy(), index=rows.index)
    return rows.assign(device_id=mapped.fillna(rows["site_id"]))


def normalize_day(
    payloads: list[LandedPayload],
    registry: pd.DataFrame,
    *,
    day_start: pd.Timestamp,
    believed_at: pd.Timestamp,
    sources: list[str],
) -> DayResult:
    """Parse, assign devices, complete the grid and flag one day. Never raises on a bad payload."""
    day_end = day_start + pd.Timedelta(days=1)
    sites = registry.drop_duplicates("site_id").set_index("site_id")
    frames, quarantined, parsed = [empty_frame()], [], []

    def parse(p: LandedPayload, content: bytes):
        tz = sites["timezone"].get(p.site_id) if p.site_id in sites.index else None
        return parse_payload(p.source, p.endpoint, content, site_id=p.site_id or "unknown", tz=tz,
                             received_at=p.received_at.to_pydatetime())

    def quarantine(p: LandedPayload, exc: Exception) -> None:
        quarantined.append({"payload_id": p.payload_id, "source": p.source, "endpoint": p.endpoint,
                            "site_id": p.site_id, "error": str(exc)})

    logs: dict[tuple, list[LandedPayload]] = {}
    for p in payloads:
        if (p.source, p.endpoint) in SNAPSHOT_ENDPOINTS:
            logs.setdefault((p.source, p.endpoint, p.site_id), []).append(p)
            continue
        try:
            frames.append(parse(p, p.content))
            parsed.append(p.payload_id)
        except ParseError as exc:
            quarantine(p, exc)
    for group in logs.values():
        group = sorted(group, key=lambda p: (p.received_at, p.payload_id))
        try:
            frames.append(parse(group[-1], b"\n".join(p.content.strip() for p in group)))
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
                    frames.append(parse(good[-1], b"\n".join(p.content.strip() for p in good)))
                    parsed.extend(p.payload_id for p in good)
                except ParseError as exc:
                    for p in good:
                        quarantine(p, exc)
    rows = assign_devices(pd.concat(frames, ignore_index=True), registry)
    expected = expected_series(registry, sources)
    full = complete_grid(rows, expected, day_start=day_start, day_end=day_end, believed_at=believed_at)
    nameplate = registry.set_index("device_id")["rated_kw"]
    flagged = flag_suspect(full, nameplate[~nameplate.index.duplicated()])
    return DayResult(rows=flagged[CANONICAL_COLUMNS], review=review_items(flagged), quarantined=quarantined,
                     parsed_ids=parsed)
