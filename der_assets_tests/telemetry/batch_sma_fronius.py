"""What the SMA and Fronius batch-reader tests share: the twin's bodies of one day, asked of the
servers' own handlers as the connectors ask them (no HTTP), and the body-by-body comparison of a
reader with parse_payload."""

from __future__ import annotations

import numpy as np
import pandas as pd
from starlette.datastructures import QueryParams

from der_assets.connectors import fronius as fronius_connector
from der_assets.connectors import sma as sma_connector
from der_assets.registry.demo import demo_fleet
from der_assets.simulator.faults import FaultPlan
from der_assets.simulator.hub import ManualClock, TwinHub
from der_assets.simulator.servers import fronius as fronius_server
from der_assets.simulator.servers import sma as sma_server
from der_assets.telemetry import ParseError, parse_payload
from der_assets.telemetry.batch import BatchContext
from der_assets.telemetry.daily import LandedPayload
from der_assets.telemetry.schema import QUALITIES


def fleet_of(source: str, n_sites: int, tz: str | None = None, size: int = 120) -> pd.DataFrame:
    """The first n_sites sites of the demo fleet with a `source` device, every device of theirs
    (a site's battery may report through another vendor), moved to zone tz if given."""
    fleet = demo_fleet(size)
    sites = fleet.loc[fleet["telemetry_source"] == source, "site_id"].drop_duplicates().iloc[:n_sites]
    fleet = fleet[fleet["site_id"].isin(sites)].reset_index(drop=True)
    if tz is not None:
        fleet["timezone"] = tz
    return fleet


def day_faults(vendor: str, day: pd.Timestamp, sites: list, fifth: dict) -> dict:
    """A fault plan for one UTC day: a dropout at sites[0] (15-16 h), pv stuck at sites[1] (14-16 h),
    spiked x40 at sites[2] (17:00-17:10), everything six hours late at sites[3], and `fifth` at sites[4]."""
    d = f"{day:%Y-%m-%d}"
    rules = [
        {"kind": "dropout", "sites": sites[:1], "start": f"{d}T15:00Z", "end": f"{d}T16:00Z"},
        {"kind": "stuck", "sites": sites[1:2], "channel": "pv_kwh", "start": f"{d}T14:00Z", "end": f"{d}T16:00Z"},
        {"kind": "spike", "sites": sites[2:3], "channel": "pv_kwh", "factor": 40, "start": f"{d}T17:00Z",
         "end": f"{d}T17:10Z"},
        {"kind": "late", "sites": sites[3:4], "delay_s": 6 * 3600},
        {"sites": sites[4:5], **fifth},
    ]
    return {"seed": 2, "rules": [{"vendor": vendor, **rule} for rule in rules]}


def twin(registry: pd.DataFrame, day: pd.Timestamp, faults: dict | None = None, seed: int = 1,
         now: pd.Timestamp | None = None) -> TwinHub:
    """A hub whose clock stands at `now`, by default an hour after the UTC day (its history is all there)."""
    clock = ManualClock(now if now is not None else day + pd.Timedelta(days=1, hours=1))
    return TwinHub(registry, start=day - pd.Timedelta(days=1), clock=clock, seed=seed,
                   faults=FaultPlan.from_dict(faults) if faults else None)


def sma_bodies(hub: TwinHub, day: pd.Timestamp) -> list[tuple[str, str, bytes]]:
    """(site_id, tz, body) of every SMA plant: one Day set per plant-local day the UTC day
    overlaps (connectors/sma.py request_days), for the inverter device, with energy values."""
    out = []
    rows = hub.registry[hub.registry["telemetry_source"] == "sma"].drop_duplicates("site_id")
    for _, row in rows.iterrows():
        plant = sma_server._Plant(row, hub)
        for date, _, _ in sma_connector.request_days(day, day + pd.Timedelta(days=1), plant.tz):
            status, body = sma_server.measurement_set(hub, plant, "Day", {"Date": date, "ReturnEnergyValues": "true"},
                                                      device=True)
            assert status == 200, body
            out.append((plant.site_id, plant.tz, _json(body)))
    return out


