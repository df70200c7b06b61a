"""A tiny HTTP/1.1 server for Prometheus and probes: ``/metrics``, ``/healthz``, ``/livez``.

Built on ``asyncio.start_server`` (no web framework). One request per connection
(``Connection: close``), GET and HEAD only, bounded request size and read time.

- ``GET /metrics``: ``refresh()`` first (bounded by ``refresh_timeout_s``; a failure or
  timeout leaves the previous values), then the registry in the Prometheus text format,
  rendered in a worker thread so a large registry never stalls the event loop.
- ``GET /healthz``: 200 ``SERVING`` when ``health()`` returns True, else (False, an
  error, or no answer within ``health_timeout_s``) 503 ``NOT_SERVING``. The server
  passes ``grpc_health_check`` of its readiness service, so /healthz and the gRPC
  readiness names always agree.
- ``GET /livez``: the same for ``liveness()`` (the server passes its liveness service:
  NOT_SERVING only during shutdown), for probes that cannot speak gRPC (TLS on the gRPC
  port: Kubernetes' native gRPC probes are plaintext only).
- anything else: 404; other methods: 405.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from grpc_health.v1 import health_pb2
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = ["MetricsHttpServer", "grpc_health_check", "parse_address"]

HealthCheck = Callable[[], Awaitable[bool]]
_MAX_HEADER_LINES = 100
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
_TEXT = "text/plain; charset=utf-8"


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``:port`` (all interfaces) -> (host, port).

    Raises ValueError for anything else."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a host:port address: {address!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host, int(port)


class _ProbeContext:
    """Just enough of a servicer context for HealthServicer.Check."""

    async def abort(self, code: Any, details: str = "", *args: Any) -> None:
        raise LookupError(f"health check aborted: {code}")


def grpc_health_check(servicer: Any, service: str = "") -> HealthCheck:
    """A ``health()`` that asks the gRPC health servicer (grpc_health's aio
    ``HealthServicer``) for ``service``, exactly as a gRPC Check would: True only for
    SERVING; an unknown service is not serving."""
    request = health_pb2.HealthCheckRequest(service=service)

    async def check() -> bool:
        try:
            response = await servicer.Check(request, _ProbeContext())
        except LookupError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    return check


class MetricsHttpServer:
    """Serves one registry over HTTP. ``start()`` then ``stop()``; both idempotent."""

    def __init__(
        self,
        registry: CollectorRegistry,
        address: str,
        *,
        health: HealthCheck,
        liveness: HealthCheck | None = None,
        refresh: Callable[[], Awaitable[None]] | None = None,
        refresh_timeout_s: float = 2.0,
        health_timeout_s: float = 2.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self._registry = registry
        self._host, self._requested_port = parse_address(address)
        self._health = health
        self._liveness = liveness
        self._refresh = refresh
        self._refresh_timeout_s = refresh_timeout_s
        self._health_timeout_s = health_timeout_s
        self._read_timeout_s = read_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self) -> int:
        """Bind and serve; returns the bound port (useful with port 0). Raises OSError."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, self._host or None, self._requested_port, limit=8192
            )
            self.port = self._server.sockets[0].getsockname()[1]
            logger.info("metrics on http://{}:{}/metrics", self._host or "*", self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening and end open connections (they are short-lived anyway)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            async with asyncio.timeout(self._read_timeout_s):
                request = await self._read_request(reader)
            if request is not None:
                method, path = request
                status, content_type, body = await self._respond(method, path)
                await self._write(writer, status, content_type, body, head=method == "HEAD")
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # a slow, broken or oversized request: just close the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._connections.discard(task)

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
        line = await reader.readline()
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return None
        for _ in range(_MAX_HEADER_LINES):
            header = await reader.readline()
            if header in (b"\r\n", b"\n", b""):
                return parts[0], parts[1].split("?", 1)[0]
        return None

    async def _respond(self, method: str, path: str) -> tuple[int, str, bytes]:
        checks = {"/healthz": self._health, "/livez": self._liveness}
        if path != "/metrics" and checks.get(path) is None:
            return 404, _TEXT, b"not found\n"
        if method not in ("GET", "HEAD"):
            return 405, _TEXT, b"method not allowed\n"
        check = checks.get(path)
        if check is not None:
            serving = await self._serving(path, check)
            return (200, _TEXT, b"SERVING\n") if serving else (503, _TEXT, b"NOT_SERVING\n")
        await self._refreshed()
        body = await asyncio.to_thread(generate_latest, self._registry)
        return 200, CONTENT_TYPE_LATEST, body

    async def _serving(self, path: str, check: HealthCheck) -> bool:
        try:
            async with asyncio.timeout(self._health_timeout_s):
                return await check()
        except TimeoutError:
            logger.warning("{}: no health answer within {} s", path, self._health_timeout_s)
        except Exception:
            logger.exception("{}: the health check failed", path)
        return False

    async def _refreshed(self) -> None:
        if self._refresh is None:
            return
        try:
            async with asyncio.timeout(self._refresh_timeout_s):
                await self._refresh()
        except TimeoutError:
            logger.warning(
                "/metrics: refresh took over {} s; stale gauges", self._refresh_timeout_s
            )
        except Exception:
            logger.opt(exception=True).warning("/metrics: refresh failed; stale gauges")

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes, *, head: bool
    ) -> None:
        head_lines = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Cache-Control: no-store\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head_lines.encode("latin-1"))
        if not head:
            writer.write(body)
        await writer.drain()
