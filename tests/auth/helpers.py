"""Helpers for tests of authentication, isolation and rate limits on real servers."""

from __future__ import annotations

from typing import Any

import grpc
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from server.app import App
from server.auth.principal import Role

Metadata = tuple[tuple[str, str], ...]


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def issue(app: App, tenant: str, *, admin: bool = False) -> str:
    assert app.tokens is not None
    issued = await app.tokens.create(tenant=tenant, role=Role.ADMIN if admin else Role.USER)
    return issued.token


async def call(stub: pb_grpc.PluginServiceStub, method: str, request: Any, md: Metadata) -> Any:
    """One RPC; streams are read to the end (a list of messages)."""
    rpc = getattr(stub, method)(request, metadata=md)
    if method in ("WatchJob", "DownloadArtifact"):
        return [message async for message in rpc]
    return await rpc


async def code_of(stub: pb_grpc.PluginServiceStub, method: str, request: Any, md: Metadata) -> Any:
    """The status code a call ends with (OK when it succeeds)."""
    try:
        await call(stub, method, request, md)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def every_rpc(job_id: str) -> list[tuple[str, Any]]:
    """(method, request) for every RPC that takes a job id."""
    return [
        ("GetJob", pb.GetJobRequest(job_id=job_id)),
        ("WatchJob", pb.WatchJobRequest(job_id=job_id)),
        ("CancelJob", pb.CancelJobRequest(job_id=job_id)),
        ("DeleteJob", pb.DeleteJobRequest(job_id=job_id)),
        ("DownloadArtifact", pb.DownloadArtifactRequest(job_id=job_id)),
    ]
