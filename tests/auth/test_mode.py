"""Secure by default: loopback may run without tokens; any other address requires them
unless auth is switched off, which is logged loudly."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from loguru import logger

from server.auth.mode import auth_required, is_loopback_only
from server.settings import Settings, SettingsError
from tests.auth.helpers import bearer, issue
from tests.conftest import AppFactory


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="WARNING", format="{message}")
    yield seen
    logger.remove(sink)


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:50051", True),
        ("127.1.2.3:1", True),
        ("localhost:50051", True),
        ("[::1]:50051", True),
        ("unix:/run/auton8n.sock", True),
        ("0.0.0.0:50051", False),
        ("[::]:50051", False),
        (":50051", False),
        ("10.0.0.7:50051", False),
        ("example.com:50051", False),
        ("[2001:db8::1]:50051", False),
    ],
)
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert is_loopback_only(address) is loopback


@pytest.mark.parametrize(
    ("mode", "address", "required", "warned"),
    [
        ("auto", "127.0.0.1:50051", False, False),
        ("auto", "0.0.0.0:50051", True, False),
        ("required", "127.0.0.1:50051", True, False),
        ("off", "127.0.0.1:50051", False, False),
        ("off", "0.0.0.0:50051", False, True),
    ],
)
def test_auth_mode_defaults(
    warnings: list[str], mode: str, address: str, required: bool, warned: bool
) -> None:
    settings = Settings.from_env({"AUTON8N_AUTH_MODE": mode, "AUTON8N_LISTEN_ADDRESS": address})
    assert auth_required(settings) is required
    assert any("AUTHENTICATION IS OFF" in w for w in warnings) is warned


def test_the_default_is_auto_and_bad_modes_are_refused() -> None:
    assert Settings.from_env({}).auth_mode == "auto"
    with pytest.raises(SettingsError, match="AUTH_MODE"):
        Settings.from_env({"AUTON8N_AUTH_MODE": "maybe"})


async def test_a_server_on_every_interface_requires_tokens(make_app: AppFactory) -> None:
    app = await make_app(listen_address="0.0.0.0:0")
    assert app.auth_required
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListJobs(pb.ListJobsRequest())
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        token = await issue(app, "alice")
        assert list((await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(token))).jobs) == []


async def test_switching_auth_off_on_every_interface_warns(
    make_app: AppFactory, warnings: list[str]
) -> None:
    app = await make_app(listen_address="0.0.0.0:0", auth_mode="off")
    assert not app.auth_required
    assert any("AUTHENTICATION IS OFF" in w for w in warnings)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await pb_grpc.PluginServiceStub(channel).ListJobs(pb.ListJobsRequest())


async def test_a_loopback_server_runs_without_tokens(make_app: AppFactory) -> None:
    app = await make_app()
    assert not app.auth_required
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await pb_grpc.PluginServiceStub(channel).ListJobs(pb.ListJobsRequest())


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AUTON8N_RATE_LIMIT_CREATE_PER_HOUR": "-1"}, "RATE_LIMIT_CREATE_PER_HOUR"),
        ({"AUTON8N_RATE_LIMIT_REQUESTS_BURST": "0"}, "RATE_LIMIT_REQUESTS_BURST"),
        ({"AUTON8N_MAX_CONCURRENT_JOBS_PER_TENANT": "-2"}, "MAX_CONCURRENT_JOBS_PER_TENANT"),
        ({"AUTON8N_AUTH_CACHE_S": "-1"}, "AUTH_CACHE_S"),
    ],
)
def test_limit_settings_are_checked(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)
