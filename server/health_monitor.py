"""Health that means something: periodic dependency checks drive gRPC health statuses.

Service names in ``grpc.health.v1.Health`` (``service`` is ``auton8n.v1.PluginService``):

=============================  ===========================================================
``<service>.liveness``         SERVING while the process answers: set once at start, never
                               changed by a check (a hung event loop cannot answer, so the
                               probe times out). NOT_SERVING only during shutdown.
``""``, ``<service>``,         readiness: SERVING while every check passes (database,
``<service>.readiness``        sandbox, toolchain); NOT_SERVING while any fails, SERVING
                               again after the next round in which all pass; NOT_SERVING
                               during shutdown.
=============================  ===========================================================

A *check* is an async callable that returns when the dependency is usable and raises
(any ``Exception``; its message is the reason) when it is not. Each round runs every
check concurrently, each bounded by ``timeout_s``; a check that overruns counts as a
failure. Transitions are logged (WARNING on the way down, INFO on the way back up).

Graceful shutdown is the health servicer's own switch
(``HealthServicer.enter_graceful_shutdown``): afterwards every ``set`` is ignored, so a
round that finishes during the drain cannot turn anything back to SERVING.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from grpc_health.v1 import health_pb2
from loguru import logger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "Check",
    "CheckFailed",
    "HealthMonitor",
    "HealthSetter",
    "Warmup",
    "database_check",
    "fixed_check",
]

Check = Callable[[], Awaitable[None]]
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_MAX_REASON = 300


class HealthSetter(Protocol):
    """What the monitor needs of grpc_health's aio ``HealthServicer``."""

    async def set(self, service: str, status: Any) -> None: ...


class CheckFailed(Exception):
    """A check's plain verdict: the dependency is unusable, for the reason given."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the check timeout"
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, CheckFailed):
        text_ = first
    else:
        text_ = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text_ if len(text_) <= _MAX_REASON else text_[: _MAX_REASON - 1] + "\u2026"


def fixed_check(reason: str | None) -> Check:
    """A check with a fixed verdict: passes when ``reason`` is None, else fails with it
    (e.g. the sandbox, probed once at startup)."""

    async def check() -> None:
        if reason is not None:
            raise CheckFailed(reason)

    return check


def _sqlite_file(engine: AsyncEngine) -> str | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(Path(database).resolve())


def _open_sqlite_file(path: str, timeout_s: float) -> None:
    # A fresh connection, not a pooled one: pooled connections keep working on a file
    # that was deleted or moved (they hold its inode), which would hide the loss.
    # mode=rw never creates the file; schema_version 0 means an empty stand-in.
    uri = f"file:{quote(path)}?mode=rw"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout_s)
    try:
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
    finally:
        conn.close()
    if not version:
        raise CheckFailed(f"{path} has no schema (replaced by an empty database?)")


def database_check(engine: AsyncEngine, *, timeout_s: float = 2.0) -> Check:
    """``SELECT 1`` through the engine's pool (PostgreSQL: a dead pooled connection is
    replaced, a refused connection fails the check). For a SQLite file, also a fresh
    read-only-intent connection to the file itself, which notices a moved, deleted,
    unreadable or emptied database that pooled connections would not."""
    path = _sqlite_file(engine)

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        if path is not None:
            try:
                await asyncio.to_thread(_open_sqlite_file, path, timeout_s)
            except sqlite3.Error as exc:
                raise CheckFailed(f"cannot open {path}: {exc}") from exc

    return check


class Warmup:
    """Runs ``install`` in the background until it succeeds once (retrying failures
    every ``retry_s``); ``check`` fails while the last attempt failed. While the first
    attempt is still running the check passes: jobs wait for the install anyway.

    Used for the plugin toolchain (an ``npm ci`` on first start, prebuilt in the image).
    """

    def __init__(
        self, name: str, install: Callable[[], Awaitable[object]], *, retry_s: float = 60.0
    ) -> None:
        self.name = name
        self._install = install
        self._retry_s = retry_s
        self.failure: str | None = None
        self.ready = False

    async def run(self) -> None:
        """Until the install succeeded (or the task is cancelled); never raises otherwise."""
        while True:
            try:
                result = await self._install()
            except Exception as exc:
                self.failure = _reason(exc)
                logger.opt(exception=True).error(
                    "{} unusable ({}); retrying in {:.0f} s", self.name, self.failure, self._retry_s
                )
                await asyncio.sleep(self._retry_s)
                continue
            self.failure, self.ready = None, True
            logger.info("{} ready at {}", self.name, result)
            return

    async def check(self) -> None:
        if self.failure is not None:
            raise CheckFailed(f"{self.name}: {self.failure}")


class HealthMonitor:
    """Runs ``checks`` every ``interval_s`` and sets the readiness services from them.

    ``check_once()`` runs one round (call it once right after the server started, so
    the first status is a real one), ``run()`` loops until cancelled (track it as a
    background task). Used from the event loop only.
    """

    def __init__(
        self,
        health: HealthSetter,
        service: str,
        *,
        interval_s: float = 5.0,
        timeout_s: float = 2.0,
    ) -> None:
        self._health = health
        self.liveness_service = f"{service}.liveness"
        self.readiness_services = ("", service, f"{service}.readiness")
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._checks: dict[str, Check] = {}
        self._failures: dict[str, str] = {}
        self._ready: bool | None = None  # unknown until the first round

    def add_check(self, name: str, check: Check) -> None:
        """Add a readiness check (before the first round)."""
        self._checks[name] = check

    @property
    def ready(self) -> bool:
        """Whether the last round passed every check (False before the first round)."""
        return bool(self._ready)

    @property
    def failures(self) -> Mapping[str, str]:
        """The failing checks of the last round and why."""
        return dict(self._failures)

    async def _run_check(self, name: str, check: Check) -> tuple[str, str | None]:
        try:
            async with asyncio.timeout(self.timeout_s):
                await check()
        except Exception as exc:  # TimeoutError included: a check that hangs has failed
            return name, _reason(exc)
        return name, None

    async def check_once(self) -> bool:
        """One round: run every check, update the statuses; returns readiness."""
        results = await asyncio.gather(*(self._run_check(n, c) for n, c in self._checks.items()))
        failures = {name: why for name, why in results if why is not None}
        ready = not failures
        if self._ready is None:
            await self._health.set(self.liveness_service, _SERVING)
        if ready != self._ready:
            for service in self.readiness_services:
                await self._health.set(service, _SERVING if ready else _NOT_SERVING)
        self._log_changes(failures, first=self._ready is None)
        self._failures, self._ready = failures, ready
        return ready

    def _log_changes(self, failures: dict[str, str], *, first: bool) -> None:
        for name, why in failures.items():
            if self._failures.get(name) != why:
                logger.warning("readiness: {} failing ({}); NOT_SERVING", name, why)
        recovered = [name for name in self._failures if name not in failures]
        for name in recovered:
            logger.info("readiness: {} recovered", name)
        if recovered and not failures:
            logger.info("readiness: every check passes; SERVING again")
        elif first and not failures:
            logger.debug("readiness: every check passes ({})", ", ".join(self._checks))

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled; a failing round never ends it."""
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.check_once()
            except Exception:  # a bug in the monitor itself, not a failing dependency
                logger.exception("health monitor round failed")
