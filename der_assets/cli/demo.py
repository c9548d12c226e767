"""`der demo`: demo data."""

from __future__ import annotations

from pathlib import Path

import click

from der_assets.cli.base import cli, progress


@cli.group()
def demo() -> None:
    """Demo data."""


@demo.command("fleet")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Registry file to write (.csv or .xlsx).")
@click.option("--sites", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
def demo_fleet_cmd(out: Path, sites: int, seed: int) -> None:
    """Write the demo fleet as an importable registry file."""
    with progress(3) as bar:
        bar.step("starting")
        from der_assets.registry.demo import demo_fleet
        from der_assets.registry.files import write_registry_file

        bar.step(f"drawing {sites} sites")
        fleet = demo_fleet(sites, seed)
        bar.step(f"writing {out.name}")
        write_registry_file(fleet, out)
    click.echo(f"wrote {sites} sites ({len(fleet)} devices) to {out}")


_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(click.ParamType):
    """`10m`, `1h`, `1h30m`, `90s`: seconds as a float."""

    name = "duration"

    def convert(self, value, param, ctx) -> float:
        import re

        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration like 10m, 1h or 1h30m", param, ctx)
        return sum(float(n) * _UNIT_S[u] for n, u in parts)


@demo.command("vtn")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8788, show_default=True,
              help="OpenADR and admin port (0 picks a free one).")
@click.option("--ready-file", type=click.Path(path_type=Path), default=None,
              help="Where to write the VTN's URLs and admin token (default: $DER_HOME/vtn_ready.json).")
@click.option("--ven-name", default="der-ven", show_default=True, help="The VEN the demo events are for.")
@click.option("--poll-s", type=click.IntRange(min=1, max=3600), default=2, show_default=True,
              help="Poll period the VTN asks its VENs for, whole seconds (openleadr reads a fraction as 0).")
def demo_vtn_cmd(host: str, port: int, ready_file: Path | None, ven_name: str, poll_s: int) -> None:
    """Run the demo fleet's local OpenADR 2.0b VTN until interrupted (`der dev` starts it)."""
    import asyncio
    import signal

    from der_assets import config
    from der_assets.dispatch.intake.service import configure_logging
    from der_assets.errors import UserError
    from der_assets.simulator.vtn import run_vtn

    configure_logging()
    ready_file = ready_file or config.data_home() / "vtn_ready.json"

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_vtn(ready_file=ready_file, stop=stop, host=host, port=port, ven_name=ven_name, poll_s=poll_s)

    try:
        asyncio.run(main())
    except OSError as exc:
        raise UserError(f"the demo VTN cannot listen on {host}:{port} ({exc.strerror}); pass --port") from None


@demo.command("event")
@click.option("--in", "in_s", type=Duration(), default="10m", show_default=True,
              help="How soon the event starts (rounded up to --align-min, as ISO events start on the quarter-hour).")
@click.option("--kw", type=click.FloatRange(min=0, min_open=True), required=True, help="kW the fleet must deliver.")
@click.option("--duration", "duration_s", type=Duration(), default="1h", show_default=True)
@click.option("--resource", "resource_id", default=None, help="Resource the event targets (default: the demo fleet's).")
@click.option("--interval-min", type=click.IntRange(min=1, max=60), default=5, show_default=True,
              help="Length of each setpoint interval in the event's signal.")
@click.option("--align-min", type=click.IntRange(min=1, max=60), default=15, show_default=True,
              help="Round the start up to a multiple of this many minutes (UTC).")
@click.option("--vtn-ready", type=click.Path(path_type=Path), default=None,
              help="The demo VTN's ready file (default: $DER_HOME/vtn_ready.json, written by `der dev`).")
@click.option("--wait-s", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Wait this long for the VEN to record the event in the store (0: do not wait).")
@click.option("--url", envvar="DER_WAREHOUSE_URL", default=None, help="Warehouse URL (to wait on the store).")
def demo_event_cmd(in_s, kw, duration_s, resource_id, interval_min, align_min, vtn_ready, wait_s, url) -> None:
    """Issue an OpenADR event on the demo VTN; the intake's VEN records it and a dispatch run follows."""
    import datetime as dt
    import json
    import time

    from der_assets import config
    from der_assets.errors import UserError, ValidationFailed

    vtn_ready = vtn_ready or config.data_home() / "vtn_ready.json"
    try:
        ready = json.loads(vtn_ready.read_text())
        admin_url, token = ready["admin_url"], ready["admin_token"]
    except FileNotFoundError:
        raise UserError(f"{vtn_ready}: no such file; no demo VTN is running (`der dev` starts one)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{vtn_ready}: not a demo VTN ready file ({exc})") from None
    if duration_s <= 0 or duration_s % (interval_min * 60):
        raise UserError(f"--duration {duration_s / 60:g} min is not a whole number of {interval_min}-minute intervals")
    step = dt.timedelta(minutes=align_min)
    earliest = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=in_s)
    epoch = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    start = epoch + -((epoch - earliest) // step) * step  # ceil to the step
    if resource_id is None:
        from der_assets.registry.demo import DEMO_RESOURCE_ID

        resource_id = DEMO_RESOURCE_ID

    import httpx

    request = {"start": start.isoformat().replace("+00:00", "Z"), "duration_s": duration_s, "kw": kw,
               "resource_id": resource_id, "interval_minutes": interval_min}
    try:
        response = httpx.post(f"{admin_url}/events", json=request, headers={"Authorization": f"Bearer {token}"},
                              timeout=10)
    except httpx.TransportError as exc:
        raise UserError(f"the demo VTN at {admin_url} does not answer ({type(exc).__name__}); is `der dev` running?") from None
    if response.status_code != 201:
        try:
            reason = response.json().get("error", response.text)
        except ValueError:
            reason = response.text
        raise UserError(f"the demo VTN refused the event ({response.status_code}): {reason}")
    event = response.json()
    click.echo(f"OpenADR event {event['event_id']}: {kw:g} kW for {resource_id} from {event['start']} to "
               f"{event['end']} issued on {ready.get('vtn_url', admin_url)}")
    if wait_s <= 0:
        return

    from der_assets.cli.base import engine_for
    from der_assets.dispatch.intake.store import latest

    engine = engine_for(url)
    deadline = time.monotonic() + wait_s
    while (row := latest(engine, event["event_id"])) is None:
        try:
            issued = httpx.get(f"{admin_url}/events", headers={"Authorization": f"Bearer {token}"}, timeout=5).json()
            opts = next((e["opt"] for e in issued if e["event_id"] == event["event_id"]), {})
        except (httpx.TransportError, ValueError, KeyError, TypeError):
            opts = {}
        if opts and all(v == "optOut" for v in opts.values()):
            raise ValidationFailed(f"the VEN opted out of {event['event_id']}: it refused the event (the intake log "
                                   f"says why, e.g. a resource not in the registry)", [])
        if time.monotonic() > deadline:
            raise ValidationFailed(
                f"the VEN has not recorded {event['event_id']} within {wait_s:g} s; is `der intake` running "
                f"with DER_OPENADR_VTN_URL={ready.get('vtn_url')}? (see $DER_HOME/intake_ready.json)", [])
        time.sleep(0.5)
    click.echo(f"recorded by the VEN: instruction {row.instruction_id} modification {row.modification} {row.status} "
               f"({row.channel}); the dispatch sensor starts its run within seconds (`der instruction show "
               f"{row.instruction_id}`)")
