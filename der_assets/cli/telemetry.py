"""`der normalize`: one vendor payload to canonical interval rows."""

from __future__ import annotations

from pathlib import Path

import click

from der_assets.cli.base import cli
from der_assets.errors import UserError, ValidationFailed


@cli.command("normalize")
@click.option("--source", required=True, help="solaredge, enphase, sma, sonnen, fronius or greenbutton.")
@click.option("--endpoint", required=True, help="The vendor's own name for the call, e.g. energyDetails.")
@click.option("--tz", default=None, help="The site's IANA time zone, for vendors that send local time.")
@click.option("--site-id", default="unknown", show_default=True)
@click.option("--device-id", default=None)
@click.option("--received-at", default=None, help="RFC 3339 time the payload arrived (default: now).")
@click.argument("file", type=click.Path(path_type=Path))
def normalize(source: str, endpoint: str, tz: str | None, site_id: str, device_id: str | None,
              received_at: str | None, file: Path) -> None:
    """Print the canonical interval CSV for one payload file."""
    import datetime as dt

    from der_assets.telemetry import ParseError, normalize_to_csv

    try:
        payload = file.read_bytes()
    except OSError as exc:
        raise UserError(f"{file}: cannot be read ({exc.strerror})") from None
    when = None
    if received_at:
        try:
            when = dt.datetime.fromisoformat(received_at.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--received-at {received_at!r} is not an RFC 3339 time") from None
        if when.tzinfo is None:
            raise UserError(f"--received-at {received_at!r} needs a UTC offset")
    try:
        text = normalize_to_csv(source, endpoint, payload, site_id=site_id, device_id=device_id, tz=tz,
                                received_at=when)
    except ParseError as exc:
        raise ValidationFailed(f"{file}: {exc}", []) from None
    except (KeyError, ValueError) as exc:
        raise UserError(f"{file}: {exc}") from None
    click.echo(text, nl=False)
