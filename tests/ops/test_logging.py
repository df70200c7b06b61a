"""Logs an operator can use, read back as the JSON the server writes: every record of a
job's run carries its job_id (also in the generator, in tasks it starts, with two jobs
at once); every record inside an RPC carries request_id, method and peer (the client's
x-request-id, echoed in the trailers); credentials are scrubbed wherever they appear."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from loguru import logger

from server.app import App
from server.generators.base import GenerationRequest, GenerationResult, GeneratorError
from server.generators.registry import GeneratorRegistry
from server.logs import configure_logging
from tests.auth.helpers import bearer
from tests.conftest import assert_no_tasks_left, load_spec, test_settings
from tests.helpers import TERMINAL, create_request, wait_for_state, watch_to_end

MODEL_KEY = "sk-ant-api03-" + "K" * 40
GET_JOB = "/auton8n.v1.PluginService/GetJob"


class JsonLog:
    """What the server wrote to stderr, one JSON object per line."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self.text = ""

    def records(self) -> list[dict[str, Any]]:
        self.text += self._capsys.readouterr().err
        return [json.loads(line)["record"] for line in self.text.splitlines() if line]

    def find(self, message_start: str, **extra: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.records()
            if r["message"].startswith(message_start)
            and all(r["extra"].get(k) == v for k, v in extra.items())
        ]


@pytest.fixture
def json_log(capsys: pytest.CaptureFixture[str]) -> Iterator[JsonLog]:
    configure_logging("DEBUG", "json")
    yield JsonLog(capsys)
    logger.remove()
    logger.configure(patcher=lambda record: None)
    logger.add(lambda message: sys.stderr.write(message))
    logging.basicConfig(handlers=[], force=True)


class LogAndFail:
    """A generator that logs (itself and from a task it starts), then gives up: the job
    runs SETUP and GENERATING and fails fast, without any npm work."""

    name = "log-and-fail"

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        logger.info("generating {}", request.spec.name)

        async def helper() -> None:
            logger.info("helper task for {}", request.spec.name)

        await asyncio.create_task(helper())
        raise GeneratorError("this test's generator stops here")


StartApp = Callable[..., Awaitable[App]]


@pytest.fixture
async def start_app(tmp_path: Path) -> AsyncIterator[StartApp]:
    apps: list[App] = []

    async def start(**overrides: Any) -> App:
        registry = GeneratorRegistry()
        registry.add_exact("log-and-fail", lambda _model: LogAndFail())
        app = App(test_settings(tmp_path, **overrides), generators=registry)
        apps.append(app)
        await app.start()
        return app

    yield start
    for app in apps:
        await asyncio.wait_for(app.stop(grace_s=1.0), 30)
    await assert_no_tasks_left()


async def test_every_record_of_a_job_carries_its_job_id(
    start_app: StartApp, json_log: JsonLog
) -> None:
    app = await start_app()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        jobs = {
            name: await stub.CreatePlugin(create_request(load_spec(name), model="log-and-fail"))
            for name in ("time", "weather")  # two at once: no record takes the other's id
        }
        for job in jobs.values():
            done = await wait_for_state(stub, job.id, TERMINAL, timeout=60)
            assert done.state == pb.JOB_STATE_FAILED
            assert "stops here" in done.error.message
    for job in jobs.values():
        plugin = job.spec.name
        assert json_log.find("job created for", job_id=job.id)
        assert json_log.find("job claimed", job_id=job.id)
        for phase in ("SETUP", "GENERATING"):
            assert json_log.find(f"phase {phase} ", job_id=job.id), phase
        assert json_log.find(f"generating {plugin}", job_id=job.id)
        assert json_log.find(f"helper task for {plugin}", job_id=job.id)
    for record in json_log.find("generating ") + json_log.find("helper task for "):
        plugin = record["message"].rsplit(" ", 1)[1]
        assert record["extra"]["job_id"] == jobs[plugin.split("-")[-1]].id
    assert not [r for r in json_log.find("phase ") if "job_id" not in r["extra"]]


