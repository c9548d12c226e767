"""Credentials never reach a log line, an exception message or a stored error.

Vendor keys travel in URLs (SolarEdge ``?api_key=``, Enphase v2 ``?key=``), and httpx logs every
request URL at INFO; OAuth flows carry tokens and client secrets in query strings and form
bodies; a bearer token sits in an Authorization header that a traceback or a repr can show.

``redact(text)`` replaces the value of each such parameter or header with ``[REDACTED]`` and
keeps everything else (the host, the path, the other parameters), so a log line still says
which request it was. ``install()`` applies it to every log record when it is created (message,
arguments and exception text), whichever handler later writes it: the intake's, Dagster's, or a
test's; ``RedactingFilter`` does the same for a handler the project configures itself.
Connectors pass their error text through ``redact`` before it becomes a ``ConnectorError``,
whose message is what the raw-payload index, run failures and metadata carry.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "[REDACTED]"
# query or form parameters whose value is a secret (case-insensitive, as a whole name)
SECRET_PARAMS = ("api_key", "apikey", "key", "token", "access_token", "refresh_token", "id_token", "client_secret",
                 "password", "passwd", "secret", "auth_token", "sonnen_auth_token")
# JSON or repr keys whose value is a secret ("key" alone is too common a name outside URLs)
SECRET_FIELDS = ("api_key", "apikey", "access_token", "refresh_token", "id_token", "client_secret", "password",
                 "auth_token", "authorization", "x-api-key", "auth-token")

_PARAM = re.compile(r"(?i)(?<![A-Za-z0-9_])((?:%s)=)[^&\s\"'#<>]+" % "|".join(map(re.escape, SECRET_PARAMS)))
_FIELD = re.compile(r"""(?ix)(["']?(?:%s)["']?\s*[:=]\s*["']?)(?:bearer\s+|basic\s+|token\s+)?[^"'\s,;}&]+"""
                    % "|".join(map(re.escape, SECRET_FIELDS)))
# a bearer/basic credential outside a header: 16+ token characters with a digit ("basic information" stays)
_SCHEME = re.compile(r"(?i)\b(bearer|basic)\s+(?=[A-Za-z0-9._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{16,}")


def redact(text: str) -> str:
    """``text`` with every credential value replaced by ``[REDACTED]``."""
    if not text:
        return text
    text = _PARAM.sub(lambda m: m.group(1) + MASK, text)
    text = _FIELD.sub(lambda m: m.group(1) + MASK, text)
    return _SCHEME.sub(lambda m: f"{m.group(1)} {MASK}", text)


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """The record with its final message and exception text redacted (arguments merged in)."""
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: logging reports it as it always has
        return record
    clean = redact(message)
    if clean != message or record.args:
        record.msg, record.args = clean, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class RedactingFilter(logging.Filter):
    """A handler filter: every record it passes is redacted (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_lock = threading.Lock()
_installed = False


def install() -> None:
    """Redact every log record of this process at creation (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs) -> logging.LogRecord:
            return redact_record(previous(*args, **kwargs))

        logging.setLogRecordFactory(factory)
        _installed = True
