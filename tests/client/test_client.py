"""PluginClient against a real grpc.aio server running a scripted fake service."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from google.protobuf import duration_pb2, json_format
from google.rpc import error_details_pb2

import client
from client import (
    AuthError,
    EventGapError,
    FailedPreconditionError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    PluginClient,
    RateLimitedError,
    Retry,
    TlsOptions,
    UnavailableError,
    UnsafeArchiveError,
)

if TYPE_CHECKING:
    from tests.client.conftest import FakeService

# The reference format (acceptance/specs/time.json), plus nested parameter objects.
TIME_SPEC = {
    "name": "@elizaos/plugin-time",
    "description": "Provides current time and timezone information",
    "version": "1.0.0",
    "actions": [
        {
            "name": "getCurrentTime",
            "description": "Get current time in any timezone",
            "parameters": {"timezone": "string"},
        },
        {
            "name": "convertTime",
            "description": "Convert time between timezones",
            "parameters": {
                "time": "string",
                "options": {"format": "iso | unix", "zones": {"from": "string", "to": "string"}},
            },
        },
    ],
    "providers": [
        {
            "name": "timeProvider",
            "description": "Provides current time context",
            "dataStructure": {"currentTime": "string", "utcOffset": "number"},
        }
    ],
}


def unavailable(fake: FakeService) -> Exception:
    return fake.error(grpc.StatusCode.UNAVAILABLE, "server is draining")


def test_public_names_are_exported() -> None:
    assert sorted(client.__all__) == sorted(set(client.__all__))
    for name in client.__all__:
        assert getattr(client, name) is not None


async def test_create_with_dict_spec_round_trips(client: PluginClient, fake: FakeService) -> None:
    job = await client.create(TIME_SPEC, model="template", max_iterations=3)

    (request,) = fake.requests["CreatePlugin"]
    assert json_format.MessageToDict(request.spec) == TIME_SPEC
    assert request.model == "template" and request.max_iterations == 3
    params = job.spec.actions[1].parameters
    assert params["options"]["zones"]["to"] == "string"
    assert job.spec.name == "@elizaos/plugin-time" and job.state == pb.JOB_STATE_QUEUED
    assert fake.metadata[0]["authorization"] == f"Bearer {fake.token}"


async def test_create_accepts_a_message_or_a_description(client: PluginClient) -> None:
    by_spec = await client.create(pb.PluginSpec(name="@a/plugin-b"))
    by_text = await client.create(description="tells the time")
    assert by_spec.spec.name == "@a/plugin-b"
    assert by_text.description == "tells the time"


async def test_create_rejects_bad_input_locally(client: PluginClient, fake: FakeService) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await client.create()
    with pytest.raises(ValueError, match="exactly one"):
        await client.create(TIME_SPEC, description="both")
    with pytest.raises(ValueError, match="invalid plugin spec"):
        await client.create({"name": "@a/b", "actionz": []})
    assert fake.requests["CreatePlugin"] == []


async def test_request_id_is_generated_and_kept_across_retries(
    client: PluginClient, fake: FakeService
) -> None:
    fake.fail["CreatePlugin"] = [unavailable(fake), unavailable(fake)]
    job = await client.create(TIME_SPEC)
    second = await client.create(TIME_SPEC)

    first_ids = [r.request_id for r in fake.requests["CreatePlugin"][:3]]
    assert len(set(first_ids)) == 1
    assert uuid.UUID(first_ids[0]).version == 4
    assert job.request_id == first_ids[0]
    assert second.request_id != job.request_id and second.id != job.id


async def test_explicit_request_id_makes_create_idempotent(client: PluginClient) -> None:
    first = await client.create(TIME_SPEC, request_id="req-1")
    again = await client.create(TIME_SPEC, request_id="req-1")
    assert again.id == first.id


async def test_retries_give_up_after_the_budget(target: str, fake: FakeService) -> None:
    fake.fail["GetJob"] = [unavailable(fake) for _ in range(1000)]
    delays: list[float] = []
    retry = Retry(initial=timedelta(milliseconds=10), timeout=timedelta(milliseconds=300))
    async with PluginClient(
        target, token=fake.token, retry=retry, on_retry=lambda _, delay: delays.append(delay)
    ) as plugin_client:
        with pytest.raises(UnavailableError, match="draining"):
            await plugin_client.get("job-1")
    assert 2 <= len(fake.requests["GetJob"]) == len(delays) + 1 < 100


def rate_limited(fake: FakeService, seconds: float) -> object:
    return fake.error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "rate limit reached",
        error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(seconds), nanos=round(seconds % 1 * 1e9))
        ),
        error_details_pb2.ErrorInfo(reason="RATE_LIMITED"),
    )


async def test_short_rate_limits_are_waited_out(target: str, fake: FakeService) -> None:
    """A refusal whose RetryInfo is within Retry.rate_limit_wait: the client sleeps the
    server's delay (not its own backoff) and the call succeeds."""
    delays: list[float] = []
    async with PluginClient(
        target, token=fake.token, on_retry=lambda _, delay: delays.append(delay)
    ) as plugin_client:
        created = await plugin_client.create(TIME_SPEC)
        fake.fail["GetJob"] = [rate_limited(fake, 0.2), rate_limited(fake, 0.2)]
        started = time.monotonic()
        job = await plugin_client.get(created.id)
        waited = time.monotonic() - started
    assert job.id == created.id
    assert len(delays) == 2 and all(0.2 <= d <= 0.22 for d in delays)
    assert waited >= 0.4


