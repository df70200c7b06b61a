"""Jobs and watchers survive server restarts (graceful and SIGKILL)."""

from __future__ import annotations

import signal
from pathlib import Path

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from tests.conftest import load_spec
from tests.e2e.serverproc import ServerProcess
from tests.helpers import TERMINAL, create_request, wait_for_state, watch_to_end

pytestmark = pytest.mark.e2e


async def seqs_until(target: str, job_id: str, count: int) -> list[int]:
    """Watch until ``count`` log events arrived, then disconnect."""
    seen: list[int] = []
    async with grpc.aio.insecure_channel(target) as channel:
        call = pb_grpc.PluginServiceStub(channel).WatchJob(pb.WatchJobRequest(job_id=job_id))
        async for event in call:
            if event.seq:
                seen.append(event.seq)
            if len(seen) >= count:
                call.cancel()
                break
    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_job_and_watcher_survive_restart(tmp_path: Path, sig: int) -> None:
    env = {"AUTON8N_LEASE_TIMEOUT_S": "3", "AUTON8N_HEARTBEAT_INTERVAL_S": "1"}
    first = await ServerProcess(tmp_path / "data", **env).start()
    async with grpc.aio.insecure_channel(first.target) as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        running = await stub.CreatePlugin(create_request(load_spec("time")))
        queued = await stub.CreatePlugin(create_request(load_spec("shell"), request_id="q1"))
    seen = await seqs_until(first.target, running.id, 4)  # running: phases under way
    code = await first.stop(sig)
    assert code == (0 if sig == signal.SIGTERM else -signal.SIGKILL)

    second = await ServerProcess(tmp_path / "data", **env).start()
    try:
        async with grpc.aio.insecure_channel(second.target) as channel:
            stub = pb_grpc.PluginServiceStub(channel)
            rest = await watch_to_end(stub, running.id, after_seq=seen[-1])
            seen += [e.seq for e in rest if e.seq]
            assert seen == list(range(1, len(seen) + 1)), "gap or duplicate across restart"
            assert rest[-1].state_changed.to_state == pb.JOB_STATE_SUCCEEDED
            other = await wait_for_state(stub, queued.id, TERMINAL)
            assert other.state == pb.JOB_STATE_SUCCEEDED
            again = await stub.GetJob(pb.GetJobRequest(job_id=running.id))
            # A graceful stop releases the lease without counting an attempt.
            assert again.attempt == (1 if sig == signal.SIGTERM else 2)
    finally:
        await second.stop()
