"""The model generator against the loopback fake (real SDKs over HTTP, no gRPC, no npm)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from loguru import logger

from server.domain.results import Diagnostic, TokenUsage
from server.domain.spec import PluginSpec
from server.domain.states import Phase
from server.generators.base import GenerationRequest, GeneratorError
from server.generators.health import ModelHealth, ProviderStatus
from server.generators.model import ModelGenerator
from server.generators.prompts import SEED_FILES
from server.generators.review import NotedResult
from server.generators.setup import build_registry
from server.settings import Settings
from tests.conftest import load_spec
from tests.fakes.model_api import Fail, FakeModelAPI, Reply, Usage, review, write

SPEC = PluginSpec.from_json(load_spec("time"))
OVERLOADED = Fail(529, "overloaded_error", "Overloaded")


class Counter:
    """A ModelObserver that counts (server.metrics.Metrics in production)."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {}
        self.tokens: dict[str, int] = {}

    def model_request(self, outcome: str) -> None:
        self.requests[outcome] = self.requests.get(outcome, 0) + 1

    def model_tokens(self, kind: str, n: int) -> None:
        self.tokens[kind] = self.tokens.get(kind, 0) + n


@pytest.fixture
async def fake() -> AsyncIterator[FakeModelAPI]:
    async with FakeModelAPI(api_key="test-key") as api:
        yield api


def settings(fake: FakeModelAPI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "anthropic_api_key": "test-key",
        "anthropic_base_url": fake.url,
        "openai_api_key": "test-key",
        "openai_base_url": fake.url + "/v1",
        "model_retry_initial_s": 0.001,
        "model_retry_max_s": 0.002,
        **overrides,
    }
    return Settings(**values)


def generator(
    fake: FakeModelAPI,
    model: str = "claude-sonnet-5-5",
    observer: Counter | None = None,
    health: ModelHealth | None = None,
    **overrides: Any,
) -> ModelGenerator:
    registry = build_registry(settings(fake, **overrides), health=health, observer=observer)
    made = registry.resolve(model)
    assert isinstance(made, ModelGenerator)
    return made


async def generate(gen: ModelGenerator, **fields: Any) -> NotedResult:
    return await gen.generate(GenerationRequest(SPEC, fields.pop("iteration", 1), **fields))


@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "openai:gpt-4o"])
async def test_a_cut_off_call_is_dropped_and_the_iteration_says_so(
    fake: FakeModelAPI, model: str
) -> None:
    calls = (
        ("write_files", {"files": [{"path": "src/a.ts", "content": "export const a = 1;\n"}]}),
        ("write_files", {"files": [{"path": "src/b.ts", "content": "export const b = 2;\n"}]}),
    )
    fake.script("write_files", Reply(calls, stop="max_tokens"), Reply(calls, stop="max_tokens"))
    observer = Counter()
    result = await generate(generator(fake, model, observer, model_max_continuations=1))

    assert observer.requests == {"invalid": 2}
    assert "src/a.ts" in result.files and "src/b.ts" not in result.files
    assert set(SEED_FILES) <= set(result.files)  # the reference configs on a fresh start
    (note,) = result.notes
    assert note.code == "max-tokens" and "2 time(s)" in note.message
    assert result.usage.output_tokens == 1600


async def test_malformed_tool_input_keeps_the_good_files(fake: FakeModelAPI) -> None:
    files: list[Any] = [
        {"path": "src/ok.ts", "content": "export const ok = 1;\n"},
        {"path": "src/no-content.ts"},
        "src/just-a-string.ts",
        {"path": "src/ok.ts", "content": "export const ok = 2;\n"},
    ]
    fake.script("write_files", Reply((("write_files", {"files": files, "delete": [3]}),)))
    result = await generate(generator(fake), current_files={"src/index.ts": ""})

    assert result.files == {"src/ok.ts": "export const ok = 2;\n"}
    messages = [n.message for n in result.notes]
    assert messages == [
        "write_files: files[1] needs a string 'path' and 'content'",
        "write_files: files[2] needs a string 'path' and 'content'",
        "write_files: src/ok.ts was given twice; the last content was used",
        "write_files: delete[0] is not a path string",
    ]


async def test_an_answer_without_a_tool_call_writes_nothing_and_says_why(
    fake: FakeModelAPI,
) -> None:
    fake.script("write_files", Reply((), stop="end_turn", text="Here is the plugin: ```ts ...```"))
    result = await generate(generator(fake), current_files={"src/index.ts": ""})
    assert result.files == {}
    (note,) = result.notes
    assert note.code == "no-tool-call" and "Here is the plugin" in note.message


async def test_repair_request_after_iteration_one(fake: FakeModelAPI) -> None:
    fake.script("write_files", write({"src/index.ts": "export {};\n"}))
    broken = Diagnostic(Phase.BUILDING, "Cannot find name 'x'.", "src/index.ts", 2, 3, "TS2304")
    await generate(
        generator(fake), iteration=2, current_files={"src/index.ts": "x;\n"}, diagnostics=(broken,)
    )
    (body,) = fake.bodies("write_files")
    text = body["messages"][0]["content"][0]["text"]
    assert (
        "src/index.ts:2:3 TS2304 Cannot find name 'x'." in text and "--- src/index.ts ---" in text
    )


