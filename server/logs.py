"""Logging: one loguru sink (JSON or text), stdlib logging routed into it, secrets scrubbed."""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["configure_logging", "scrub"]

# Things that look like credentials: provider keys, bearer tokens, key=value secrets.
_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_-]{8,}|a8n_[0-9a-f]{12}_[A-Za-z0-9_-]{16,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|(?i:(?:api[_-]?key|token|secret|password)\s*[=:]\s*)[^\s,;\"']{6,})"
)


def scrub(text: str) -> str:
    """Replace anything that looks like a credential with a marker."""
    return _SECRET.sub("[REDACTED]", text)


def _patch(record: Record) -> None:
    record["message"] = scrub(record["message"])


class _Intercept(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str, fmt: str = "auto") -> None:
    """Replace loguru's sinks with one on stderr; called once by the composition root."""
    serialize = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    logger.remove()
    options: dict[str, Any] = {"level": level.upper(), "serialize": serialize, "backtrace": False}
    if not serialize:
        options["format"] = (
            "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
            "{extra} <level>{message}</level>"
        )
    logger.configure(patcher=_patch)
    logger.add(sys.stderr, **options)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