async def test_long_rate_limits_are_raised_at_once(target: str, fake: FakeService) -> None:
    fake.fail["GetJob"] = [rate_limited(fake, 30)]
    retry = Retry(rate_limit_wait=timedelta(seconds=5))
    async with PluginClient(target, token=fake.token, retry=retry) as plugin_client:
        with pytest.raises(RateLimitedError) as caught:
            await plugin_client.get("job-1")
    assert caught.value.retry_after == timedelta(seconds=30)
    assert len(fake.requests["GetJob"]) == 1


async def test_a_server_never_reached_is_reported_soon(fake: FakeService) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    retry = Retry(timeout=timedelta(seconds=60), connect_timeout=timedelta(milliseconds=300))
    started = time.monotonic()
    async with PluginClient(f"127.0.0.1:{port}", retry=retry) as plugin_client:
        with pytest.raises(UnavailableError):
            await plugin_client.get("job-1")
    assert time.monotonic() - started < 5


async def test_cancel_and_delete_are_not_retried(client: PluginClient, fake: FakeService) -> None:
    job = await client.create(TIME_SPEC)
    fake.fail["CancelJob"] = [unavailable(fake)]
    with pytest.raises(UnavailableError):
        await client.cancel(job.id)
    assert (await client.cancel(job.id)).state == pb.JOB_STATE_CANCELLED
    with pytest.raises(FailedPreconditionError):
        await client.cancel(job.id)
    await client.delete(job.id)
    with pytest.raises(NotFoundError):
        await client.delete(job.id)
    assert len(fake.requests["CancelJob"]) == 3


async def test_list_all_follows_page_tokens(client: PluginClient, fake: FakeService) -> None:
    for n in range(7):
        await client.create(pb.PluginSpec(name=f"@a/plugin-{n}"))
    await client.cancel("job-2")

    names = [job.spec.name async for job in client.list_all(page_size=3)]
    assert names == [f"@a/plugin-{n}" for n in reversed(range(7))]
    assert [r.page_token for r in fake.requests["ListJobs"]] == ["", "3", "6"]
    page = await client.list(state=pb.JOB_STATE_CANCELLED)
    assert [job.id for job in page.jobs] == ["job-2"] and page.next_page_token == ""


async def watch_seqs(client: PluginClient, job_id: str, after_seq: int = 0) -> list[int]:
    return [event.seq async for event in client.watch(job_id, after_seq) if event.seq]


async def test_watch_yields_snapshot_heartbeats_and_events(
    client: PluginClient, fake: FakeService
) -> None:
    job = await client.create(TIME_SPEC)
    events = [event async for event in client.watch(job.id)]

    assert events[0].HasField("snapshot") and events[0].seq == 0
    assert [e.seq for e in events if e.seq] == list(range(1, 8))
    assert sum(e.HasField("heartbeat") for e in events) == 7
    assert events[-1].job.state == pb.JOB_STATE_SUCCEEDED


async def test_watch_resumes_after_unavailable(client: PluginClient, fake: FakeService) -> None:
    job = await client.create(TIME_SPEC)
    fake.watch_breaks = [3, 0, 2]  # drain after 3 events, then right after the snapshot

    assert await watch_seqs(client, job.id) == list(range(1, 8))
    assert [r.after_seq for r in fake.requests["WatchJob"]] == [0, 3, 3, 5]


async def test_watch_resumes_from_a_given_seq(client: PluginClient, fake: FakeService) -> None:
    job = await client.create(TIME_SPEC)
    fake.watch_breaks = [1]

    assert await watch_seqs(client, job.id, after_seq=4) == [5, 6, 7]
    assert [r.after_seq for r in fake.requests["WatchJob"]] == [4, 5]


async def test_watch_drops_replayed_duplicates(client: PluginClient, fake: FakeService) -> None:
    job = await client.create(TIME_SPEC)
    fake.watch_breaks = [4]
    fake.replay_from_start = True

    assert await watch_seqs(client, job.id) == list(range(1, 8))


