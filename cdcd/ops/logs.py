"""Structured logging: JSON lines on stderr (stdout may carry events), console on a TTY.

Event names are stable snake_case identifiers (``slot_created``,
``stream_interrupted``); context goes in fields (lsn, xid, table, topic,
duration_ms), never into the message text. ``redact`` keeps passwords out.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(r"password|secret|sasl\.|token|credential|user[._]info", re.IGNORECASE)
_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)|(://[^:/@\s]+:)([^@\s]+)(@)", re.IGNORECASE)


def redact_dsn(text: str) -> str:
    """A DSN (or any text) with the passwords of DSNs in it replaced, safe to log."""
    return _DSN_PASSWORD.sub(lambda m: f"{m.group(1)}***" if m.group(1) else f"{m.group(3)}***{m.group(5)}", text)


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: hide secret-looking fields and passwords inside DSNs/messages."""
    for key, value in list(event_dict.items()):
        if _SECRET_KEYS.search(key) and key != "event":
            event_dict[key] = "***"
        elif isinstance(value, str) and ("password" in value.lower() or "://" in value):
            event_dict[key] = redact_dsn(value)
    return event_dict


def configure(level: str = "info", fmt: str = "auto") -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def quiet_librdkafka_logger(name: str) -> logging.Logger:
    """A logger that swallows librdkafka's own lines, for short-lived probe clients
    whose failures are reported as results (not as raw ``%3|...`` stderr noise)."""
    logger = logging.getLogger(f"cdcd.{name}.librdkafka")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
        logger.propagate = False
    return logger
