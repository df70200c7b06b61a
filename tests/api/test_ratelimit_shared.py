"""On PostgreSQL the buckets are shared: two replicas draw from one bucket per token."""

from __future__ import annotations

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from tests.auth.helpers import bearer, issue
from tests.conftest import AppFactory, load_spec
from tests.helpers import create_request
from tests.pg import PostgresCluster


async def test_replicas_share_one_bucket_per_token(
    make_app: AppFactory, postgres: PostgresCluster
) -> None:
    url = postgres.create_database()
    limits = {
        "database_url": url,
        "auth_mode": "required",
        "rate_limit_create_per_hour": 1,
        "rate_limit_create_burst": 3,
    }
    first, second = await make_app(**limits), await make_app(**limits)
    token = await issue(first, "alice")
    created = []
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{first.port}") as one,
        grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as two,
    ):
        stubs = [pb_grpc.PluginServiceStub(one), pb_grpc.PluginServiceStub(two)]
        for i in range(3):
            job = await stubs[i % 2].CreatePlugin(
                create_request(load_spec("time")), metadata=bearer(token)
            )
            created.append(job.id)
        for stub in stubs:  # both replicas: the shared bucket is empty
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.CreatePlugin(create_request(load_spec("time")), metadata=bearer(token))
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Another token's bucket is untouched.
        other = await issue(second, "bob")
        job = await stubs[1].CreatePlugin(create_request(load_spec("time")), metadata=bearer(other))
        created.append(job.id)
        root = await issue(first, "ops", admin=True)
        for job_id in created:
            await stubs[0].CancelJob(pb.CancelJobRequest(job_id=job_id), metadata=bearer(root))
