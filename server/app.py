"""The composition root: builds every part from Settings and owns their lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from typing import Any

import grpc
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncEngine

from server.api.chain import InterceptorChain
from server.api.interceptors import ErrorInterceptor
from server.api.metrics_interceptor import MetricsInterceptor
from server.api.ratelimit import RateLimitInterceptor, RateLimits
from server.api.request_context import RequestContextInterceptor
from server.api.servicer import PluginServicer
from server.auth.batched import BatchedBuckets
from server.auth.buckets import BucketPolicy, Buckets, MemoryBuckets, SqlBuckets
from server.auth.failures import FailureThrottle
from server.auth.interceptor import AuthInterceptor
from server.auth.mode import auth_required
from server.auth.tls import server_credentials
from server.auth.tokens import TokenStore
from server.domain.states import JobState
from server.events import EventHub
from server.generators.health import ModelHealth, ProviderStatus
from server.generators.registry import GeneratorRegistry
from server.generators.setup import build_describer, build_registry
from server.generators.template import expected_exports
from server.health_monitor import HealthMonitor, Warmup, database_check, fixed_check
from server.jobs import JobService
from server.logs import LoggedPipeline, configure_logging
from server.metrics import Metrics
from server.metrics_http import MetricsHttpServer, grpc_health_check
from server.pipeline.pipeline import Pipeline
from server.pipeline.process import CommandRunner, SandboxLimits, UnsandboxedRunner
from server.pipeline.sandbox import BubblewrapRunner, probe_sandbox
from server.pipeline.toolchain import Toolchain
from server.settings import Settings
from server.store.engine import create_engine
from server.store.listener import PgListener
from server.store.maintenance import remove_stale_workspaces, run_retention
from server.store.migrate import migrate_when_reachable
from server.store.repository import Store
from server.worker import Worker

__all__ = ["App", "StartInterrupted", "freeze_heap", "run", "serving", "stop_on_signals"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PluginService"].full_name
MODEL_HEALTH_SERVICE = f"{SERVICE_NAME}.model"  # NOT_SERVING while a provider is degraded


class StartInterrupted(Exception):
    """A stop request (SIGTERM, SIGINT) arrived while the server waited for its database."""


class App:
    """One server process: gRPC server, store, worker. start() then stop(), once each."""

    def __init__(self, settings: Settings, *, generators: GeneratorRegistry | None = None) -> None:
        """``generators``: extra generators by model name, consulted before the built-in
        ones (a seam for tests and embedders)."""
        self.settings = settings
        self.health_monitor: HealthMonitor | None = None
        self._extra_generators = generators
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.port = 0
        self._engine: AsyncEngine | None = None
        self._store: Store | None = None
        self._server: grpc.aio.Server | None = None
        self._health = health.aio.HealthServicer()
        self._worker: Worker | None = None
        self._jobs: JobService | None = None
        self.tokens: TokenStore | None = None  # API tokens (tests and tools use it too)
        self._sql_buckets: SqlBuckets | None = None
        self.rate_limiter: RateLimitInterceptor | None = None
        self.auth_required = False
        self._background: set[asyncio.Task[None]] = set()
        self.metrics = Metrics()  # this server's own registry, never the global one
        self._metrics_http: MetricsHttpServer | None = None
        self.metrics_port = 0
        self._stopped = False

    async def _make_runner(
        self, limits: SandboxLimits, toolchain: Toolchain
    ) -> CommandRunner | None:
        usable, why = await probe_sandbox()
        if usable:
            return BubblewrapRunner(toolchain.root, limits)
        if self.settings.allow_unsandboxed:
            logger.warning(
                "SANDBOX UNAVAILABLE ({}); running generated code UNSANDBOXED "
                "because AUTON8N_ALLOW_UNSANDBOXED is set",
                why,
            )
            return UnsandboxedRunner(toolchain.root, limits)
        logger.error(
            "sandbox unavailable ({}); jobs will stay QUEUED. Install bubblewrap, "
            "or set AUTON8N_ALLOW_UNSANDBOXED=true to accept the risk",
            why,
        )
        return None

    async def start(self, stop: asyncio.Event | None = None) -> int:
        """Build everything, start serving; returns the bound gRPC port. ``stop`` set
        while the database is waited for raises StartInterrupted (stop() still due)."""
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self._engine = create_engine(s.resolved_database_url)
        if not await migrate_when_reachable(self._engine, wait_s=s.database_wait_s, stop=stop):
            raise StartInterrupted("stopped while waiting for the database")
        hub = EventHub()
        store = self._store = Store(self._engine, on_events=hub.notify)
        tokens = self.tokens = TokenStore(self._engine, cache_s=s.auth_cache_s)
        if self._engine.dialect.name == "postgresql":
            # Other replicas' events and new jobs: wake watchers and the claim loop.
            # Token revocations: forget the cached check at once.
            def remote(payload: str) -> None:
                if tokens.on_notify(payload):
                    return
                hub.notify(payload)
                hub.wake_worker()

            self._track(PgListener(s.resolved_database_url, remote).run())

        limits = SandboxLimits(
            timeout_s=s.command_timeout_s,
            output_limit_bytes=s.output_limit_bytes,
            node_heap_mb=s.sandbox_node_heap_mb,
            max_data_bytes=s.sandbox_max_memory_bytes,
            max_processes=s.sandbox_max_processes,
            max_file_size_bytes=s.sandbox_max_file_bytes,
        )
        toolchain = Toolchain(s.resolved_toolchain_dir)
        runner = await self._make_runner(limits, toolchain)
        self.model_health = ModelHealth(s.model_degraded_after)
        generators = build_registry(s, health=self.model_health, observer=self.metrics)
        if self._extra_generators is not None:
            generators = self._extra_generators.chain(generators)
        pipeline = Pipeline(
            runner=runner or UnsandboxedRunner(toolchain.root, limits),
            toolchain=toolchain,
            workspace_root=s.workspace_root,
            limits=limits,
            expected_exports=expected_exports,
            review_threshold=s.review_score_threshold,
        )
        self._worker = Worker(
            store=store,
            hub=hub,
            pipeline=LoggedPipeline(pipeline),  # job_id on every record of a job's run
            generators=generators,
            settings=s,
            owner=self.owner,
            metrics=self.metrics,
        )
        self._jobs = JobService(
            store=store,
            hub=hub,
            generators=generators,
            settings=s,
            describe=build_describer(s, health=self.model_health, observer=self.metrics),
            interrupt=self._worker.interrupt,
            metrics=self.metrics,
        )
        worker = self._worker
        self.metrics.set_active_jobs_source(lambda: worker.active_jobs)

        # Metrics outermost: it records the status every inner interceptor produced.
        # Auth before the limiter (buckets are keyed by the caller's token). One chain:
        # composed once per method, not once per call (server/api/chain.py).
        chain = InterceptorChain(
            [
                MetricsInterceptor(self.metrics),
                RequestContextInterceptor(),  # request_id, method, peer on every log record
                self._auth(),
                self._rate_limiter(),
                ErrorInterceptor(),
            ]
        )
        server = grpc.aio.server(
            interceptors=[chain],
            options=[
                ("grpc.max_receive_message_length", s.max_request_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        pb_grpc.add_PluginServiceServicer_to_server(PluginServicer(self._jobs), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        credentials = server_credentials(s)
        if credentials is None:
            self.port = server.add_insecure_port(s.listen_address)
        else:
            self.port = server.add_secure_port(s.listen_address, credentials)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {s.listen_address}")
        self._server = server
        # Readiness ("", the service, .readiness) from periodic checks; .liveness stays
        # SERVING until shutdown. The first round runs before the server answers.
        monitor = self.health_monitor = HealthMonitor(
            self._health,
            SERVICE_NAME,
            interval_s=s.health_check_interval_s,
            timeout_s=s.health_check_timeout_s,
        )
        database = database_check(self._engine, timeout_s=s.health_check_timeout_s)
        monitor.add_check("database", database)
        monitor.add_check("sandbox", fixed_check(None if runner else "sandbox unavailable"))
        warmup = Warmup("toolchain", toolchain.ensure)
        if runner is not None:
            monitor.add_check("toolchain", warmup.check)
        await monitor.check_once()
        self._track(monitor.run())
        await server.start()

        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        # Model health is its own service name: a provider outage hits every replica
        # alike and template jobs still work, so probes must not restart pods for it.
        await self._health.set(MODEL_HEALTH_SERVICE, serving)

        def model_health_changed(status: ProviderStatus) -> None:
            if status.degraded:
                logger.warning("model provider {} degraded: {}", status.provider, status.reason)
            else:
                logger.info("model provider {} recovered", status.provider)
            self.metrics.set_model_degraded(status.provider, status.degraded)
            degraded = self.model_health.degraded
            self._track(
                self._health.set(MODEL_HEALTH_SERVICE, not_serving if degraded else serving)
            )

        self.model_health.subscribe(model_health_changed)

        async def refresh() -> None:
            self.metrics.set_queued_jobs(await store.count_jobs(JobState.QUEUED))

        self._metrics_http = MetricsHttpServer(
            self.metrics.registry,
            s.metrics_address,
            health=grpc_health_check(self._health, SERVICE_NAME),
            liveness=grpc_health_check(self._health, monitor.liveness_service),
            refresh=refresh,
        )
        self.metrics_port = await self._metrics_http.start()
        await remove_stale_workspaces(self._engine, s.workspace_root)  # before claiming
        if s.retention_days > 0:
            keep = timedelta(days=s.retention_days)
            every = timedelta(seconds=s.retention_interval_s)
            self._track(run_retention(self._engine, keep=keep, every=every))
        if runner is not None:
            self._track(warmup.run())
            self._worker.start()
        host = s.listen_address.rsplit(":", 1)[0]
        tls = "plaintext"
        if credentials is not None:
            tls = "mutual TLS" if s.tls_require_client_cert else "TLS"
        logger.info(
            "auton8n listening on {}:{} ({}, auth {}; data {})",
            host,
            self.port,
            tls,
            "required" if self.auth_required else "off",
            s.data_dir,
        )
        return self.port

    @property
    def jobs(self) -> JobService:
        """The job service (after start)."""
        assert self._jobs is not None, "App.start() first"
        return self._jobs

    def _auth(self) -> AuthInterceptor:
        s = self.settings
        self.auth_required = auth_required(s)  # warns when off off-loopback
        failures = None
        if s.auth_failures_per_minute > 0:
            policy = BucketPolicy(
                "auth_failures", s.auth_failures_burst, s.auth_failures_per_minute / 60
            )
            failures = FailureThrottle(policy)
        return AuthInterceptor(self.tokens, required=self.auth_required, failures=failures)

    def _rate_limiter(self) -> RateLimitInterceptor:
        # PostgreSQL: buckets shared by every replica. SQLite (one replica): in process,
        # which also keeps SQLite's single write lock off every read.
        assert self._engine is not None
        buckets: Buckets = MemoryBuckets()
        if self._engine.dialect.name == "postgresql":
            self._sql_buckets = SqlBuckets(self._engine)
            buckets = BatchedBuckets(self._sql_buckets)
        limits = RateLimits.from_settings(self.settings)
        self.rate_limiter = RateLimitInterceptor(limits, buckets, self.metrics)
        return self.rate_limiter

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful shutdown, in order: health off, stop claiming, end watch streams,
        stop the server within the grace period, release leases. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.shutdown_grace_s if grace_s is None else grace_s
        await self._health.enter_graceful_shutdown()
        if self._worker is not None:
            await self._worker.stop_claiming()
        if self._jobs is not None:
            self._jobs.drain()
        if self._server is not None:
            await self._server.stop(grace)
        if self._worker is not None:
            await self._worker.shutdown(grace)
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._metrics_http is not None:
            await self._metrics_http.stop()  # last, so scrapes see the drain
        for closing in (self._store, self.tokens, self._sql_buckets):
            if closing is not None:
                await closing.close()
        if self._engine is not None:
            await self._engine.dispose()
        logger.info("auton8n stopped")


def freeze_heap() -> None:
    """Call once the server has started. What start-up built (modules, protobuf
    descriptors, the app) lives until exit: frozen, it is out of the cyclic collector's
    sight, so a full collection no longer walks ~280,000 objects with the event loop
    stopped (0.2-0.5 s each; BENCHMARKS.md, WatchJob fan-out)."""
    gc.collect()
    gc.freeze()


def stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets (installed now: a signal during start-up ends
    a wait for the database, or stops the server once it is up, never half-started)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


@contextlib.asynccontextmanager
async def serving(app: App, stop: asyncio.Event | None = None) -> AsyncIterator[int]:
    """``app`` started (its heap frozen) for the block, then stopped; yields the port.
    ``stop``: see App.start."""
    try:
        port = await app.start(stop)
        freeze_heap()
        yield port
    finally:
        await app.stop()


async def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    configure_logging(settings.log_level, settings.log_format)
    stop = stop_on_signals()
    try:
        async with serving(App(settings), stop) as port:
            host = settings.listen_address.rsplit(":", 1)[0]
            # One stable line on stdout: scripts and tests read the bound port from it.
            print(f"auton8n listening on {host}:{port}", flush=True)
            await stop.wait()
            logger.info("signal received; shutting down")
    except StartInterrupted as interrupted:
        logger.info("signal received; {}", interrupted)


def main() -> None:
    asyncio.run(run(Settings.from_env(os.environ)))
    sys.exit(0)