def fronius_bodies(hub: TwinHub, day: pd.Timestamp) -> list[tuple[str, str, bytes]]:
    """(site_id, tz, body) of every Fronius site's GetArchiveData for the UTC day, with the
    parameters connectors/fronius.py pull_archive sends."""
    out = []
    rows = hub.registry[hub.registry["telemetry_source"] == "fronius"].drop_duplicates("site_id")
    for _, row in rows.iterrows():
        site = fronius_server._Site(row, hub)
        for a, b in fronius_connector.request_windows(day, day + pd.Timedelta(days=1)):
            params = [("Scope", "System"), ("SeriesType", "Detail"), ("HumanReadable", "True"),
                      ("StartDate", fronius_connector.rfc3339(a, site.tz)),
                      ("EndDate", fronius_connector.rfc3339(b, site.tz)),
                      *(("Channel", c) for c in fronius_connector.ARCHIVE_CHANNELS)]
            out.append((site.site_id, site.tz, _json(fronius_server.archive_body(hub, site, QueryParams(params)))))
    return out


def _json(body: dict) -> bytes:
    """The bytes Starlette's JSONResponse sends."""
    from starlette.responses import JSONResponse

    return bytes(JSONResponse(body).body)


def landed(items, source: str, endpoint: str, received: pd.Timestamp, first_id: int = 0) -> list[LandedPayload]:
    return [LandedPayload(first_id + i, source, endpoint, site, received, body)
            for i, (site, _, body) in enumerate(items)]


def one_body(source: str, endpoint: str, body, tz, received: pd.Timestamp):
    """parse_payload's rows per channel as (start ns, interval_s, value, quality), or None if it rejects."""
    try:
        df = parse_payload(source, endpoint, body, site_id="S", tz=tz, received_at=received)
    except ParseError:
        return None
    return {ch: (g["interval_start"].array.asi8.tolist(), g["interval_s"].tolist(), g["value"].to_numpy(),
                 g["quality"].tolist()) for ch, g in df.groupby("channel")}


def assert_reads_as_parser(reader, source: str, endpoint: str, bodies: list, tzs: list,
                           received: pd.Timestamp) -> list[int]:
    """Every body the reader takes gives parse_payload's rows, channel by channel; every body
    parse_payload rejects is left. Returns the positions taken."""
    context = BatchContext(site_ids=["S"] * len(bodies), timezones=list(tzs),
                           received_ns=np.full(len(bodies), received.value, dtype=np.int64))
    batch = reader(bodies, context)
    taken = batch.taken.tolist()
    got: dict[int, dict] = {j: {} for j in taken}
    for part in batch.parts:
        assert set(part.seg_body.tolist()) <= set(taken)
        offsets = np.r_[0, np.cumsum(part.seg_rows)]
        for k, j in enumerate(part.seg_body.tolist()):
            rows = slice(offsets[k], offsets[k + 1])
            got[j][part.channel] = (part.start_ns[rows].tolist(), [int(part.seg_interval_s[k])] * int(part.seg_rows[k]),
                                    part.value[rows], [QUALITIES[q] for q in part.quality[rows]])
            assert part.sorted_grid
            starts = part.start_ns[rows]
            assert (np.diff(starts) > 0).all() and (starts % (part.seg_interval_s[k] * 10**9) == 0).all()
    for j in taken:
        want = one_body(source, endpoint, bodies[j], tzs[j], received)
        assert want is not None, f"body {j} was taken but parse_payload rejects it"
        assert sorted(got[j]) == sorted(ch for ch, rows in want.items() if rows[0]), j
        for ch, (start, interval, value, quality) in want.items():
            g_start, g_interval, g_value, g_quality = got[j][ch]
            assert g_start == start, (j, ch)
            assert g_interval == interval, (j, ch)
            np.testing.assert_array_equal(g_value, value, err_msg=f"body {j} {ch}")
            assert g_quality == quality, (j, ch)
    return taken
