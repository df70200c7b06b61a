"""Registry wiring, settings, deprecated models and the description -> spec step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from loguru import logger

from server.errors import FailedPrecondition, Unavailable
from server.generators.anthropic import AnthropicGenerator, deprecated_models
from server.generators.base import GeneratorError
from server.generators.model import ModelConfig
from server.generators.openai_compat import OpenAICompatibleGenerator
from server.generators.setup import build_describer, build_registry, model_config
from server.generators.template import TemplateGenerator
from server.settings import DEFAULT_CLAUDE_MODEL, Settings, SettingsError
from tests.conftest import load_spec
from tests.fakes.model_api import Fail, FakeModelAPI, Reply, spec_reply


@pytest.fixture
async def fake() -> AsyncIterator[FakeModelAPI]:
    async with FakeModelAPI(api_key="test-key") as api:
        yield api


def test_default_model_is_not_deprecated_by_the_installed_sdk() -> None:
    table = deprecated_models()
    # The SDK drops models from its table once they are gone; any entry shows it was found.
    assert table, "the SDK's deprecation table was not found"
    assert DEFAULT_CLAUDE_MODEL not in table
    assert Settings(anthropic_api_key="k").default_model == DEFAULT_CLAUDE_MODEL


def test_a_deprecated_model_logs_a_warning() -> None:
    old, end_of_life = next(iter(deprecated_models().items()))
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="WARNING")
    try:
        AnthropicGenerator(old, ModelConfig(), api_key="k")
        AnthropicGenerator(DEFAULT_CLAUDE_MODEL, ModelConfig(), api_key="k")
    finally:
        logger.remove(sink)
    (line,) = seen
    assert f"{old} is deprecated" in line and end_of_life in line


def test_registry_serves_template_claude_and_openai_models() -> None:
    registry = build_registry(
        Settings(anthropic_api_key="sk-ant-secret", openai_base_url="http://127.0.0.1:1/v1")
    )
    assert isinstance(registry.resolve("template"), TemplateGenerator)
    claude = registry.resolve("claude-opus-5-5")
    assert isinstance(claude, AnthropicGenerator) and claude.name == "claude-opus-5-5"
    assert "sk-ant-secret" not in repr(claude.adapter)
    local = registry.resolve("openai:llama3.1:8b")
    assert isinstance(local, OpenAICompatibleGenerator)
    assert (local.name, local.adapter.model) == ("openai:llama3.1:8b", "llama3.1:8b")
    again = registry.resolve("claude-opus-5-5")
    assert isinstance(again, AnthropicGenerator) and claude.budget is not again.budget  # per job


@pytest.mark.parametrize(
    ("model", "reason", "needle"),
    [
        ("claude-sonnet-5-5", "MODEL_KEY_MISSING", "ANTHROPIC_API_KEY"),
        ("openai:gpt-4o", "MODEL_KEY_MISSING", "OPENAI_API_KEY"),
    ],
)
def test_models_without_a_key_are_accepted_and_fail_at_once(
    model: str, reason: str, needle: str
) -> None:
    registry = build_registry(Settings())
    registry.check(model)  # CreatePlugin accepts the job...
    with pytest.raises(GeneratorError) as caught:
        registry.resolve(model)  # ...and the worker fails it before any setup
    assert caught.value.reason == reason and needle in str(caught.value)


def test_openai_prefix_needs_a_model_name() -> None:
    with pytest.raises(GeneratorError) as caught:
        build_registry(Settings(openai_api_key="k")).resolve("openai:")
    assert caught.value.reason == "MODEL_NOT_FOUND"


def test_model_settings_come_from_the_environment() -> None:
    env = {
        "AUTON8N_REVIEW_SCORE_THRESHOLD": "80",
        "AUTON8N_MODEL_RETRY_BUDGET": "2",
        "AUTON8N_MAX_OUTPUT_TOKENS": "8000",
        "AUTON8N_MODEL_PRICES": "claude-fable-=1/2;openai:local=0/0/0/0",
        "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1",
    }
    s = Settings.from_env(env)
    config = model_config(s)
    assert (s.review_score_threshold, config.retry_budget, config.max_output_tokens) == (
        80,
        2,
        8000,
    )
    assert config.prices["claude-fable-"].output == 2.0
    assert config.prices["claude-sonnet-"].input == 3.0  # defaults stay


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"max_output_tokens": 0}, "AUTON8N_MAX_OUTPUT_TOKENS"),
        ({"model_retry_budget": -1}, "AUTON8N_MODEL_RETRY_BUDGET"),
        ({"review_score_threshold": 101}, "AUTON8N_REVIEW_SCORE_THRESHOLD"),
        ({"model_prices": "claude-=cheap"}, "AUTON8N_MODEL_PRICES"),
    ],
)
def test_bad_model_settings_name_the_variable(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        build_registry(Settings(**overrides))


async def test_description_without_a_key_uses_the_offline_heuristic() -> None:
    describe = build_describer(Settings())
    spec = await describe("Add a task, list tasks and remove a task by id")
    assert [a.name for a in spec.actions] == ["addTask", "listTasks", "removeTask"]


def model_settings(fake: FakeModelAPI, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "anthropic_api_key": "test-key",
        "anthropic_base_url": fake.url,
        "model_retry_initial_s": 0.001,
        "model_retry_max_s": 0.002,
    }
    return Settings(**{**values, **overrides})


async def test_description_becomes_a_spec_through_the_submit_spec_tool(
    fake: FakeModelAPI,
) -> None:
    fake.script("submit_spec", spec_reply(load_spec("weather")))
    spec = await build_describer(model_settings(fake))("weather for my agent, with an API key")
    assert spec.name == "@elizaos/plugin-weather"
    assert spec.environment_variables[0].name == "WEATHER_API_KEY"
    (body,) = fake.bodies("submit_spec")
    schema = body["tools"][0]["input_schema"]
    assert body["tool_choice"] == {"type": "tool", "name": "submit_spec"}
    assert {"actions", "providers", "services", "evaluators", "environmentVariables"} <= set(
        schema["properties"]
    )
    assert schema["properties"]["providers"]["items"]["properties"]["dataStructure"]


async def test_an_unusable_spec_answer_falls_back_to_the_heuristic(fake: FakeModelAPI) -> None:
    fake.script(
        "submit_spec",
        Reply((("submit_spec", {"name": "x", "actions": "all of them"}),)),
        Reply((), stop="end_turn", text="I think you want a todo plugin."),
    )
    describe = build_describer(model_settings(fake))
    for _ in range(2):
        spec = await describe("Add a task and list tasks")
        assert [a.name for a in spec.actions] == ["addTask", "listTasks"]


async def test_description_errors_map_to_service_errors(fake: FakeModelAPI) -> None:
    fake.script("submit_spec", *[Fail(529, "overloaded_error", "Overloaded")] * 5)
    with pytest.raises(Unavailable) as unavailable:
        await build_describer(model_settings(fake))("a weather plugin")
    assert unavailable.value.reason == "MODEL_UNAVAILABLE"
    assert len(fake.requests) == 3  # the describe budget: two retries, CreatePlugin waits
    with pytest.raises(FailedPrecondition) as rejected:
        await build_describer(model_settings(fake, anthropic_api_key="wrong"))("a plugin")
    assert rejected.value.reason == "MODEL_KEY_REJECTED"