async def test_every_record_of_a_request_carries_its_context(
    start_app: StartApp, json_log: JsonLog
) -> None:
    app = await start_app()
    missing = "0" * 32
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        # The client's request id: logged and echoed in the trailers, on errors too.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetJob(
                pb.GetJobRequest(job_id=missing), metadata=(("x-request-id", "trace-42"),)
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert ("x-request-id", "trace-42") in tuple(caught.value.trailing_metadata() or ())
        # One unsafe to log: a fresh one, sent back; none: a fresh one, sent back on
        # errors only (a trailer on every success costs throughput).
        generated = []
        for metadata in ((("x-request-id", "two words"),), (("x-request-id", "x" * 129),)):
            call = stub.ListJobs(pb.ListJobsRequest(page_size=1), metadata=metadata)
            await call
            trailers = dict(tuple(await call.trailing_metadata() or ()))
            assert len(trailers["x-request-id"]) == 32
            generated.append(trailers["x-request-id"])
        call = stub.ListJobs(pb.ListJobsRequest(page_size=1))
        await call
        assert "x-request-id" not in dict(tuple(await call.trailing_metadata() or ()))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetJob(pb.GetJobRequest(job_id=missing))
        failed_id = dict(tuple(caught.value.trailing_metadata() or ()))["x-request-id"]
        assert len(failed_id) == 32 and failed_id not in generated
        # A stream: records logged while it runs carry the context too.
        job = await stub.CreatePlugin(create_request(load_spec("time"), model="log-and-fail"))
        await wait_for_state(stub, job.id, TERMINAL, timeout=60)
        await watch_to_end(stub, job.id)

    [record] = json_log.find(f"rpc {GET_JOB} NOT_FOUND", request_id="trace-42")
    assert record["level"]["name"] == "DEBUG"
    assert record["extra"]["method"] == GET_JOB
    assert record["extra"]["peer"].startswith("ipv4:127.0.0.1:")
    assert record["extra"]["job_id"] == missing  # the request names a job
    for request_id in generated:
        [listed] = json_log.find("rpc /auton8n.v1.PluginService/ListJobs OK", request_id=request_id)
        assert "job_id" not in listed["extra"]
    [_failed] = json_log.find(f"rpc {GET_JOB} NOT_FOUND", request_id=failed_id)
    [created] = json_log.find("job created for")
    assert created["extra"]["method"] == "/auton8n.v1.PluginService/CreatePlugin"
    assert created["extra"]["job_id"] == job.id and created["extra"]["request_id"]
    [watched] = json_log.find("rpc /auton8n.v1.PluginService/WatchJob OK", job_id=job.id)
    assert watched["extra"]["peer"].startswith("ipv4:127.0.0.1:")


async def test_records_of_inner_interceptors_carry_the_request_context(
    start_app: StartApp, json_log: JsonLog
) -> None:
    app = await start_app(auth_mode="required")
    guess = "a8n_" + "f" * 12 + "_" + "g" * 43
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetJob(
                pb.GetJobRequest(job_id="x"),
                metadata=(*bearer(guess), ("x-request-id", "auth-1")),
            )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert ("x-request-id", "auth-1") in tuple(caught.value.trailing_metadata() or ())
    [refused] = json_log.find("refused an invalid or revoked API token", request_id="auth-1")
    assert refused["extra"]["method"] == GET_JOB
    assert refused["extra"]["peer"].startswith("ipv4:127.0.0.1:")
    assert guess not in json_log.text and "g" * 43 not in json_log.text


async def test_credentials_are_scrubbed_from_context_exceptions_and_urls(
    start_app: StartApp, json_log: JsonLog
) -> None:
    app = await start_app()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        # A key sent as the request id is safe to echo to its sender, not to log.
        await stub.ListJobs(pb.ListJobsRequest(), metadata=(("x-request-id", MODEL_KEY),))
    try:
        raise RuntimeError(f"provider said: invalid x-api-key {MODEL_KEY}")
    except RuntimeError:
        logger.exception("model call failed")
    logger.warning("cannot reach {}", "postgresql+psycopg://auton8n:hunter2pass@db:5432/auton8n")
    with logger.contextualize(note=f"Authorization: Bearer {MODEL_KEY}"):
        logger.info("with a bound secret")

    [listed] = json_log.find("rpc /auton8n.v1.PluginService/ListJobs OK")
    assert listed["extra"]["request_id"] == "[REDACTED]"
    [failed] = json_log.find("model call failed")
    assert failed["exception"]["type"] == "RuntimeError"
    assert "[REDACTED]" in json_log.text
    assert json_log.find("cannot reach postgresql+psycopg://[REDACTED]@db:5432/auton8n")
    [bound] = json_log.find("with a bound secret")
    assert bound["extra"]["note"] == "Authorization: [REDACTED]"
    for secret in (MODEL_KEY, "K" * 40, "hunter2pass"):
        assert secret not in json_log.text