async def test_watch_raises_on_a_gap(client: PluginClient, fake: FakeService) -> None:
    job = await client.create(TIME_SPEC)
    del fake.events[job.id][2]  # seq 3

    seen: list[int] = []
    with pytest.raises(EventGapError, match="seq 4 followed 2") as caught:
        async for event in client.watch(job.id):
            seen.append(event.seq)
    assert [s for s in seen if s] == [1, 2]
    assert (caught.value.last, caught.value.got, caught.value.reason) == (2, 4, "EVENT_GAP")


async def test_watch_gives_up_after_the_budget(target: str, fake: FakeService) -> None:
    retry = Retry(initial=timedelta(milliseconds=10), timeout=timedelta(milliseconds=300))
    async with PluginClient(target, token=fake.token, retry=retry) as plugin_client:
        job = await plugin_client.create(TIME_SPEC)
        fake.watch_breaks = [0] * 10_000
        with pytest.raises(UnavailableError):
            await watch_seqs(plugin_client, job.id)


async def test_watch_raises_other_errors_at_once(client: PluginClient, fake: FakeService) -> None:
    with pytest.raises(NotFoundError) as caught:
        await watch_seqs(client, "nope")
    assert caught.value.reason == "JOB_NOT_FOUND"
    assert len(fake.requests["WatchJob"]) == 1


async def test_download_verifies_the_sha256(client: PluginClient, fake: FakeService) -> None:
    job = await client.create(TIME_SPEC)
    fake.artifact = bytes(range(256)) * 5

    artifact = await client.download(job.id)
    assert artifact.data == fake.artifact
    assert artifact.sha256 == hashlib.sha256(fake.artifact).hexdigest()

    fake.artifact_sha = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(IntegrityError, match="sha256"):
        await client.download(job.id)


async def test_download_to_unpacks_the_plugin_folder(
    client: PluginClient, fake: FakeService, tmp_path: Path
) -> None:
    job = await client.create(TIME_SPEC)
    folder = await client.download_to(job.id, tmp_path / "out")

    assert folder == tmp_path / "out" / "plugin-time"
    assert json.loads((folder / "package.json").read_text())["name"] == "@elizaos/plugin-time"
    assert (folder / "src" / "index.ts").is_file()
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["plugin-time"]
    with pytest.raises(FileExistsError):
        await client.download_to(job.id, tmp_path / "out")


def evil_tar(kind: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        good = tarfile.TarInfo("plugin/ok.txt")
        good.size = 2
        tar.addfile(good, io.BytesIO(b"ok"))
        info = tarfile.TarInfo(
            {"dotdot": "plugin/../../evil", "absolute": "/tmp/evil"}.get(kind, "plugin/evil")
        )
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        elif kind == "hardlink":
            info.type, info.linkname = tarfile.LNKTYPE, "plugin/ok.txt"
        elif kind == "device":
            info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        data = b"evil" if info.type == tarfile.REGTYPE else b""
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink", "device"])
async def test_download_to_rejects_unsafe_archives(
    client: PluginClient, fake: FakeService, tmp_path: Path, kind: str
) -> None:
    job = await client.create(TIME_SPEC)
    fake.artifact = evil_tar(kind)
    out = tmp_path / "a" / "b"

    with pytest.raises(UnsafeArchiveError):
        await client.download_to(job.id, out)
    assert not out.parent.exists()  # nothing written, not even the folder


async def test_download_to_rejects_a_corrupt_archive(
    client: PluginClient, fake: FakeService, tmp_path: Path
) -> None:
    job = await client.create(TIME_SPEC)
    fake.artifact = b"not a tarball"
    with pytest.raises(IntegrityError, match="unreadable"):
        await client.download_to(job.id, tmp_path)


async def test_error_details_are_decoded(client: PluginClient, fake: FakeService) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        await client.create({"name": "bad name"})
    error = caught.value
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_SPEC"
    assert [(v.field, v.description) for v in error.field_violations] == [
        ("spec.name", "must look like @scope/plugin-name")
    ]
    assert "spec.name: must look like" in str(error)

    fake.fail["GetJob"] = [
        fake.error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too many requests",
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=7)),
            error_details_pb2.ErrorInfo(reason="RATE_LIMITED"),
        )
    ]
    with pytest.raises(RateLimitedError) as limited:
        await client.get("job-1")
    assert limited.value.retry_after == timedelta(seconds=7)
    assert limited.value.reason == "RATE_LIMITED"
    assert "retry after 7s" in str(limited.value)


async def test_missing_token_is_an_auth_error(target: str) -> None:
    async with PluginClient(target) as anonymous:
        with pytest.raises(AuthError) as caught:
            await anonymous.get("job-1")
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_tls_options_need_cert_and_key_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        TlsOptions(client_cert=tmp_path / "cert.pem")