async def test_review_verdicts(fake: FakeModelAPI) -> None:
    issue = {"file": "src/index.ts", "line": 3, "severity": "minor", "message": "naming"}
    fake.script(
        "submit_review",
        review(64, False, [issue, {"message": 7}]),
        Reply((("submit_review", {"score": 90, "issues": []}),)),
        Reply((("submit_review", {"score": 90, "production_ready": True}),), stop="max_tokens"),
    )
    gen = generator(fake)
    verdict = await gen.review(SPEC, {"src/index.ts": "export {};\n"})
    assert (verdict.score, verdict.production_ready, verdict.usable) == (64, False, True)
    assert [(i.file, i.line, i.severity, i.message) for i in verdict.issues] == [
        ("src/index.ts", 3, "minor", "naming")
    ]
    malformed = await gen.review(SPEC, {})
    assert not malformed.usable and "no usable submit_review" in malformed.note
    cut = await gen.review(SPEC, {})
    assert not cut.usable and "cut off" in cut.note
    assert cut.usage.input_tokens == 1200  # tokens are counted even without a verdict


async def test_usage_cost_and_metrics(fake: FakeModelAPI) -> None:
    observer = Counter()
    fake.script("write_files", OVERLOADED, write({}, usage=Usage(1000, 100, 5000, 2000)))
    result = await generate(generator(fake, observer=observer))
    assert result.usage == TokenUsage(1000, 100, 5000, 2000, result.usage.cost_usd)
    assert result.usage.cost_usd == pytest.approx(
        (1000 * 3 + 100 * 15 + 5000 * 0.3 + 2000 * 3.75) / 1e6
    )
    assert observer.requests == {"error": 1, "ok": 1}
    assert observer.tokens == {
        "input": 1000,
        "output": 100,
        "cache_read": 5000,
        "cache_write": 2000,
    }


async def test_unknown_model_costs_nothing_with_a_note_and_prices_are_configurable(
    fake: FakeModelAPI,
) -> None:
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="INFO")
    try:
        fake.script("write_files", write({}), write({}))
        unknown = await generate(generator(fake, "claude-fable-5-2"))
        priced = await generate(
            generator(fake, "claude-fable-5-2", model_prices="claude-fable-=10/20")
        )
    finally:
        logger.remove(sink)
    assert unknown.usage.cost_usd == 0.0
    assert any("no price known for model 'claude-fable-5-2'" in line for line in seen)
    assert priced.usage.cost_usd == pytest.approx((1200 * 10 + 800 * 20) / 1e6)


async def test_health_degrades_after_repeated_failures_and_recovers(fake: FakeModelAPI) -> None:
    health = ModelHealth(degraded_after=3)
    changes: list[ProviderStatus] = []
    health.subscribe(changes.append)
    fake.script("write_files", *[OVERLOADED] * 3)
    with pytest.raises(GeneratorError) as caught:
        await generate(generator(fake, health=health, model_retry_budget=2))
    assert caught.value.reason == "MODEL_UNAVAILABLE"
    assert health.degraded and "anthropic: HTTP 529 overloaded_error" in health.reason
    fake.script("write_files", write({}))
    await generate(generator(fake, health=health))
    assert not health.degraded and health.reason == ""
    assert [c.degraded for c in changes] == [True, False]


async def test_rejected_key_is_fatal_and_degrades_at_once(fake: FakeModelAPI) -> None:
    health = ModelHealth(degraded_after=3)
    gen = generator(fake, health=health, anthropic_api_key="sk-ant-secret-value")
    with pytest.raises(GeneratorError) as caught:
        await generate(gen)
    assert caught.value.reason == "MODEL_KEY_REJECTED"
    assert "sk-ant-secret-value" not in str(caught.value) + repr(gen.adapter)
    assert health.status("anthropic").degraded and len(fake.requests) == 1


@pytest.mark.parametrize(
    ("fail", "reason"),
    [
        (Fail(404, "not_found_error", "model: claude-nope"), "MODEL_NOT_FOUND"),
        (Fail(400, "invalid_request_error", "prompt is too long"), "MODEL_REQUEST_REJECTED"),
    ],
)
async def test_request_errors_are_not_retried(fake: FakeModelAPI, fail: Fail, reason: str) -> None:
    fake.script("write_files", fail)
    with pytest.raises(GeneratorError) as caught:
        await generate(generator(fake))
    assert caught.value.reason == reason and fail.message in str(caught.value)
    assert len(fake.requests) == 1


async def test_timeouts_and_connection_errors_are_retried(fake: FakeModelAPI) -> None:
    async def slow(_body: dict[str, Any], _api: FakeModelAPI) -> Reply:
        await asyncio.sleep(0.5)
        return write({})

    observer = Counter()
    fake.script("write_files", slow, write({"src/x.ts": "export {};\n"}))
    result = await generate(generator(fake, observer=observer, model_request_timeout_s=0.2))
    assert "src/x.ts" in result.files and observer.requests == {"timeout": 1, "ok": 1}

    closed = FakeModelAPI()
    await closed.start()
    url = closed.url
    await closed.stop()  # nothing listens there any more
    with pytest.raises(GeneratorError) as caught:
        await generate(generator(fake, anthropic_base_url=url, model_retry_budget=1))
    assert caught.value.reason == "MODEL_UNAVAILABLE" and "connection failed" in str(caught.value)


async def test_openai_usage_counts_cached_prompt_tokens_as_cache_reads(fake: FakeModelAPI) -> None:
    fake.script("write_files", write({}, usage=Usage(1000, 50, cache_read=3000)))
    result = await generate(generator(fake, "openai:gpt-4o-mini"))
    assert (result.usage.input_tokens, result.usage.cache_read_tokens) == (1000, 3000)
    (body,) = fake.bodies("write_files")
    assert body["max_tokens"] == 16000 and body["model"] == "gpt-4o-mini"
    assert body["messages"][0]["role"] == "system"
    assert "ElizaOS 1.7 contract" in body["messages"][0]["content"]
