"""The model generators end to end: gRPC -> worker -> pipeline -> the official SDK ->
a loopback fake of the model API (real HTTP) -> real toolchain in the sandbox."""

from __future__ import annotations

import asyncio
import io
import tarfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from auton8n.v1 import plugin_service_pb2_grpc as pb_grpc
from google.protobuf import json_format

from server.app import App
from server.domain.spec import PluginSpec
from server.generators.template import render_plugin
from tests.conftest import AppFactory, load_spec
from tests.fakes.model_api import (
    Fail,
    FakeModelAPI,
    Reply,
    last_user_text,
    review,
    spec_reply,
    system_text,
    write,
)
from tests.helpers import create_request, watch_to_end

pytestmark = pytest.mark.e2e

MODEL = "claude-sonnet-5-5"
ACTION = "src/actions/getCurrentTime.ts"
ACTION_TEST = "src/__tests__/actions/getCurrentTime.test.ts"
GOOD_RESULT = "        success: true,\n        text,\n"
BAD_RESULT = '        success: "yes",\n        text,\n'


@pytest.fixture
async def fake() -> AsyncIterator[FakeModelAPI]:
    async with FakeModelAPI(api_key="test-key") as api:
        yield api


async def serve(make_app: AppFactory, fake: FakeModelAPI, **overrides: Any) -> App:
    settings: dict[str, Any] = {
        "anthropic_api_key": "test-key",
        "anthropic_base_url": fake.url,
        "model": MODEL,
        "model_retry_initial_s": 0.01,
        "model_retry_max_s": 0.05,
        **overrides,
    }
    return await make_app(**settings)


async def run_job(
    app: App, spec: dict[str, Any], **fields: Any
) -> tuple[pb.Job, list[pb.JobEvent]]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        job = await stub.CreatePlugin(create_request(spec, **fields))
        events = await watch_to_end(stub, job.id, timeout=180)
        final = await stub.GetJob(pb.GetJobRequest(job_id=job.id))
        return final, events


def plugin(name: str) -> dict[str, str]:
    """The template's output for an acceptance spec: known-good code for the fake."""
    return render_plugin(PluginSpec.from_json(load_spec(name)))


def error_reason(job: pb.Job) -> str:
    from google.rpc import error_details_pb2

    for detail in job.error.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def explain(job: pb.Job) -> str:
    """Why a job did not succeed: its error and its last iteration's diagnostics."""
    found = [f"{pb.Phase.Name(e.phase)} {e.file}:{e.line} {e.code} {e.message}" for e in job.errors]
    return "\n".join([f"iteration {job.iteration}: {job.error.message}", *found])


def logs(events: list[pb.JobEvent]) -> str:
    return "\n".join(e.log.message for e in events if e.HasField("log"))


async def artifact_names(app: App, job_id: str) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        data = b"".join(
            [c.data async for c in stub.DownloadArtifact(pb.DownloadArtifactRequest(job_id=job_id))]
        )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


