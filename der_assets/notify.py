"""Operator alerts: failed checks, failed runs and under-delivery reach people, not just the UI.

Open-source Dagster has no alert policies, so the project sends its own. An alert is a small
JSON object POSTed to DER_ALERT_WEBHOOK_URL (Slack, Teams, PagerDuty and most tools accept a
webhook) and/or mailed through DER_ALERT_SMTP_HOST to DER_ALERT_EMAIL_TO. Every alert is also
stored in the warehouse's `alerts` table (`der alerts list`, and the `operator_alerts` asset),
with a readable sentence and, when it names a run or a check, a link to it in the Dagster UI
(DAGSTER_WEBSERVER_URL or DER_UI_URL, default http://127.0.0.1:3000). Neither sending nor
storing ever raises: an alert that cannot be delivered or stored is logged, and the run that
raised it carries on.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
from email.message import EmailMessage
from urllib.parse import quote, urlencode

import httpx

log = logging.getLogger(__name__)

UI_URL_ENVS = ("DAGSTER_WEBSERVER_URL", "DER_UI_URL")
DEFAULT_UI_URL = "http://127.0.0.1:3000"


def ui_url() -> str:
    """The Dagster UI's base URL, as operators reach it."""
    for name in UI_URL_ENVS:
        if os.environ.get(name):
            return os.environ[name].rstrip("/")
    return DEFAULT_UI_URL


def run_url(run_id: str) -> str:
    return f"{ui_url()}/runs/{run_id}"


def check_url(asset: str, check: str) -> str:
    """The check's page in the UI; `asset` is the key as the UI writes it (parts joined by '/')."""
    path = "/".join(quote(part, safe="") for part in asset.split("/"))
    return f"{ui_url()}/assets/{path}?{urlencode({'view': 'checks', 'checkDetail': check})}"


def alert(kind: str, title: str, **details: object) -> list[str]:
    """Send one alert to every configured channel and store it; returns the channels that took it.

    `run_id` in the details links the alert to the run, `asset` and `check` to the check.
    """
    plain = {k: _plain(v) for k, v in details.items()}
    links = {}
    if plain.get("run_id"):
        links["run_url"] = run_url(str(plain["run_id"]))
    if plain.get("asset") and plain.get("check"):
        links["check_url"] = check_url(str(plain["asset"]), str(plain["check"]))
    text = describe(title, plain, links)
    payload = {"kind": kind, "title": title, "text": text, "details": plain, **links}
    delivered = []
    url = os.environ.get("DER_ALERT_WEBHOOK_URL")
    if url:
        try:
            response = httpx.post(url, json=payload, timeout=10.0)
            response.raise_for_status()
            delivered.append("webhook")
        except httpx.HTTPError as exc:
            log.error("alert webhook %s failed: %s", url, exc)
    host, to = os.environ.get("DER_ALERT_SMTP_HOST"), os.environ.get("DER_ALERT_EMAIL_TO")
    if host and to:
        message = EmailMessage()
        message["Subject"] = f"[der_assets] {title}"
        message["From"] = os.environ.get("DER_ALERT_EMAIL_FROM", "der-assets@localhost")
        message["To"] = to
        message.set_content(f"{text}\n\n{json.dumps(payload, indent=2)}")
        try:
            with smtplib.SMTP(host, int(os.environ.get("DER_ALERT_SMTP_PORT", "25")), timeout=10) as smtp:
                smtp.send_message(message)
            delivered.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            log.error("alert email via %s failed: %s", host, exc)
    log.warning("ALERT %s: %s (delivered: %s)", kind, text, ", ".join(delivered) or "log only")
    _store(kind, title, text, plain, links, delivered)
    return delivered


def describe(title: str, details: dict, links: dict) -> str:
    """The alert as one readable sentence: the title, then each detail as 'name value', then the links."""
    said = [f"{k.replace('_', ' ')} {f'{v:.6g}' if isinstance(v, float) else v}" for k, v in details.items()
            if v not in (None, "") and k not in ("run_id", "asset", "check")]
    text = title + (f" ({'; '.join(said)})" if said else "")
    if "run_url" in links:
        text += f". Run: {links['run_url']}"
    if "check_url" in links:
        text += f". Check: {links['check_url']}"
    return text


def _store(kind: str, title: str, text: str, details: dict, links: dict, delivered: list[str]) -> None:
    """Keep the alert in the warehouse; a warehouse that cannot take it is logged, never raised."""
    try:
        from der_assets import config
        from der_assets.warehouse import connect_warehouse
        from der_assets.warehouse.schema import alerts

        engine = connect_warehouse(config.warehouse_url())
        try:
            with engine.begin() as conn:
                conn.execute(alerts.insert().values(
                    kind=kind, title=title, text=text, details_json=json.dumps(details),
                    run_id=str(details["run_id"]) if details.get("run_id") else None, run_url=links.get("run_url"),
                    check_url=links.get("check_url"), channels=",".join(delivered),
                    created_at=dt.datetime.now(dt.UTC)))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - an alert must never fail the run that raised it
        log.error("alert %r could not be stored: %s", title, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _plain(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "value") and hasattr(value, "name"):  # an enum: its name, not its repr
        return value.name
    return str(value)


def stored_alerts(engine, *, kind: str | None = None, since: dt.datetime | None = None, limit: int = 50):
    """The latest stored alerts, newest first (a pandas frame)."""
    import pandas as pd
    import sqlalchemy as sa

    from der_assets.warehouse.schema import alerts

    query = sa.select(alerts).order_by(alerts.c.alert_id.desc()).limit(limit)
    if kind:
        query = query.where(alerts.c.kind == kind)
    if since:
        query = query.where(alerts.c.created_at >= since)
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[c.name for c in alerts.columns])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame
