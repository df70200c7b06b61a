"""Logging: one loguru sink (JSON or text), stdlib logging routed into it, secrets scrubbed.

Context: the RequestContextInterceptor (server/api/request_context.py) binds
``request_id``, ``method``, ``peer`` (and ``job_id`` when the request names one) for
every RPC (``bind_request``; the patcher adds them to each record); ``LoggedPipeline``
binds ``job_id`` around a job's whole pipeline run (every phase, the generator, the
sandbox) and writes one record per phase and per iteration. In JSON they are under
``record.extra``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

    from server.domain.results import IterationRecord
    from server.domain.states import Phase
    from server.pipeline.pipeline import PipelineOutcome
    from server.pipeline.reporter import JobReporter
    from server.worker import PipelineRunner

__all__ = [
    "LoggedPipeline",
    "bind_request",
    "bound_request_id",
    "configure_logging",
    "debug_enabled",
    "scrub",
    "unbind_request",
]

# The log context of the RPC being served. One contextvar write per call, where loguru's
# contextualize costs a dict merge, a write and a reset (a measurable share of a GetJob):
# grpc.aio runs every RPC in a task of its own, so the value ends with the call's task,
# and tasks the handler starts inherit it.
_REQUEST: ContextVar[Mapping[str, str] | None] = ContextVar("auton8n_request", default=None)


# Whether DEBUG records reach a sink (configure_logging knows; True until it runs), so
# per-call debug lines can skip even computing their arguments.
_debug = True


def debug_enabled() -> bool:
    return _debug


def bind_request(fields: Mapping[str, str] | None) -> Token[Mapping[str, str] | None]:
    """Log records of this context (and of tasks it starts) carry ``fields``."""
    return _REQUEST.set(fields)


def unbind_request(token: Token[Mapping[str, str] | None]) -> None:
    _REQUEST.reset(token)


def bound_request_id() -> str | None:
    """The ``request_id`` of the RPC being served, if its context was bound."""
    fields = _REQUEST.get()
    return None if fields is None else fields.get("request_id")


# Things that look like credentials: provider keys, bearer tokens, key=value secrets.
_SECRET = re.compile(
    r"(sk-[A-Za-z0-9_-]{8,}|a8n_[0-9a-f]{12}_[A-Za-z0-9_-]{16,}|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|(?i:(?:api[_-]?key|token|secret|password)\s*[=:]\s*)[^\s,;\"']{6,}"
    # user:password@ in a URL (database URLs in connection errors)
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@))"
)


def scrub(text: str) -> str:
    """Replace anything that looks like a credential with a marker."""
    return _SECRET.sub("[REDACTED]", text)


def _patch(record: Record) -> None:
    record["message"] = scrub(record["message"])
    extra = record["extra"]
    if request := _REQUEST.get():
        for key, value in request.items():
            extra.setdefault(key, value)  # what the code bound itself comes first
    for key, value in extra.items():
        if isinstance(value, str):
            extra[key] = scrub(value)


def _stderr_sink(message: str) -> None:
    # The whole formatted record once more: an exception's text and traceback are
    # rendered after the patcher ran. sys.stderr looked up per call (tests swap it).
    sys.stderr.write(scrub(message))


class _Intercept(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str, fmt: str = "auto") -> None:
    """Replace loguru's sinks with one on stderr; called once by the composition root.

    Credentials are scrubbed from the message and string context values (every sink)
    and from the whole formatted line of this sink (exception texts and tracebacks)."""
    global _debug
    serialize = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    _debug = logger.level(level.upper()).no <= logger.level("DEBUG").no
    logger.remove()
    options: dict[str, Any] = {"level": level.upper(), "serialize": serialize, "backtrace": False}
    if not serialize:
        options["colorize"] = sys.stderr.isatty()
        options["format"] = (
            "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
            "{extra} <level>{message}</level>"
        )
    else:
        options["colorize"] = False
    logger.configure(patcher=_patch)
    logger.add(_stderr_sink, **options)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)


class _LoggingReporter:
    """Writes one record per phase and per iteration, then reports as ``inner`` does."""

    def __init__(self, inner: JobReporter) -> None:
        self._inner = inner

    async def phase(
        self, phase: Phase, *, iteration: int, progress: int, message: str = ""
    ) -> None:
        logger.info("phase {} (iteration {}, {}%) {}", phase.value, iteration, progress, message)
        await self._inner.phase(phase, iteration=iteration, progress=progress, message=message)

    async def log(self, message: str) -> None:
        logger.debug("job: {}", message)
        await self._inner.log(message)

    async def iteration_finished(self, record: IterationRecord) -> None:
        verdict = "passed" if record.passed else f"failed ({len(record.diagnostics)} diagnostics)"
        logger.info("iteration {} {}", record.iteration, verdict)
        await self._inner.iteration_finished(record)


class LoggedPipeline:
    """A PipelineRunner (server.worker) that runs ``inner`` with ``job_id`` in the log
    context (a contextvar: tasks the pipeline starts inherit it) and logs its phases."""

    def __init__(self, inner: PipelineRunner) -> None:
        self._inner = inner

    async def run(self, *, job_id: str, reporter: JobReporter, **kwargs: Any) -> PipelineOutcome:
        with logger.contextualize(job_id=job_id):
            return await self._inner.run(
                job_id=job_id, reporter=_LoggingReporter(reporter), **kwargs
            )
