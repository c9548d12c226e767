"""`der intake`: the running instruction intake (webhook, inbox watcher, OpenADR VEN)."""

from __future__ import annotations

from pathlib import Path

import click

from der_assets.cli.base import cli, engine_for, url_option


@cli.command("intake")
@click.option("--host", default=None, help="Webhook host (default: $DER_INTAKE_HOST, else 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Webhook port (default: $DER_INTAKE_PORT, else 8787; 0 picks a free one).")
@click.option("--inbox", type=click.Path(path_type=Path), default=None,
              help="Inbox folder (default: $DER_DISPATCH_INBOX, else $DER_HOME/dispatch_inbox).")
@click.option("--ready-file", type=click.Path(path_type=Path), default=None,
              help="Health lines (default: $DER_INTAKE_READY_FILE, else $DER_HOME/intake_ready.json).")
@click.option("--poll-s", type=float, default=None, help="Inbox scan period, s (default: $DER_INTAKE_POLL_S, else 2).")
@click.option("--no-webhook", is_flag=True, help="Run only the inbox watcher and the VEN.")
@click.option("--demo", is_flag=True, hidden=True,
              help="Deterministic demo webhook secrets, written into the ready file (what `der dev` runs).")
@url_option
def intake(host, port, inbox, ready_file, poll_s, no_webhook, demo, url) -> None:
    """Run the instruction intake until interrupted.

    The signed webhook (POST /instructions, GET /health), the inbox watcher and, when
    $DER_OPENADR_VTN_URL is set, the OpenADR 2.0b VEN; every instruction is checked against
    the registry's resources. Secrets: $DER_WEBHOOK_HMAC_SECRET and/or $DER_WEBHOOK_BEARER_TOKEN.
    """
    import asyncio
    import signal

    from der_assets.dispatch.intake.service import IntakeService, IntakeSettings, bind, configure_logging

    settings = IntakeSettings.from_env(demo=demo, host=host, port=port, inbox=inbox, ready_file=ready_file,
                                       poll_s=poll_s, webhook=False if no_webhook else None)
    sock = bind(settings.host, settings.port) if settings.webhook else None  # a busy port is one line, before anything runs
    engine = engine_for(url)
    configure_logging()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await IntakeService(engine, settings).run(stop, sock=sock)

    asyncio.run(main())