async def test_type_error_is_repaired_in_iteration_two(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    good = plugin("time")
    broken = {**good, ACTION: good[ACTION].replace(GOOD_RESULT, BAD_RESULT)}
    assert broken[ACTION] != good[ACTION]
    line = broken[ACTION].splitlines().index('        success: "yes",') + 1
    fake.script("write_files", write(broken), write({ACTION: good[ACTION]}))
    app = await serve(make_app, fake)
    job, events = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert job.iteration == 2 and job.validation_score == 92
    first, second = fake.bodies("write_files")
    # Structured output, prompt caching, the full spec and expected exports.
    assert first["tool_choice"] == {"type": "tool", "name": "write_files"}
    assert [t["name"] for t in first["tools"]] == ["write_files"]
    assert all(b["cache_control"] == {"type": "ephemeral"} for b in first["system"])
    system = system_text(first)
    assert "ElizaOS 1.7 contract" in system and "getCurrentTimeAction" in system
    assert '"utcOffset": "number"' in system  # the provider's data structure
    assert first["model"] == MODEL and first["system"] == second["system"]
    # The repair request: the error with file and line, the current file, not the rest.
    repair = last_user_text(second)
    assert f"{ACTION}:{line}" in repair and "TS2322" in repair
    assert "not assignable to type 'boolean'" in repair
    assert f"--- {ACTION} ---" in repair and 'success: "yes"' in repair
    assert "--- src/index.ts ---" in repair
    assert "--- src/providers/timeProvider.ts ---" not in repair
    assert "- src/providers/timeProvider.ts (" in repair  # named, not shown
    # Usage: two write calls and one review (the fake's numbers), with a cost.
    assert (job.usage.input_tokens, job.usage.output_tokens) == (2 * 1200 + 2000, 2 * 800 + 300)
    assert job.usage.cache_read_tokens == 1500
    assert job.usage.cost_usd == pytest.approx((4400 * 3 + 1900 * 15 + 1500 * 0.3) / 1e6)
    assert "review passed: score 92" in logs(events)


async def test_failing_assertion_is_fed_back_by_name_and_message(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    good = plugin("time")
    expectation = 'expect(action.name).toBe("GET_CURRENT_TIME");'
    assert expectation in good[ACTION_TEST]
    wrong = good[ACTION_TEST].replace(expectation, 'expect(action.name).toBe("CURRENT_TIME");')
    fake.script(
        "write_files", write({**good, ACTION_TEST: wrong}), write({ACTION_TEST: good[ACTION_TEST]})
    )
    app = await serve(make_app, fake)
    job, _ = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert job.iteration == 2 and job.test_results.failed == 0
    repair = last_user_text(fake.bodies("write_files")[1])
    assert "[TESTING]" in repair
    assert "getCurrentTime action > describes itself with examples" in repair
    assert "expected 'GET_CURRENT_TIME' to be 'CURRENT_TIME'" in repair
    assert f"--- {ACTION_TEST} ---" in repair and f"--- {ACTION} ---" in repair  # test + module


async def test_rate_limit_is_retried_after_retry_after(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    limited = Fail(
        429,
        "rate_limit_error",
        "Number of requests has exceeded your rate limit",
        {"retry-after": "1"},
    )
    fake.script("write_files", limited, write(plugin("time")))
    app = await serve(make_app, fake)
    job, _ = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert job.iteration == 1
    first, second = fake.requests[:2]
    assert second.at - first.at >= 0.95, "retry-after: 1 must be honoured"
    assert second.headers.get("x-stainless-retry-count") == "0"  # our retry, not the SDK's


async def test_persistent_overload_fails_the_job_after_the_retry_budget(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    fake.script("write_files", *[Fail(529, "overloaded_error", "Overloaded")] * 10)
    app = await serve(make_app, fake, model_retry_budget=3)
    started = time.monotonic()
    job, _ = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_FAILED
    assert error_reason(job) == "MODEL_UNAVAILABLE"
    assert job.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "529 overloaded_error" in job.error.message
    assert "retry budget (3 retries) is spent" in job.error.message
    assert len(fake.requests) == 4  # one try + three retries
    assert time.monotonic() - started < 30


async def test_hostile_paths_write_nothing_outside_and_the_model_is_told(
    make_app: AppFactory, fake: FakeModelAPI, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "target.ts"
    target.write_text("export const untouched = true;\n")
    absolute = f"/tmp/auton8n-absolute-{uuid.uuid4().hex}.ts"
    good = plugin("time")
    broken = {**good, ACTION: good[ACTION].replace(GOOD_RESULT, BAD_RESULT)}
    workspaces = tmp_path / "data" / "workspaces"

    def plant_and_answer(_body: dict[str, Any], _api: FakeModelAPI) -> Reply:
        # Sandboxed code from an earlier step could have planted links like these.
        (ws,) = workspaces.iterdir()
        (ws / "src").mkdir(exist_ok=True)
        (ws / "src" / "planted.ts").symlink_to(target)
        (ws / "src" / "linked").symlink_to(outside, target_is_directory=True)
        hostile = {
            "../escape.ts": "export const escaped = 1;\n",
            "src/../../escape2.ts": "x",
            absolute: "x",
            "src/planted.ts": "export const overwritten = true;\n",
            "src/linked/new.ts": "export const created = true;\n",
            "src/huge.ts": "// " + "x" * 300_000 + "\n",
        }
        return write({**broken, **hostile})

    def clean_and_fix(_body: dict[str, Any], _api: FakeModelAPI) -> Reply:
        (ws,) = workspaces.iterdir()
        (ws / "src" / "linked").unlink()
        return write({ACTION: good[ACTION]}, delete=["src/planted.ts"])

    fake.script("write_files", plant_and_answer, clean_and_fix)
    app = await serve(make_app, fake)
    job, _ = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert_nothing_escaped(tmp_path, outside, Path(absolute))
    repair = last_user_text(fake.bodies("write_files")[1])
    for path, reason in [
        ("../escape.ts", "'..' segment"),
        ("src/../../escape2.ts", "'..' segment"),
        (absolute, "absolute path"),
        ("src/planted.ts", "exists and is not a regular file"),
        ("src/linked/new.ts", "'linked' is a symlink"),
        ("src/huge.ts", "larger than 262144 bytes"),
    ]:
        assert f"{path} path-rejected not written: " in repair and reason in repair, path
    names = await artifact_names(app, job.id)
    assert not any(n.endswith(("planted.ts", "huge.ts", "new.ts", "escape.ts")) for n in names)


def assert_nothing_escaped(tmp_path: Path, outside: Path, absolute: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["target.ts"]
    assert (outside / "target.ts").read_text() == "export const untouched = true;\n"
    assert not absolute.exists()
    stray = [p for p in tmp_path.rglob("*") if p.name in {"escape.ts", "escape2.ts", "new.ts"}]
    assert stray == []


async def test_cut_off_answer_is_never_used_and_continued(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    good = plugin("time")
    first_half = {p: c for p, c in good.items() if not p.startswith("src/__tests__/")}
    tests = {p: c for p, c in good.items() if p.startswith("src/__tests__/")}
    cut = Reply(
        (
            ("write_files", {"files": [{"path": p, "content": c} for p, c in first_half.items()]}),
            ("write_files", {"files": [{"path": "src/cut.ts", "content": "export const cu"}]}),
        ),
        stop="max_tokens",
    )
    fake.script("write_files", cut, write(tests))
    app = await serve(make_app, fake)
    job, _ = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert job.iteration == 1
    _, second = fake.bodies("write_files")
    assistant = second["messages"][1]
    assert assistant["role"] == "assistant"
    assert [b["type"] for b in assistant["content"]] == ["tool_use"]  # the complete call only
    follow_up = second["messages"][2]["content"]
    assert follow_up[0]["type"] == "tool_result"
    assert follow_up[0]["tool_use_id"] == assistant["content"][0]["id"]
    assert "cut off at the output limit (16000 tokens)" in follow_up[1]["text"]
    names = await artifact_names(app, job.id)
    assert not any(n.endswith("src/cut.ts") for n in names)
    assert any(n.endswith(ACTION_TEST) for n in names)


async def test_cut_off_answers_beyond_the_continuations_fail_the_iteration_clearly(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    fake.script("write_files", write(plugin("time"), stop="max_tokens"), write(plugin("time")))
    app = await serve(make_app, fake, model_max_continuations=0)
    job, _ = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert job.iteration == 2
    repair = last_user_text(fake.bodies("write_files")[1])
    assert "max-tokens your answer was cut off at the output limit (16000 tokens)" in repair
    assert "none of its files were written" in repair


async def test_review_below_threshold_triggers_another_iteration(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    issue = {
        "file": ACTION,
        "line": 12,
        "severity": "major",
        "message": "the handler ignores the timezone parameter",
    }
    fake.script("write_files", write(plugin("time")), write({ACTION: plugin("time")[ACTION]}))
    fake.script("submit_review", review(40, False, [issue]), review(88))
    app = await serve(make_app, fake)
    job, events = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert (job.iteration, job.validation_score) == (2, 88)
    first_review = fake.bodies("submit_review")[0]
    assert first_review["tool_choice"] == {"type": "tool", "name": "submit_review"}
    assert f"--- {ACTION} ---" in last_user_text(first_review)
    repair = last_user_text(fake.bodies("write_files")[1])
    assert "review score 40 is below the threshold 70 (not production ready)" in repair
    assert f"{ACTION}:12 review [major] the handler ignores the timezone parameter" in repair
    assert "review failed: score 40 (threshold 70)" in logs(events)


@pytest.mark.parametrize("name", ["time", "weather", "shell", "astral"])
async def test_acceptance_specs_succeed_with_a_model_that_writes_correct_code(
    make_app: AppFactory, fake: FakeModelAPI, name: str
) -> None:
    fake.script("write_files", write(plugin(name)))
    app = await serve(make_app, fake)
    job, _ = await run_job(app, load_spec(name))

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert job.iteration == 1 and job.test_results.failed == 0 and job.test_results.passed > 0
    assert job.validation_score == 92 and job.usage.cost_usd > 0
    assert len(fake.bodies("submit_review")) == 1


async def test_missing_key_fails_the_job_at_once(make_app: AppFactory) -> None:
    app = await make_app(model_retry_initial_s=0.01)
    started = time.monotonic()
    job, _ = await run_job(app, load_spec("time"), model=MODEL)

    assert job.state == pb.JOB_STATE_FAILED
    assert error_reason(job) == "MODEL_KEY_MISSING"
    assert job.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "ANTHROPIC_API_KEY" in job.error.message
    assert time.monotonic() - started < 10


async def test_rejected_key_fails_the_job_without_retries(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    app = await serve(make_app, fake, anthropic_api_key="sk-ant-wrong-key")
    job, _ = await run_job(app, load_spec("time"))

    assert job.state == pb.JOB_STATE_FAILED
    assert error_reason(job) == "MODEL_KEY_REJECTED"
    assert job.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "401 authentication_error" in job.error.message
    assert "sk-ant-wrong-key" not in job.error.message
    assert len(fake.requests) == 1


async def test_openai_compatible_model_generates_through_the_chat_api(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    good = plugin("time")
    broken = {**good, ACTION: good[ACTION].replace(GOOD_RESULT, BAD_RESULT)}
    fake.script("write_files", write(broken), write({ACTION: good[ACTION]}))
    app = await make_app(
        openai_api_key="test-key",
        openai_base_url=fake.url + "/v1",
        model_retry_initial_s=0.01,
    )
    job, _ = await run_job(app, load_spec("time"), model="openai:gpt-4o")

    assert job.state == pb.JOB_STATE_SUCCEEDED, explain(job)
    assert job.iteration == 2 and job.model == "openai:gpt-4o"
    first, second = fake.bodies("write_files")
    assert all(r.path == "/v1/chat/completions" for r in fake.requests)
    assert first["model"] == "gpt-4o"
    assert first["tool_choice"] == {"type": "function", "function": {"name": "write_files"}}
    assert "TS2322" in last_user_text(second)
    assert job.usage.cost_usd > 0


async def test_description_becomes_a_spec_through_the_model(
    make_app: AppFactory, fake: FakeModelAPI
) -> None:
    derived = load_spec("weather")
    fake.script("submit_spec", spec_reply(derived))
    fake.script("write_files", write(plugin("weather")))
    app = await serve(make_app, fake)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        stub = pb_grpc.PluginServiceStub(channel)
        job = await stub.CreatePlugin(
            pb.CreatePluginRequest(description="A plugin that tells the weather and forecasts")
        )
        await asyncio.wait_for(watch_to_end(stub, job.id), 180)
        final = await stub.GetJob(pb.GetJobRequest(job_id=job.id))
    spec = json_format.MessageToDict(job.spec)
    assert spec["name"] == "@elizaos/plugin-weather"
    assert [a["name"] for a in spec["actions"]] == ["getCurrentWeather", "getWeatherForecast"]
    (request,) = fake.bodies("submit_spec")
    assert request["tools"][0]["input_schema"]["properties"]["environmentVariables"]
    assert "tells the weather and forecasts" in last_user_text(request)
    assert final.state == pb.JOB_STATE_SUCCEEDED, explain(final)
