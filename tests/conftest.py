"""Shared fixtures: real servers on 127.0.0.1:0, a shared toolchain cache, real clients."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from server.settings import Settings
from tests.pg import PostgresCluster, find_pg_bin

if TYPE_CHECKING:
    from server.app import App

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# One toolchain install (npm ci, ~30 s) shared by every test and by `make demo`.
TOOLCHAIN_DIR = Path(os.environ.get("AUTON8N_TOOLCHAIN_DIR") or ROOT / "data" / "toolchain")


def load_spec(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.json").read_text())
    return data


def open_to_sandbox(path: Path) -> None:
    """Let the sandbox user reach ``path``: a root server runs sandboxes as nobody, and
    pytest's temp folders are closed (0700) to other users."""
    for folder in (path, *path.parents):
        if folder == Path("/tmp") or folder == folder.parent:
            break
        folder.chmod(0o755)


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    open_to_sandbox(tmp_path)
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "listen_address": "127.0.0.1:0",
        "metrics_address": "127.0.0.1:0",
        "toolchain_dir": str(TOOLCHAIN_DIR),
        "claim_poll_interval_s": 0.2,
        "watch_poll_interval_s": 0.5,
        "shutdown_grace_s": 2.0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)


test_settings.__test__ = False  # type: ignore[attr-defined]

AppFactory = Callable[..., Awaitable["App"]]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL 15 cluster for the whole run (each test gets its own
    database from ``database_url``)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb) are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb) not installed")
    cluster = PostgresCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'auton8n.db'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.create_database()


@pytest.fixture
async def make_app(tmp_path: Path) -> AsyncIterator[AppFactory]:
    """Start real servers (settings overrides as keyword arguments); all stopped after."""
    from server.app import App

    apps: list[App] = []

    async def factory(**overrides: Any) -> App:
        app = App(test_settings(tmp_path, **overrides))
        await app.start()
        apps.append(app)
        return app

    yield factory
    for app in apps:
        stopping = asyncio.ensure_future(app.stop(grace_s=1.0))
        done, _ = await asyncio.wait({stopping}, timeout=30)
        if not done:
            tasks = "\n".join(f"{t!r}\n  {t.get_stack(limit=12)}" for t in asyncio.all_tasks())
            raise AssertionError(f"App.stop() did not finish in 30 s; tasks:\n{tasks}")
        stopping.result()
    await assert_no_tasks_left()


async def assert_no_tasks_left(timeout: float = 5.0) -> None:
    """A stopped server leaves no task behind (each would hang or leak)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if not left:
            return
        if loop.time() > deadline:
            stacks = "\n".join(f"{t!r}: {t.get_stack(limit=8)}" for t in left)
            raise AssertionError(f"tasks left after stop:\n{stacks}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def app(make_app: AppFactory) -> App:
    return await make_app()


@pytest.fixture
async def stub(app: App) -> AsyncIterator[pb_grpc.PluginServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        yield pb_grpc.PluginServiceStub(channel)
