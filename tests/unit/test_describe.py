"""The offline description -> spec heuristic matches whole words, never substrings."""

from __future__ import annotations

from server.domain.validation import ValidationLimits, validate_spec
from server.generators.describe import spec_from_description


def names(description: str) -> list[str]:
    return [a.name for a in spec_from_description(description).actions]


def test_clauses_become_actions() -> None:
    assert names("Add a task, list tasks and remove a task by id") == [
        "addTask",
        "listTasks",
        "removeTask",
    ]


def test_whole_words_only() -> None:
    # "todo" must not match "do"; "settings" must not produce "set".
    spec = spec_from_description("Show my todo items and the agent settings panel")
    assert not any(a.name.startswith(("do", "set")) for a in spec.actions)


def test_provider_and_api_key() -> None:
    spec = spec_from_description(
        "Get the current weather for a city and provide weather context; needs an API key"
    )
    assert [a.name for a in spec.actions] == ["getWeather"]
    assert spec.providers and spec.providers[0].name.endswith("Provider")
    assert spec.environment_variables[0].name.endswith("_API_KEY")
    assert spec.environment_variables[0].sensitive


def test_derived_specs_are_valid_and_deterministic() -> None:
    for text in (
        "Translate text between languages",
        "A plugin that reminds people to drink water every hour",
        "x" * 50 + " does nothing useful at all",
        "Search GitHub issues, summarize them, then post a digest to Discord",
    ):
        first, second = spec_from_description(text), spec_from_description(text)
        assert first == second
        assert validate_spec(first, ValidationLimits()) == [], text
