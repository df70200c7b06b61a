"""The job lifecycle against a real server and the real toolchain."""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc

from server.app import App
from tests.conftest import AppFactory, load_spec
from tests.helpers import TERMINAL, create_request, error_details, wait_for_state, watch_to_end

pytestmark = pytest.mark.e2e


async def download(stub: pb_grpc.PluginServiceStub, job_id: str) -> tuple[bytes, str]:
    data, digest = b"", ""
    async for chunk in stub.DownloadArtifact(pb.DownloadArtifactRequest(job_id=job_id)):
        data += chunk.data
        digest = chunk.sha256 or digest
        assert chunk.total_size > 0
    return data, digest


async def test_time_spec_runs_to_a_downloadable_plugin(stub: pb_grpc.PluginServiceStub) -> None:
    job = await stub.CreatePlugin(create_request(load_spec("time"), request_id="first-time"))
    assert job.state == pb.JOB_STATE_QUEUED
    assert job.spec.name == "@elizaos/plugin-time"
    assert job.spec.providers[0].data_structure["utcOffset"] == "number"

    events = await watch_to_end(stub, job.id)
    assert events[0].HasField("snapshot") and events[0].seq == 0
    log = [e for e in events if e.seq > 0]
    assert [e.seq for e in log] == list(range(1, len(log) + 1)), "seq must be 1, 2, 3 ..."
    last = log[-1]
    assert last.state_changed.to_state == pb.JOB_STATE_SUCCEEDED, last
    phases = [e.phase_changed.phase for e in log if e.HasField("phase_changed")]
    assert phases[0] == pb.PHASE_SETUP and pb.PHASE_TESTING in phases
    assert phases[-1] == pb.PHASE_PACKAGING
    progress = [e.job.progress_percent for e in log]
    assert progress == sorted(progress) and progress[-1] == 100

    final = await stub.GetJob(pb.GetJobRequest(job_id=job.id))
    assert final.state == pb.JOB_STATE_SUCCEEDED
    assert final.iteration == 1 and final.test_results.failed == 0, final.errors
    assert final.test_results.passed > 0 and final.last_event_seq == last.seq
    data, digest = await download(stub, job.id)
    assert hashlib.sha256(data).hexdigest() == digest == final.artifact.sha256
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert any(n.endswith("src/actions/getCurrentTime.ts") for n in names)
    assert not any("node_modules" in n for n in names)

    again = await stub.CreatePlugin(create_request(load_spec("time"), request_id="first-time"))
    assert again.id == job.id, "request_id must make CreatePlugin idempotent"

    # A finished job: watching it again replays and ends; cancel is refused.
    replay = await watch_to_end(stub, job.id)
    assert [e.seq for e in replay[1:]] == [e.seq for e in log]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_details(caught.value)[0] == "JOB_FINISHED"

    await stub.DeleteJob(pb.DeleteJobRequest(job_id=job.id))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetJob(pb.GetJobRequest(job_id=job.id))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_resumes_without_gaps_or_duplicates(stub: pb_grpc.PluginServiceStub) -> None:
    job = await stub.CreatePlugin(create_request(load_spec("time")))
    seen: list[int] = []
    call = stub.WatchJob(pb.WatchJobRequest(job_id=job.id))
    async for event in call:
        if event.seq:
            seen.append(event.seq)
        if len(seen) >= 3:
            call.cancel()  # the client goes away mid-job
            break
    rest = await watch_to_end(stub, job.id, after_seq=seen[-1])
    seen += [e.seq for e in rest if e.seq]
    assert seen == list(range(1, len(seen) + 1))
    assert rest[-1].state_changed.to_state == pb.JOB_STATE_SUCCEEDED


async def test_cancel_kills_the_running_step_and_stays_cancelled(
    stub: pb_grpc.PluginServiceStub, app: App
) -> None:
    job = await stub.CreatePlugin(create_request(load_spec("weather")))
    # Wait until a sandboxed tool runs (building, linting or testing).
    async for event in stub.WatchJob(pb.WatchJobRequest(job_id=job.id)):
        if event.job.phase in (pb.PHASE_BUILDING, pb.PHASE_LINTING, pb.PHASE_TESTING):
            break
    workspace = str(app.settings.workspace_root / job.id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    cancelled = await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
    assert cancelled.state == pb.JOB_STATE_CANCELLED
    while await asyncio.to_thread(processes_using, workspace):
        assert loop.time() - started < 2.0, "cancel left processes running after 2 s"
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.5)
    final = await stub.GetJob(pb.GetJobRequest(job_id=job.id))
    assert final.state == pb.JOB_STATE_CANCELLED
    assert final.error.message and final.end_time.seconds > 0
    events = await watch_to_end(stub, job.id)
    assert events[-1].state_changed.to_state == pb.JOB_STATE_CANCELLED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def processes_using(path: str) -> list[int]:
    """Pids whose command line or working directory is inside ``path``."""
    import os

    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if path in cmdline or cwd.startswith(path):
            found.append(int(pid))
    return found


async def test_list_pages_newest_first_and_filters(make_app: AppFactory) -> None:
    app = await make_app(max_concurrent_jobs=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        ids = [(await stub.CreatePlugin(create_request(load_spec("time")))).id for _ in range(5)]
        for job_id in ids[1:]:
            await stub.CancelJob(pb.CancelJobRequest(job_id=job_id))
        pages, token = [], ""
        while True:
            page = await stub.ListJobs(pb.ListJobsRequest(page_size=2, page_token=token))
            pages.append([j.id for j in page.jobs])
            token = page.next_page_token
            if not token:
                break
        assert [i for p in pages for i in p] == ids[::-1]
        assert all(len(p) <= 2 for p in pages)
        cancelled = await stub.ListJobs(pb.ListJobsRequest(state=pb.JOB_STATE_CANCELLED))
        assert {j.id for j in cancelled.jobs} == set(ids[1:])
        # A token from one filter is refused for another.
        first = await stub.ListJobs(pb.ListJobsRequest(page_size=1))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListJobs(
                pb.ListJobsRequest(page_token=first.next_page_token, state=pb.JOB_STATE_FAILED)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        await stub.CancelJob(pb.CancelJobRequest(job_id=ids[0]))


async def test_queued_jobs_show_their_position(make_app: AppFactory) -> None:
    app = await make_app(max_concurrent_jobs=1)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        jobs = [await stub.CreatePlugin(create_request(load_spec("time"))) for _ in range(3)]
        await wait_for_state(stub, jobs[0].id, {pb.JOB_STATE_RUNNING} | TERMINAL)
        third = await stub.GetJob(pb.GetJobRequest(job_id=jobs[2].id))
        assert third.state == pb.JOB_STATE_QUEUED and third.queue_position == 1
        for job in jobs:
            await stub.CancelJob(pb.CancelJobRequest(job_id=job.id))
