"""Operator alerts: failed checks, failed runs and under-delivery reach people, not just the UI.

Open-source Dagster has no alert policies, so the project sends its own. An alert is a small
JSON object POSTed to DER_ALERT_WEBHOOK_URL (Slack, Teams, PagerDuty and most tools accept a
webhook) and/or mailed through DER_ALERT_SMTP_HOST to DER_ALERT_EMAIL_TO. With neither set,
alerts are only logged. Sending never raises: an alert that cannot be delivered is logged, and
the run that raised it carries on.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
from email.message import EmailMessage

import httpx

log = logging.getLogger(__name__)


def alert(kind: str, title: str, **details: object) -> list[str]:
    """Send one alert to every configured channel; returns the channels that took it."""
    payload = {"kind": kind, "title": title, "details": {k: _plain(v) for k, v in details.items()}}
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
        message.set_content(json.dumps(payload, indent=2))
        try:
            with smtplib.SMTP(host, int(os.environ.get("DER_ALERT_SMTP_PORT", "25")), timeout=10) as smtp:
                smtp.send_message(message)
            delivered.append("email")
        except (OSError, smtplib.SMTPException) as exc:
            log.error("alert email via %s failed: %s", host, exc)
    log.warning("ALERT %s: %s %s (delivered: %s)", kind, title, payload["details"], ", ".join(delivered) or "log only")
    return delivered


def _plain(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
