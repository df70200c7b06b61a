"""The server schedules housekeeping: leftover workspaces at start, the retention purge."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from server.settings import Settings, SettingsError
from tests.conftest import AppFactory, load_spec
from tests.helpers import create_request


async def test_finished_jobs_are_purged_after_the_retention_period(make_app: AppFactory) -> None:
    # 0.5 s of retention (in days), checked every 0.2 s.
    app = await make_app(retention_days=0.5 / 86400, retention_interval_s=0.2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        job = await stub.CreatePlugin(create_request(load_spec("time")))
        await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
        assert (await stub.GetJob(pb.GetJobRequest(job_id=job.id))).state == pb.JOB_STATE_CANCELLED
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:
            try:
                await stub.GetJob(pb.GetJobRequest(job_id=job.id))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND
                break
            assert loop.time() < deadline, "the finished job was not purged within 10 s"
            await asyncio.sleep(0.1)


async def test_no_purge_when_retention_is_zero(make_app: AppFactory) -> None:
    app = await make_app(retention_days=0, retention_interval_s=0.1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        job = await stub.CreatePlugin(create_request(load_spec("time")))
        await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
        await asyncio.sleep(0.5)
        assert (await stub.GetJob(pb.GetJobRequest(job_id=job.id))).state == pb.JOB_STATE_CANCELLED


async def test_leftover_workspaces_are_removed_at_start(make_app: AppFactory) -> None:
    first = await make_app()
    workspaces = first.settings.workspace_root
    orphan = workspaces / uuid.uuid4().hex  # what a SIGKILL mid-job leaves behind
    (orphan / "node_modules").mkdir(parents=True)
    await first.stop()
    await make_app()  # same data folder
    assert not orphan.exists()


@pytest.mark.parametrize("name, value", [("retention_days", -1), ("retention_interval_s", 0)])
def test_retention_settings_are_checked(name: str, value: float) -> None:
    with pytest.raises(SettingsError, match=name.upper()):
        Settings.from_env({f"AUTON8N_{name.upper()}": str(value)})
