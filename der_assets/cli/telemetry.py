"""`der normalize`: vendor payload files to canonical interval rows (docs/design.md, "File contracts")."""

from __future__ import annotations

from pathlib import Path

import click

from der_assets.cli.base import cli, progress, require_file
from der_assets.errors import UserError, ValidationFailed


@cli.command("normalize")
@click.option("--source", required=True,
              help="solaredge, enphase, sma, sonnen, fronius, sunspec, generac, greenbutton or utility_csv "
                   "(whose endpoint is the layout, e.g. sce).")
@click.option("--endpoint", required=True, help="The vendor's own name for the call, e.g. energyDetails.")
@click.option("--tz", default=None, help="The site's IANA time zone, for vendors that send local time.")
@click.option("--site-id", default="unknown", show_default=True)
@click.option("--device-id", default=None)
@click.option("--received-at", default=None, help="RFC 3339 time the payload arrived (default: now).")
@click.option("--nameplate-kw", type=click.FloatRange(min=0, min_open=True), default=None,
              help="The PV inverter's rated AC kW (registry rated_kw): PV energy it cannot make is flagged suspect.")
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(path_type=Path))
def normalize(source: str, endpoint: str, tz: str | None, site_id: str, device_id: str | None,
              received_at: str | None, nameplate_kw: float | None, files: tuple[Path, ...]) -> None:
    """Print the canonical interval CSV for payload files of one source, endpoint and site.

    Several files give one CSV (one header, the files' rows in the order given); a bad file
    stops the command before anything is printed.
    """
    import datetime as dt

    when = None
    if received_at:
        try:
            when = dt.datetime.fromisoformat(received_at.replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"--received-at {received_at!r} is not an RFC 3339 time") from None
        if when.tzinfo is None:
            raise UserError(f"--received-at {received_at!r} needs a UTC offset")
    for file in files:
        require_file(file)
    with progress(len(files) + 1, items=len(files) > 1) as bar:
        bar.step("starting")
        import pandas as pd

        from der_assets.inputs import read_input_bytes
        from der_assets.telemetry import ParseError, parse_payload, to_csv

        when = pd.Timestamp(when) if when is not None else pd.Timestamp.now(tz="UTC").floor("s")
        frames, said = [], []
        for file in files:
            bar.step(f"{file.name}")
            payload = read_input_bytes(file, "a vendor payload file")  # refused if still being written
            notes: list[str] = []
            try:
                frames.append(parse_payload(source, endpoint, payload, site_id=site_id, device_id=device_id,
                                            tz=tz, received_at=when, nameplate_kw=nameplate_kw, notes=notes))
                said.extend(f"{file}: {note}" for note in notes)  # what was dropped or assumed, on stderr
            except ParseError as exc:
                raise ValidationFailed(f"{file}: {exc}", []) from None
            except (KeyError, ValueError) as exc:
                raise UserError(f"{file}: {exc}") from None
        text = to_csv(frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True))
    click.echo(text, nl=False)
    for line in said:
        click.echo(line, err=True)
