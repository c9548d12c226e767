"""Green Button Connect in Dagster: the utility's ESPI API pulled, landed raw, and its days rebuilt.

The AMI inbox's twin for utilities that offer Connect (DER_AMI_CONNECT_EDCS names them by the
registry's `edc`): each tick pulls what the subscriptions published since their cursors (the
sensor's cursor), lands every answer raw as source greenbutton / endpoint espi (read first only to
learn the window it covers, as the inbox sensor does; a bad answer is landed all the same), and asks
meter_intervals to rebuild each UTC day an answer touched, at the AMI priority (-2).
Meters of the other utilities stay with the inbox.
"""

import asyncio

import dagster as dg
import pandas as pd

from der_assets.connectors import greenbutton_connect as gbc
from der_assets.connectors.http import ConnectorError
from der_assets.connectors.landing import land
from der_assets.connectors.payloads import RawPayload
from der_assets.connectors.settings import SettingsError, ami_connect_edcs
from der_assets.defs.resources import ClockResource, WarehouseResource
from der_assets.defs.telemetry.sensors import AMI_PRIORITY, ami_job
from der_assets.registry.store import current_registry
from der_assets.telemetry import ParseError, parse_payload

MAX_REQUESTS_PER_TICK = 40  # inside one minute's default budget (60), so a tick never waits on the gate


def custodians(registry: pd.DataFrame, edcs: frozenset) -> list[tuple[gbc.ConnectSettings, dict, dict]]:
    """(settings, meter id -> site id, site id -> time zone) per data custodian of the utilities on Connect.

    Each utility's settings are its own DER_GBC_<EDC>_* over DER_GBC_*; utilities that share a
    custodian and client are pulled together. SettingsError names the utility whose settings lack.
    """
    sites = registry.drop_duplicates("site_id").dropna(subset=["meter_id"])
    edc = sites["edc"].fillna("").astype(str)
    if "*" in edcs:
        groups = [(gbc.connect_settings(), sites)]
    else:
        groups = []
        for name in sorted(set(edc[edc.str.upper().isin(edcs)])):
            try:
                groups.append((gbc.connect_settings(name), sites[edc == name]))
            except SettingsError as exc:
                raise SettingsError(f"Green Button Connect for {name}: {exc}") from None
    merged: dict[tuple[str, str], tuple[gbc.ConnectSettings, dict, dict]] = {}
    for settings, mine in groups:
        _, site_of, tz_of = merged.setdefault((settings.base_url, settings.client_id), (settings, {}, {}))
        site_of.update(zip(mine["meter_id"].astype(str), mine["site_id"], strict=True))
        tz_of.update(zip(mine["site_id"], mine["timezone"], strict=True))
    return list(merged.values())


def land_answer(engine, payload: RawPayload, log) -> tuple[int, list[str]]:
    """Land one answer (its data window read from its rows) and name the UTC days it touches."""
    window = (None, None)
    try:
        rows = parse_payload(payload.source, payload.endpoint, payload.content, **payload.parse_kwargs())
        if not rows.empty:
            end = rows["interval_start"].max() + pd.to_timedelta(rows["interval_s"].max(), unit="s")
            window = (rows["interval_start"].min(), end)
    except ParseError as exc:
        # landed anyway: meter_intervals quarantines it with this message
        log.warning(f"Green Button Connect, site {payload.site_id}: {exc}")
    landed = land(engine, payload.content, source=payload.source, endpoint=payload.endpoint, site_id=payload.site_id,
                  received_at=payload.received_at,
                  window_start=None if window[0] is None else window[0].to_pydatetime(),
                  window_end=None if window[1] is None else window[1].to_pydatetime())
    if window[0] is None:
        received = pd.Timestamp(payload.received_at)
        window = (received.floor("D"), received.floor("D") + pd.Timedelta(days=1))
    days = pd.date_range(window[0].floor("D"), window[1] - pd.Timedelta(seconds=1), freq="D")
    return landed.payload_id, [d.strftime("%Y-%m-%d") for d in days]


async def _pull(groups, cursors, *, now) -> gbc.PullOutcome:
    """Every custodian in turn, within one tick's request budget; their cursors in one map (keyed by URI)."""
    out = gbc.PullOutcome(cursors=dict(cursors))
    errors = []
    for settings, site_of, tz_of in groups:
        left = MAX_REQUESTS_PER_TICK - out.requests
        if left <= 0:
            break
        try:
            async with gbc.ConnectClient(settings) as client:
                got = await gbc.pull(client, out.cursors, now=now, site_of=site_of.get, tz_of=tz_of.get,
                                     max_requests=left)
        except (ConnectorError, SettingsError) as exc:  # this custodian fails alone
            errors.append(exc)
            out.failures.append({"authorization": settings.base_url, "site_id": None, "usage_point": None,
                                 "error": str(exc).splitlines()[0][:300]})
            continue
        out.payloads += got.payloads
        out.failures += got.failures
        out.skipped += got.skipped
        out.cursors, out.rounds_finished = got.cursors, out.rounds_finished + got.rounds_finished
        out.requests += got.requests
    if errors and len(errors) == len(groups):
        raise errors[0]
    return out


@dg.sensor(job=ami_job, minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.RUNNING)
def greenbutton_connect_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                               clock: ClockResource):
    """Pull Green Button Connect for the utilities on it, land each answer raw, rebuild the days it covers."""
    edcs = ami_connect_edcs()
    if edcs is None:
        return dg.SkipReason("no utility is on Green Button Connect (DER_AMI_CONNECT_EDCS unset): "
                             "AMI comes from the inbox")
    engine = warehouse.engine()
    try:
        groups = custodians(current_registry(engine), edcs)
    except SettingsError as exc:
        return dg.SkipReason(str(exc))
    if not any(site_of for _, site_of, _ in groups):
        return dg.SkipReason(f"no registry site with a meter has its edc in {sorted(edcs)}")
    try:
        outcome = asyncio.run(_pull(groups, gbc.cursors_from_json(context.cursor), now=clock.clock().now()))
    except (ConnectorError, SettingsError) as exc:
        context.log.error(f"Green Button Connect: {exc}")
        return dg.SkipReason(f"Green Button Connect: {str(exc).splitlines()[0][:300]}")
    days: dict[str, int] = {}
    for payload in outcome.payloads:
        payload_id, touched = land_answer(engine, payload, context.log)
        for day in touched:
            days[day] = max(days.get(day, 0), payload_id)
    context.update_cursor(gbc.cursors_to_json(outcome.cursors))
    for failure in outcome.failures:
        where = (f"authorization {failure['authorization']}" if failure.get("authorization")
                 else f"usage point {failure['usage_point']} (site {failure['site_id']})")
        context.log.warning(f"Green Button Connect, {where}: {failure['error']}")
    context.log.info(f"Green Button Connect: {outcome.requests} requests, {len(outcome.payloads)} answers with data, "
                     f"{len(outcome.failures)} failures, {outcome.rounds_finished} subscription rounds finished")
    if not days:
        return dg.SkipReason(f"nothing new on Green Button Connect ({outcome.requests} requests)")
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=day, run_key=f"gbc-{day}-{last}",
                                                       tags={"dagster/priority": AMI_PRIORITY})
                                         for day, last in sorted(days.items())])
