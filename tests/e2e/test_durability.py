"""Crash recovery and scale-out with real server processes, on SQLite and PostgreSQL.

Bounded: a fixed number of SIGKILLs at random moments (seeded), loopback only.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from client import PluginClient, Retry
from tests.conftest import load_spec
from tests.e2e.serverproc import ServerProcess
from tests.helpers import TERMINAL, create_request, wait_for_state
from tests.pg import PostgresCluster

pytestmark = pytest.mark.e2e

FAST_LEASES = {
    "AUTON8N_LEASE_TIMEOUT_S": "2",
    "AUTON8N_HEARTBEAT_INTERVAL_S": "0.5",
    "AUTON8N_MAX_ATTEMPTS": "40",
    "AUTON8N_WATCH_POLL_INTERVAL_S": "0.5",
}
SPECS = ("time", "shell", "weather", "astral")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def follow(target: str, job_id: str, seen: list[int]) -> pb.JobEvent:
    """Watch through restarts with the real client (it resumes from its last seq)."""
    last = None
    # The first kill may come before the first message: a server restarting under load
    # (imports alone take seconds) must be waited for, not reported as never reached.
    patient = Retry(timeout=timedelta(seconds=120), connect_timeout=timedelta(seconds=120))
    async with PluginClient(target, retry=patient) as client:
        async for event in client.watch(job_id):
            if event.seq:
                seen.append(event.seq)
                last = event
    assert last is not None
    return last


async def check_log(stub: pb_grpc.PluginServiceStub, job_id: str) -> pb.Job:
    """Exactly one terminal event, last, and seqs 1..N without gaps."""
    events = []
    async for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id), wait_for_ready=True):
        if event.seq:
            events.append(event)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    terminal = [
        e for e in events if e.HasField("state_changed") and e.state_changed.to_state in TERMINAL
    ]
    assert len(terminal) == 1 and terminal[0] is events[-1]
    return events[-1].job


async def test_jobs_survive_repeated_sigkill(tmp_path: Path, database_url: str) -> None:
    rng = random.Random(20261126)
    port = free_port()
    env = {
        **FAST_LEASES,
        "AUTON8N_DATABASE_URL": database_url,
        "AUTON8N_LISTEN_ADDRESS": f"127.0.0.1:{port}",
    }
    server = await ServerProcess(tmp_path / "data", **env).start()
    target = server.target
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        ids = [
            (
                await stub.CreatePlugin(create_request(load_spec(name), request_id=f"crash-{name}"))
            ).id
            for name in SPECS
        ]
    seen: list[int] = []
    watcher = asyncio.create_task(follow(target, ids[0], seen))
    kills = 0
    try:
        for _ in range(10):
            await asyncio.sleep(rng.uniform(0.3, 3.0))
            assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
            kills += 1
            server = await ServerProcess(tmp_path / "data", **env).start()
        async with grpc.aio.insecure_channel(target) as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            for job_id in ids:
                await wait_for_state(stub, job_id, TERMINAL, timeout=300)
            listed = await stub.ListJobs(pb.ListJobsRequest(page_size=100), wait_for_ready=True)
            assert sorted(j.id for j in listed.jobs) == sorted(ids), "lost or duplicated job"
            for job_id in ids:
                job = await check_log(stub, job_id)
                assert job.state == pb.JOB_STATE_SUCCEEDED, (job_id, job.error.message)
        last = await asyncio.wait_for(watcher, 120)
        assert seen == list(range(1, len(seen) + 1)), "the watcher saw a gap or a duplicate"
        assert last.state_changed.to_state == pb.JOB_STATE_SUCCEEDED
    finally:
        watcher.cancel()
        await server.stop()
    assert kills == 10


async def test_three_replicas_share_one_postgres(tmp_path: Path, postgres: PostgresCluster) -> None:
    url = postgres.create_database()
    env = {**FAST_LEASES, "AUTON8N_DATABASE_URL": url, "AUTON8N_MAX_CONCURRENT_JOBS": "1"}
    replicas = [await ServerProcess(tmp_path / f"r{i}" / "data", **env).start() for i in range(3)]
    try:
        async with grpc.aio.insecure_channel(replicas[0].target) as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            ids = [
                (await stub.CreatePlugin(create_request(load_spec(SPECS[i % 4])))).id
                for i in range(6)
            ]
            # Every replica claims (one job each at a time).
            running = {}
            for job_id in ids[:3]:
                job = await wait_for_state(stub, job_id, {pb.JOB_STATE_RUNNING} | TERMINAL)
                running[job_id] = job
        owners = await claim_owners(replicas[0].target, ids[:3])
        assert len(set(owners.values())) == 3, f"jobs did not spread: {owners}"

        def on(replica: ServerProcess) -> list[str]:
            pid = replica.proc.pid if replica.proc else -1
            return [j for j, owner in owners.items() if f":{pid}:" in owner]

        # A watcher on replica 1 follows a job running on replica 0 ...
        followed = on(replicas[0])[0]
        on_victim = on(replicas[2])
        seen: list[int] = []
        watch = asyncio.create_task(follow(replicas[1].target, followed, seen))
        # ... and replica 2 dies mid-job: its jobs finish on the others within the lease.
        await replicas[2].stop(signal.SIGKILL)
        async with grpc.aio.insecure_channel(replicas[0].target) as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            for job_id in ids:
                final = await wait_for_state(stub, job_id, TERMINAL, timeout=300)
                assert final.state == pb.JOB_STATE_SUCCEEDED, final.error.message
            for job_id in on_victim:
                assert (await stub.GetJob(pb.GetJobRequest(job_id=job_id))).attempt >= 2
        last = await asyncio.wait_for(watch, 120)
        assert last.state_changed.to_state == pb.JOB_STATE_SUCCEEDED
        assert seen == list(range(1, len(seen) + 1))
    finally:
        for replica in replicas:
            await replica.stop()


async def claim_owners(target: str, ids: list[str]) -> dict[str, str]:
    """job id -> the worker that first claimed it (from the claim event's reason)."""
    owners = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        for job_id in ids:
            async for event in stub.WatchJob(pb.WatchJobRequest(job_id=job_id)):
                change = event.state_changed
                if event.HasField("state_changed") and change.to_state == pb.JOB_STATE_RUNNING:
                    owners[job_id] = change.reason.split(" on ", 1)[1]
                    break
    return owners
