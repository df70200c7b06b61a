"""Health that means something, on a real server: readiness ("", the service,
``.readiness``) turns NOT_SERVING when the database goes away (a real PostgreSQL
stopped, or refusing connections; a SQLite file whose folder disappears) and SERVING
when it returns, while ``.liveness`` stays SERVING; /healthz and the container probe
follow; RPCs fail UNAVAILABLE meanwhile. Plus the monitor's own contract."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from sqlalchemy.exc import OperationalError

from server import healthprobe
from server.app import App, StartInterrupted, serving
from server.health_monitor import CheckFailed, HealthMonitor, Warmup, database_check
from server.store.engine import create_engine
from server.store.migrate import migrate
from tests.conftest import assert_no_tasks_left, test_settings
from tests.helpers import error_details
from tests.pg import PostgresCluster, find_pg_bin

SERVICE = "auton8n.v1.PluginService"
READINESS = ("", SERVICE, f"{SERVICE}.readiness")
LIVENESS = f"{SERVICE}.liveness"
Status = health_pb2.HealthCheckResponse.ServingStatus

StartApp = Callable[..., Awaitable[App]]


@pytest.fixture
async def start_app(tmp_path: Path) -> AsyncIterator[StartApp]:
    """Real servers whose health monitor checks every 0.2 s."""
    apps: list[App] = []

    async def start(**overrides: Any) -> App:
        overrides = {"health_check_interval_s": 0.2, "health_check_timeout_s": 1.0, **overrides}
        app = App(test_settings(tmp_path, **overrides))
        apps.append(app)
        await app.start()
        return app

    yield start
    for app in apps:
        await asyncio.wait_for(app.stop(grace_s=1.0), 30)
    await assert_no_tasks_left()


async def statuses(app: App) -> dict[str, str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        seen = {}
        for service in (*READINESS, LIVENESS):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            seen[service] = Status.Name(reply.status)
        return seen


def readiness(status: str) -> dict[str, str]:
    return {**dict.fromkeys(READINESS, status), LIVENESS: "SERVING"}


async def wait_for(app: App, expected: dict[str, str], timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (seen := await statuses(app)) != expected:
        if loop.time() > deadline:
            raise AssertionError(f"health stayed {seen}, expected {expected}")
        await asyncio.sleep(0.1)


async def healthz(app: App, path: str = "/healthz") -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", app.metrics_port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        await writer.drain()
        return int((await asyncio.wait_for(reader.read(), 10)).split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


async def probe(app: App, service: str) -> int:
    """The container HEALTHCHECK's probe (a synchronous CLI: off the server's loop)."""
    argv = ["--address", f"127.0.0.1:{app.port}", "--service", service]
    return await asyncio.to_thread(healthprobe.main, argv, {})


async def assert_everything_says(app: App, status: str) -> None:
    await wait_for(app, readiness(status))
    assert await healthz(app) == (200 if status == "SERVING" else 503)
    assert await probe(app, f"{SERVICE}.readiness") == (0 if status == "SERVING" else 1)
    assert await probe(app, LIVENESS) == 0
    assert await healthz(app, "/livez") == 200  # alive either way: no restarts for it


async def list_jobs(app: App) -> pb.ListJobsResponse:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        return await stub.ListJobs(pb.ListJobsRequest(page_size=1), timeout=20)


async def assert_rpcs_unavailable(app: App) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_jobs(app)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value
    assert error_details(caught.value)[0] == "DATABASE_UNAVAILABLE"


async def test_a_healthy_server_serves_every_name(start_app: StartApp) -> None:
    app = await start_app()
    assert await statuses(app) == readiness("SERVING")
    assert app.health_monitor is not None and app.health_monitor.ready
    assert app.health_monitor.failures == {}
    assert await healthz(app) == 200


class RestartableCluster(PostgresCluster):
    """A throwaway cluster of its own that can go away and come back on the same port."""

    def halt(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.root / "log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")


@pytest.fixture
def own_cluster() -> Iterator[RestartableCluster]:
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb) are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb) not installed")
    cluster = RestartableCluster(bin_dir)
    cluster.start()
    yield cluster
    cluster.stop()


async def test_postgres_server_stops_and_comes_back(
    start_app: StartApp, own_cluster: RestartableCluster
) -> None:
    app = await start_app(database_url=own_cluster.create_database())
    await assert_everything_says(app, "SERVING")

    await asyncio.to_thread(own_cluster.halt)
    await assert_everything_says(app, "NOT_SERVING")
    assert app.health_monitor is not None
    assert set(app.health_monitor.failures) == {"database"}
    await assert_rpcs_unavailable(app)

    await asyncio.to_thread(own_cluster.resume)
    await assert_everything_says(app, "SERVING")
    assert (await list_jobs(app)).jobs == []  # the pool reconnected


async def test_postgres_refusing_connections(
    start_app: StartApp, postgres: PostgresCluster
) -> None:
    """The shared cluster stays up; only this test's database refuses and drops its
    connections (ALLOW_CONNECTIONS false + pg_terminate_backend)."""
    database_url = postgres.create_database()
    app = await start_app(database_url=database_url)
    name = database_url.rsplit("/", 1)[1]
    admin = f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres"

    async def admin_sql(*statements: str) -> None:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            for statement in statements:
                await conn.execute(statement)

    await assert_everything_says(app, "SERVING")
    await admin_sql(
        f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
    )
    await assert_everything_says(app, "NOT_SERVING")
    await assert_rpcs_unavailable(app)
    await admin_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    await assert_everything_says(app, "SERVING")
    assert (await list_jobs(app)).jobs == []


async def test_a_server_waits_for_a_postgresql_that_starts_after_it(
    start_app: StartApp, own_cluster: RestartableCluster
) -> None:
    database_url = own_cluster.create_database()
    await asyncio.to_thread(own_cluster.halt)
    starting = asyncio.create_task(start_app(database_url=database_url, database_wait_s=60))
    await asyncio.sleep(2)
    assert not starting.done()  # retrying, not failed
    await asyncio.to_thread(own_cluster.resume)
    app = await asyncio.wait_for(starting, 60)
    await assert_everything_says(app, "SERVING")
    assert (await list_jobs(app)).jobs == []


async def test_the_wait_for_the_database_is_bounded_and_stoppable(
    start_app: StartApp, own_cluster: RestartableCluster, tmp_path: Path
) -> None:
    database_url = own_cluster.create_database()
    await asyncio.to_thread(own_cluster.halt)
    loop = asyncio.get_running_loop()

    async def seconds_to_fail(**overrides: Any) -> float:
        started = loop.time()
        with pytest.raises(OperationalError):
            await start_app(**overrides)
        return loop.time() - started

    assert 1.5 <= await seconds_to_fail(database_url=database_url, database_wait_s=1.5) < 20
    assert await seconds_to_fail(database_url=database_url, database_wait_s=0) < 5
    # SQLite is a local file: nothing to wait for (here a folder, not a file).
    unusable = f"sqlite+aiosqlite:///{tmp_path}"
    assert await seconds_to_fail(database_url=unusable, database_wait_s=60) < 5

    # SIGTERM while waiting: the server stops at once instead of after the wait.
    app = App(test_settings(tmp_path, database_url=database_url, database_wait_s=60))
    stop = asyncio.Event()
    loop.call_later(1.0, stop.set)
    started = loop.time()
    with pytest.raises(StartInterrupted):
        async with serving(app, stop):
            pytest.fail("started without a database")
    assert loop.time() - started < 10
    await asyncio.to_thread(own_cluster.resume)  # the fixture stops it


async def test_sqlite_database_folder_disappears_and_returns(
    start_app: StartApp, tmp_path: Path
) -> None:
    """As when a volume is unmounted: the database's folder (file, WAL and shared
    memory) moves away and back. Pooled connections keep the open file, so only the
    health check notices; it opens the file afresh."""
    folder = tmp_path / "db"
    app = await start_app(database_url=f"sqlite+aiosqlite:///{folder / 'auton8n.db'}")
    await assert_everything_says(app, "SERVING")

    folder.rename(tmp_path / "db-away")
    await assert_everything_says(app, "NOT_SERVING")
    assert app.health_monitor is not None
    assert "cannot open" in app.health_monitor.failures["database"]

    (tmp_path / "db-away").rename(folder)
    await assert_everything_says(app, "SERVING")
    assert (await list_jobs(app)).jobs == []


async def test_database_check_on_sqlite_needs_the_file_and_its_schema(tmp_path: Path) -> None:
    """A file replaced by an empty database (what a new connection creates where the
    file went missing) fails the check, as does a missing file; pooled connections
    alone would pass both."""
    db = tmp_path / "db" / "auton8n.db"
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        check = database_check(engine, timeout_s=1.0)
        with pytest.raises(CheckFailed, match="no schema"):
            await check()
        await migrate(engine)
        await check()
        db.parent.rename(tmp_path / "away")
        with pytest.raises(CheckFailed, match="cannot open"):
            await check()
    finally:
        await engine.dispose()


async def test_unusable_sandbox_is_not_ready_but_alive(
    start_app: StartApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no bwrap to be found
    app = await start_app()
    monkeypatch.undo()
    await assert_everything_says(app, "NOT_SERVING")
    assert app.health_monitor is not None
    assert app.health_monitor.failures == {"sandbox": "sandbox unavailable"}


# The monitor's own contract, with grpc_health's real servicer.


async def check_status(servicer: health.aio.HealthServicer, service: str) -> str:
    reply = await servicer.Check(health_pb2.HealthCheckRequest(service=service), None)
    return Status.Name(reply.status)


async def test_monitor_turns_failures_timeouts_and_recoveries_into_statuses() -> None:
    servicer = health.aio.HealthServicer()
    monitor = HealthMonitor(servicer, "svc", interval_s=0.01, timeout_s=0.2)
    broken = {"db": False, "hang": False}

    async def db() -> None:
        if broken["db"]:
            raise ConnectionRefusedError("connection refused")

    async def hang() -> None:
        if broken["hang"]:
            await asyncio.sleep(30)

    monitor.add_check("db", db)
    monitor.add_check("hang", hang)
    assert await monitor.check_once()
    for service in ("", "svc", "svc.readiness", "svc.liveness"):
        assert await check_status(servicer, service) == "SERVING"

    broken.update(db=True, hang=True)
    started = asyncio.get_running_loop().time()
    assert not await monitor.check_once()
    assert asyncio.get_running_loop().time() - started < 2  # checks run concurrently
    assert monitor.failures == {
        "db": "ConnectionRefusedError: connection refused",
        "hang": "no answer within the check timeout",
    }
    for service in ("", "svc", "svc.readiness"):
        assert await check_status(servicer, service) == "NOT_SERVING"
    assert await check_status(servicer, "svc.liveness") == "SERVING"

    broken["hang"] = False
    assert not await monitor.check_once()  # one check still failing: still not ready
    assert set(monitor.failures) == {"db"}

    broken["db"] = False
    runner = asyncio.create_task(monitor.run())  # the periodic loop picks it up
    try:
        for _ in range(200):
            if monitor.ready:
                break
            await asyncio.sleep(0.01)
        assert await check_status(servicer, "") == "SERVING"
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner

    await servicer.enter_graceful_shutdown()
    assert await monitor.check_once()  # passing, but shutdown wins
    for service in ("", "svc", "svc.readiness", "svc.liveness"):
        assert await check_status(servicer, service) == "NOT_SERVING"


async def test_warmup_fails_readiness_until_the_install_succeeds() -> None:
    attempts: list[int] = []
    succeed, attempted = asyncio.Event(), asyncio.Event()

    async def install() -> str:
        attempts.append(1)
        attempted.set()
        if not succeed.is_set():
            raise CheckFailed("npm ci failed (exit 1)\nlots of npm output")
        return "/toolchain"

    warmup = Warmup("toolchain", install, retry_s=0.01)
    await warmup.check()  # before the first attempt ends: passing (jobs would wait)
    task = asyncio.create_task(warmup.run())
    await asyncio.wait_for(attempted.wait(), 5)
    with pytest.raises(CheckFailed, match=r"^toolchain: npm ci failed \(exit 1\)$"):
        await warmup.check()
    succeed.set()
    await asyncio.wait_for(task, 5)  # run() returns after the first success
    await warmup.check()
    assert warmup.ready and len(attempts) >= 2
