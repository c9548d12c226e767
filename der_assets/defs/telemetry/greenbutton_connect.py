"""Green Button Connect in Dagster: the utility's ESPI API pulled, landed raw, and its days rebuilt.

The AMI inbox's twin for utilities that offer Connect (DER_AMI_CONNECT_EDCS names them by the
registry's `edc`): each tick pulls what the subscriptions published since their cursors (the
sensor's cursor), lands every answer as source greenbutton / endpoint espi before anything else,
and asks meter_intervals to rebuild each UTC day an answer touched, at the AMI priority (-2).
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


def connect_meters(registry: pd.DataFrame, edcs: frozenset) -> tuple[dict[str, str], dict[str, str]]:
    """(meter id -> site id, site id -> time zone) of the sites whose utility is on Connect."""
    sites = registry.drop_duplicates("site_id").dropna(subset=["meter_id"])
    if "*" not in edcs:
        sites = sites[sites["edc"].fillna("").astype(str).str.upper().isin(edcs)]
    return (dict(zip(sites["meter_id"].astype(str), sites["site_id"], strict=True)),
            dict(zip(sites["site_id"], sites["timezone"], strict=True)))


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


async def _pull(settings, cursors, *, now, site_of, tz_of) -> gbc.PullOutcome:
    async with gbc.ConnectClient(settings) as client:
        return await gbc.pull(client, cursors, now=now, site_of=site_of.get, tz_of=tz_of.get,
                              max_requests=MAX_REQUESTS_PER_TICK)


@dg.sensor(job=ami_job, minimum_interval_seconds=120, default_status=dg.DefaultSensorStatus.RUNNING)
def greenbutton_connect_sensor(context: dg.SensorEvaluationContext, warehouse: WarehouseResource,
                               clock: ClockResource):
    """Pull Green Button Connect for the utilities on it, land each answer raw, rebuild the days it covers."""
    edcs = ami_connect_edcs()
    if edcs is None:
        return dg.SkipReason("no utility is on Green Button Connect (DER_AMI_CONNECT_EDCS unset): "
                             "AMI comes from the inbox")
    try:
        settings = gbc.connect_settings()
    except SettingsError as exc:
        return dg.SkipReason(str(exc))
    engine = warehouse.engine()
    site_of, tz_of = connect_meters(current_registry(engine), edcs)
    if not site_of:
        return dg.SkipReason(f"no registry site with a meter has its edc in {sorted(edcs)}")
    try:
        outcome = asyncio.run(_pull(settings, gbc.cursors_from_json(context.cursor), now=clock.clock().now(),
                                    site_of=site_of, tz_of=tz_of))
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
        context.log.warning(f"Green Button Connect, usage point {failure['usage_point']} (site "
                            f"{failure['site_id']}): {failure['error']}")
    context.log.info(f"Green Button Connect: {outcome.requests} requests, {len(outcome.payloads)} answers with data, "
                     f"{len(outcome.failures)} failures, {outcome.rounds_finished} subscription rounds finished")
    if not days:
        return dg.SkipReason(f"nothing new on Green Button Connect ({outcome.requests} requests)")
    return dg.SensorResult(run_requests=[dg.RunRequest(partition_key=day, run_key=f"gbc-{day}-{last}",
                                                       tags={"dagster/priority": AMI_PRIORITY})
                                         for day, last in sorted(days.items())])
