"""Secrets stay secret: API tokens and the model key never reach logs, events or job
records; log records are scrubbed of anything that looks like a credential."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from loguru import logger
from sqlalchemy import text

from server.app import App
from server.auth.tokens import parse_token
from server.logs import configure_logging
from tests.auth.helpers import bearer
from tests.conftest import AppFactory, load_spec
from tests.helpers import create_request

MODEL_KEY = "sk-ant-api03-" + "K" * 40


@pytest.fixture
def configured_logging(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    configure_logging("DEBUG", "json")
    yield
    logger.remove()
    logger.configure(patcher=lambda record: None)
    # Whatever stderr is at the time (the captured stream of this test closes after it).
    logger.add(lambda message: sys.stderr.write(message))
    logging.basicConfig(handlers=[], force=True)


def test_log_records_are_scrubbed(
    configured_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "a8n_0123456789ab_" + "s" * 43
    logger.info("call with authorization: Bearer {}", token)
    logger.info("ANTHROPIC_API_KEY={} and api_key: {}", MODEL_KEY, "hunter2hunter2")
    logging.getLogger("some.library").warning("retrying with token=%s", token)
    logger.info("Authorization: bearer {} ; {}", token, MODEL_KEY)
    err = capsys.readouterr().err
    assert err.count("[REDACTED]") >= 5, err
    for secret in (token, "s" * 43, MODEL_KEY, "hunter2hunter2"):
        assert secret not in err


@pytest.fixture
def captured() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message} {extra}")
    yield lines
    logger.remove(sink)


async def _database_text(app: App) -> str:
    assert app._engine is not None
    dump = []
    async with app._engine.connect() as conn:
        for table in ("jobs", "job_events", "iterations", "artifacts", "api_tokens"):
            dump.append(repr((await conn.execute(text(f"SELECT * FROM {table}"))).all()))
    return "\n".join(dump)


async def test_tokens_and_the_model_key_reach_no_log_event_or_record(
    make_app: AppFactory, captured: list[str]
) -> None:
    app = await make_app(auth_mode="required", anthropic_api_key=MODEL_KEY, model="template")
    assert app.tokens is not None
    issued = await app.tokens.create(tenant="alice", name="laptop")
    revoked = await app.tokens.create(tenant="alice")
    await app.tokens.revoke(revoked.info.id)
    secret = parse_token(issued.token)
    assert secret is not None
    secrets = [issued.token, secret[1], revoked.token, MODEL_KEY]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        job = await stub.CreatePlugin(
            create_request(load_spec("time"), model="template"), metadata=bearer(issued.token)
        )
        for token in (revoked.token, issued.token + "x", "a8n_" + "f" * 12 + "_guess"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=bearer(token))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert token not in (caught.value.details() or "")
        async for _ in stub.WatchJob(
            pb.WatchJobRequest(job_id=job.id), metadata=bearer(issued.token)
        ):
            break
        await stub.CancelJob(pb.CancelJobRequest(job_id=job.id), metadata=bearer(issued.token))
        answered = await stub.GetJob(pb.GetJobRequest(job_id=job.id), metadata=bearer(issued.token))
    stored = await _database_text(app)
    logs = "\n".join(captured)
    assert "refused an invalid or revoked API token" in logs  # the failures were logged
    for secret in secrets:
        assert secret not in logs
        assert secret not in stored
        assert secret not in str(answered)
