"""Prompts: what the model sees, and how small a repair prompt stays."""

from __future__ import annotations

import json

import pytest

from bench.prompt_sizes import SPECS, measure
from server.domain.results import Diagnostic
from server.domain.spec import PluginSpec
from server.domain.states import Phase
from server.generators import prompts
from server.generators.template import expected_exports, render_plugin
from tests.conftest import load_spec


def spec_of(name: str) -> PluginSpec:
    return PluginSpec.from_json(load_spec(name))


def test_static_system_part_is_the_same_for_every_job() -> None:
    text = prompts.STATIC_SYSTEM
    for needle in [
        "ElizaOS 1.7 contract",
        "ActionResult { success: boolean",
        "runtime.services maps a type to",
        "write_files",
        "--- tsconfig.json ---",
        "--- biome.json ---",
        "--- vitest.config.ts ---",
        "--- src/__tests__/test-utils.ts ---",
        "export function createMockRuntime",
    ]:
        assert needle in text, needle
    assert "@elizaos/plugin" not in text  # nothing spec-specific: one cache entry for all


@pytest.mark.parametrize("name", ["time", "weather", "shell", "astral"])
def test_plugin_block_carries_the_full_spec_and_expected_exports(name: str) -> None:
    spec = spec_of(name)
    block = prompts.plugin_block(spec)
    embedded = block.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(embedded) == spec.to_json()  # parameters, structures, methods, ...
    for path, export in expected_exports(spec).items():
        assert f"- {path} exports `{export}`" in block
    for variable in spec.environment_variables:
        assert f"- {variable.name}" in block
    for dependency in spec.dependencies:
        assert f'"{dependency}"' in block
    assert "--- package.json ---" in block


def test_repair_prompt_shows_only_the_files_involved() -> None:
    spec = spec_of("time")
    files = render_plugin(spec)
    test_file = "src/__tests__/providers/timeProvider.test.ts"
    diagnostics = [
        Diagnostic(
            Phase.BUILDING, "Type 'string' is not assignable", "src/config.ts", 3, 1, "TS2322"
        ),
        Diagnostic(
            Phase.TESTING,
            "timeProvider > x: AssertionError: expected 1 to be 2",
            test_file,
            code="test",
        ),
        Diagnostic(
            Phase.VALIDATING,
            "missing file (it must export 'x')",
            "src/actions/x.ts",
            code="validate",
        ),
        Diagnostic(
            Phase.GENERATING, "not written: absolute path", "/etc/passwd", code="path-rejected"
        ),
    ]
    text = prompts.repair_prompt(spec, 3, files, diagnostics)
    shown = {
        line[4:-4]
        for line in text.splitlines()
        if line.startswith("--- ") and not line.startswith("--- end")
    }
    assert shown == {"src/config.ts", test_file, "src/providers/timeProvider.ts", "src/index.ts"}
    assert "- [BUILDING] src/config.ts:3:1 TS2322 Type 'string' is not assignable" in text
    assert "- [GENERATING] /etc/passwd path-rejected not written: absolute path" in text
    assert "- src/actions/getCurrentTime.ts (" in text  # named, not shown
    assert text.startswith("Iteration 3 of building @elizaos/plugin-time")


def test_repair_prompt_is_bounded() -> None:
    spec = spec_of("time")
    files = {"src/index.ts": "export {};\n", "src/big.ts": "x" * 200_000}
    many = [Diagnostic(Phase.LINTING, "m" * 5000, "src/big.ts", i, 1, "lint/x") for i in range(500)]
    text = prompts.repair_prompt(spec, 2, files, many)
    assert len(text) < 120_000
    assert "--- src/big.ts ---" not in text and "too large to show here: src/big.ts" in text
    assert "... and 440 more problems" in text


def test_review_prompt_shows_the_sources_not_the_configs() -> None:
    files = render_plugin(spec_of("shell"))
    text = prompts.review_prompt(files)
    assert "--- src/services/ShellService.ts ---" in text
    assert "--- tsconfig.json ---" not in text and "submit_review" in text


@pytest.mark.parametrize("name", SPECS)
def test_repair_prompt_for_one_file_is_at_most_a_third_of_a_full_regeneration(name: str) -> None:
    sizes = measure(name)
    assert sizes.message_ratio <= 1 / 3, sizes
    assert sizes.weighted_ratio <= 1 / 3, sizes
