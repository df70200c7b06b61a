"""Tenant isolation on a real server with auth required: another tenant's job does not
exist for you on any RPC; listing never shows it; an admin sees all; revoked tokens stop
working at once; no token, no service (but health)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.app import App
from tests.auth.helpers import bearer, call, code_of, every_rpc, issue
from tests.conftest import AppFactory, load_spec
from tests.helpers import create_request, error_details
from tests.pg import PostgresCluster

NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


@pytest.fixture
async def secured(make_app: AppFactory) -> App:
    return await make_app(auth_mode="required")


@pytest.fixture
async def stub(secured: App) -> AsyncIterator[pb_grpc.PluginServiceStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        yield pb_grpc.PluginServiceStub(channel)


async def test_every_rpc_hides_another_tenants_job(
    secured: App, stub: pb_grpc.PluginServiceStub
) -> None:
    alice, bob, root = (
        await issue(secured, "alice"),
        await issue(secured, "bob"),
        await issue(secured, "ops", admin=True),
    )
    spec = load_spec("time")
    job = await stub.CreatePlugin(create_request(spec, request_id="r1"), metadata=bearer(alice))
    # Bob's request with the same request_id is his own job, not a replay of Alice's.
    own = await stub.CreatePlugin(create_request(spec, request_id="r1"), metadata=bearer(bob))
    assert own.id != job.id

    for method, request in every_rpc(job.id):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(stub, method, request, bearer(bob))
        assert caught.value.code() == NOT_FOUND, method
        assert error_details(caught.value)[0] == "JOB_NOT_FOUND", method
    # Bob's failed cancel and delete changed nothing.
    assert (await stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=bearer(alice))).id

    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(bob))
    assert [j.id for j in listed.jobs] == [own.id]
    listed = await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(alice))
    assert [j.id for j in listed.jobs] == [job.id]

    # The admin sees and may act on every tenant's jobs.
    everything = await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(root))
    assert {j.id for j in everything.jobs} == {job.id, own.id}
    assert (await stub.GetJob(pb.GetJobRequest(job_id=own.id), metadata=bearer(root))).id
    await stub.CancelJob(pb.CancelJobRequest(job_id=own.id), metadata=bearer(root))

    # The owner: everything works (or fails for the job's own reasons, not NOT_FOUND).
    await stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=bearer(alice))
    codes = {m: await code_of(stub, m, r, bearer(alice)) for m, r in every_rpc(job.id)}
    assert codes == {
        "GetJob": grpc.StatusCode.OK,
        "WatchJob": grpc.StatusCode.OK,
        "CancelJob": grpc.StatusCode.FAILED_PRECONDITION,  # already cancelled
        "DeleteJob": grpc.StatusCode.OK,
        "DownloadArtifact": NOT_FOUND,  # deleted just before
    }
    stored = await secured.jobs.get(own.id, tenant=None)
    assert stored.tenant == "bob"


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer"),),
        (("authorization", "Bearer a8n_0123456789ab_not-a-real-secret-at-all"),),
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "a8n_0123456789ab_no-scheme"),),
    ],
    ids=["none", "empty", "unknown", "basic", "no-scheme"],
)
async def test_no_valid_token_no_service(
    secured: App, stub: pb_grpc.PluginServiceStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    calls = [*every_rpc("0" * 32), ("ListJobs", pb.ListJobsRequest())]
    calls.append(("CreatePlugin", create_request(load_spec("time"))))
    for method, request in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(stub, method, request, metadata)
        assert caught.value.code() == UNAUTHENTICATED, method
        assert error_details(caught.value)[0] == "UNAUTHENTICATED"
    assert await secured.jobs.list(tenant=None, state=None, page_size=0, page_token="") == ([], "")


async def test_health_is_open_and_reflection_needs_a_token(secured: App) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{secured.port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")

        async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
            yield request

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in reflect.ServerReflectionInfo(requests()):
                pass
        assert caught.value.code() == UNAUTHENTICATED
        token = await issue(secured, "alice")
        answers = [
            a async for a in reflect.ServerReflectionInfo(requests(), metadata=bearer(token))
        ]
        names = {s.name for s in answers[0].list_services_response.service}
        assert "auton8n.v1.PluginService" in names


async def test_a_revoked_token_stops_working_at_once(
    secured: App, stub: pb_grpc.PluginServiceStub
) -> None:
    assert secured.tokens is not None
    issued = await secured.tokens.create(tenant="alice")
    md = bearer(issued.token)
    job = await stub.CreatePlugin(create_request(load_spec("time")), metadata=md)
    watch = stub.WatchJob(pb.WatchJobRequest(job_id=job.id), metadata=md)
    first = await watch.read()
    assert first.HasField("snapshot")
    await secured.tokens.revoke(issued.info.id)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListJobs(pb.ListJobsRequest(), metadata=md)
    assert caught.value.code() == UNAUTHENTICATED
    # The stream it opened ends at its next message (an event: the admin cancels).
    root = await issue(secured, "ops", admin=True)
    await stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=bearer(root))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        while True:
            message = await asyncio.wait_for(watch.read(), 30)
            assert message is not grpc.aio.EOF, "the stream ended OK after revocation"
    assert caught.value.code() == UNAUTHENTICATED


async def test_revoking_from_the_command_line_reaches_a_running_server(
    make_app: AppFactory, tmp_path: Path
) -> None:
    """``auton8n tokens revoke`` in another process: refused within AUTH_CACHE_S."""
    app = await make_app(auth_mode="required", auth_cache_s=0.5)
    token = await issue(app, "alice")
    assert app.tokens is not None
    token_id = (await app.tokens.list())[0].id
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(token))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from client.cli import main; main()",
            "tokens",
            "--data-dir",
            str(app.settings.data_dir),
            "revoke",
            token_id,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert out.decode().strip() == f"revoked {token_id}"
        revoked_at = asyncio.get_running_loop().time()
        while True:
            try:
                await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(token))
            except grpc.aio.AioRpcError as error:
                assert error.code() == UNAUTHENTICATED
                break
            assert asyncio.get_running_loop().time() - revoked_at < 0.5 + 0.5
            await asyncio.sleep(0.05)


async def test_revocation_reaches_every_replica_at_once(
    make_app: AppFactory, postgres: PostgresCluster
) -> None:
    """PostgreSQL: a revocation on one replica is NOTIFYed to the others, which drop their
    cached check at once (here the cache would otherwise keep it for a minute)."""
    url = postgres.create_database()
    first = await make_app(database_url=url, auth_mode="required", auth_cache_s=60)
    second = await make_app(database_url=url, auth_mode="required", auth_cache_s=60)
    assert first.tokens is not None
    issued = await first.tokens.create(tenant="alice")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        await stub.ListJobs(pb.ListJobsRequest(), metadata=bearer(issued.token))  # cached
        await first.tokens.revoke(issued.info.id)
        loop = asyncio.get_running_loop()
        revoked_at = loop.time()
        while True:
            code = await code_of(stub, "ListJobs", pb.ListJobsRequest(), bearer(issued.token))
            if code == UNAUTHENTICATED:
                break
            assert code == grpc.StatusCode.OK
            assert loop.time() - revoked_at < 2.0, "the other replica kept the revoked token"
            await asyncio.sleep(0.02)
