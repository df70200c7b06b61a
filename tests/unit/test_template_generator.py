"""The offline template generator, without running any Node tool (see tests/e2e for that)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from server.domain.spec import PluginSpec
from server.generators.base import GenerationRequest, Generator, GeneratorError
from server.generators.template import (
    TOOLCHAIN_PACKAGE_JSON,
    TemplateGenerator,
    expected_exports,
    render_plugin,
)
from server.generators.template_naming import LINE_WIDTH, biome_sort_key, ts_string
from server.generators.template_types import TypeNode, invalid_value, parse_type

TIME: dict[str, Any] = {
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
            "parameters": {"time": "string", "fromTimezone": "string", "toTimezone": "string"},
        },
    ],
    "providers": [
        {
            "name": "timeProvider",
            "description": "Provides current time context",
            "dataStructure": {"currentTime": "string", "timezone": "string", "utcOffset": "number"},
        }
    ],
}

HOSTILE_TEXT = (
    'He said "hi" & it\'s `cmd` ${process.exit(1)} */ /* </script><script>alert(1)</script>'
    "\nsecond line\r\n\ttab \\ backslash \u2028 caf\u00e9 \U0001f600 __REPLY__ __CLASS__"
)

FULL: dict[str, Any] = {
    "name": "@acme/plugin-full",
    "description": HOSTILE_TEXT,
    "version": "2.1.0",
    "actions": [
        {
            "name": "getCurrentWeather",
            "description": HOSTILE_TEXT,
            "parameters": {
                "location": "string",
                "units": "celsius | fahrenheit",
                "days": "number?",
                "observer": {"latitude": "number", "longitude": "number"},
                "tags": "string[]",
                "when": "timestamp",
                "headers": "object",
            },
        },
        {"name": "ping", "description": "", "parameters": {}},
    ],
    "providers": [
        {"name": "weatherData", "description": HOSTILE_TEXT, "dataStructure": {"temp": "number"}},
        {"name": "timeProvider", "description": "t", "dataStructure": {}},
    ],
    "services": [
        {"name": "ShellService", "description": HOSTILE_TEXT, "methods": ["execute", "stop"]},
        {"name": "cache", "description": "", "methods": []},
    ],
    "evaluators": [
        {"name": "factCheck", "description": HOSTILE_TEXT, "triggers": [HOSTILE_TEXT, "fact"]},
    ],
    "dependencies": {"axios": "^1.6.0", "zod": "3.22.0", "typescript": "4.0.0"},
    "environmentVariables": [
        {
            "name": "WEATHER_API_KEY",
            "description": HOSTILE_TEXT,
            "required": True,
            "sensitive": True,
        },
        {"name": "OPTIONAL_FLAG", "description": "", "required": False, "sensitive": False},
    ],
}

STATIC = {
    "package.json",
    "README.md",
    "tsconfig.json",
    "tsconfig.build.json",
    "tsup.config.ts",
    "vitest.config.ts",
    "biome.json",
    ".gitignore",
    "src/index.ts",
    "src/config.ts",
    "src/utils/parameters.ts",
    "src/utils/actions.ts",
    "src/utils/settings.ts",
    "src/utils/providers.ts",
    "src/utils/services.ts",
    "src/utils/evaluators.ts",
    "src/__tests__/test-utils.ts",
    "src/__tests__/plugin.test.ts",
}


def spec_of(data: dict[str, Any]) -> PluginSpec:
    return PluginSpec.from_json(data)


def test_time_spec_files_and_exports() -> None:
    files = render_plugin(spec_of(TIME))
    assert set(files) == STATIC | {
        "src/actions/getCurrentTime.ts",
        "src/actions/convertTime.ts",
        "src/providers/timeProvider.ts",
        "src/__tests__/actions/getCurrentTime.test.ts",
        "src/__tests__/actions/convertTime.test.ts",
        "src/__tests__/providers/timeProvider.test.ts",
    }
    assert expected_exports(spec_of(TIME)) == {
        "src/index.ts": "timePlugin",
        "src/actions/getCurrentTime.ts": "getCurrentTimeAction",
        "src/actions/convertTime.ts": "convertTimeAction",
        "src/providers/timeProvider.ts": "timeProvider",
    }


def test_every_component_has_a_module_a_test_and_its_export() -> None:
    spec = spec_of(FULL)
    files = render_plugin(spec)
    exports = expected_exports(spec)
    assert exports == {
        "src/index.ts": "fullPlugin",
        "src/actions/getCurrentWeather.ts": "getCurrentWeatherAction",
        "src/actions/ping.ts": "pingAction",
        "src/providers/weatherData.ts": "weatherDataProvider",
        "src/providers/timeProvider.ts": "timeProvider",
        "src/services/ShellService.ts": "ShellService",
        "src/services/Cache.ts": "CacheService",
        "src/evaluators/factCheck.ts": "factCheckEvaluator",
    }
    for path, name in exports.items():
        source = files[path]
        assert re.search(rf"^export (const|class) {name}\b", source, re.M), path
        if path != "src/index.ts":
            test_path = path.replace("src/", "src/__tests__/", 1).replace(".ts", ".test.ts")
            assert f"import {{ {name} }} from" in files[test_path]
            assert f"import {{ {name} }} from" in files["src/index.ts"]
    assert "export default fullPlugin;" in files["src/index.ts"]


def test_package_json_pins_the_toolchain_and_declares_settings() -> None:
    toolchain = json.loads(TOOLCHAIN_PACKAGE_JSON.read_text())
    package = json.loads(render_plugin(spec_of(FULL))["package.json"])
    assert package["name"] == "@acme/plugin-full"
    assert package["version"] == "2.1.0"
    assert package["description"] == HOSTILE_TEXT.strip()
    assert package["type"] == "module"
    assert package["devDependencies"] == toolchain["devDependencies"]
    # The toolchain's pins win over the spec's; the spec's extra dependency is added.
    assert package["dependencies"] == {**toolchain["dependencies"], "axios": "^1.6.0"}
    assert package["scripts"]["build"] == "tsup"
    assert package["scripts"]["typecheck"] == "tsc --noEmit"
    assert package["scripts"]["lint"] == "biome check ."
    assert package["scripts"]["test"] == "vitest run"
    assert package["agentConfig"]["pluginParameters"] == {
        "WEATHER_API_KEY": {
            "type": "string",
            "description": HOSTILE_TEXT.strip(),
            "required": True,
            "sensitive": True,
        },
        "OPTIONAL_FLAG": {
            "type": "string",
            "description": "OPTIONAL_FLAG",
            "required": False,
            "sensitive": False,
        },
    }


@pytest.mark.parametrize(
    "text",
    [HOSTILE_TEXT, "", '"', "'", "`", "${a}", "$", "\\", "\u2028\u2029", "\x00\x1f", "*/"],
)
def test_ts_string_is_a_json_literal_without_active_characters(text: str) -> None:
    literal = ts_string(text)
    assert json.loads(literal) == text
    body = literal[1:-1]
    assert literal.isascii()
    assert '"' not in body.replace('\\"', "")  # never a raw quote (escaped as \u0022)
    assert "\\u0022" in literal or '"' not in text
    assert "${" not in body
    assert "\n" not in literal and "\r" not in literal


def test_hostile_spec_text_only_reaches_code_escaped() -> None:
    """Outside string literals no fragment of the hostile text exists, and every string
    literal of every generated TypeScript file is a valid JSON string."""
    files = render_plugin(spec_of(FULL))
    fragments = ["process.exit", "</script>", "alert(1)", "second line", "__REPLY__", "*/ /*"]
    literal = re.compile(r'"(?:[^"\\\n]|\\.)*"')
    for path, content in files.items():
        if not path.endswith(".ts"):
            continue
        for match in literal.finditer(content):
            json.loads(match.group(0))
        code = literal.sub('""', content)
        for fragment in fragments:
            assert fragment not in code, (path, fragment)
    escaped = ts_string(HOSTILE_TEXT.strip())
    for path in (
        "src/index.ts",
        "src/config.ts",
        "src/actions/getCurrentWeather.ts",
        "src/providers/weatherData.ts",
        "src/services/ShellService.ts",
        "src/evaluators/factCheck.ts",
    ):
        assert escaped in files[path], path
    readme = files["README.md"]
    assert "<script>" not in readme and "&lt;/script&gt;" in readme


def test_no_stub_markers_anywhere() -> None:
    for data in (TIME, FULL, {"name": "bare"}):
        for path, content in render_plugin(spec_of(data)).items():
            if path == "README.md" or path == "package.json":
                continue
            lowered = content.lower()
            for marker in ("todo", "fixme", "not implemented", "xxx"):
                assert marker not in lowered, (path, marker)


def test_ts_lines_respect_the_formatter_width() -> None:
    """Only an unbreakable string literal may run past Biome's line width."""
    for path, content in render_plugin(spec_of(FULL)).items():
        if not path.endswith(".ts"):
            continue
        for line in content.splitlines():
            if len(line) > LINE_WIDTH:
                # Biome never breaks a string, nor after a key shorter than 5 characters.
                assert re.fullmatch(r'\s*(\w{1,4}: )?"[^"]*"[,;]', line), (path, line)


def test_rendering_is_deterministic() -> None:
    assert render_plugin(spec_of(FULL)) == render_plugin(spec_of(FULL))


async def test_generator_is_deterministic_across_iterations() -> None:
    generator: Generator = TemplateGenerator()
    assert generator.name == "template"
    spec = spec_of(TIME)
    first = await generator.generate(GenerationRequest(spec=spec, iteration=1))
    second = await generator.generate(
        GenerationRequest(spec=spec, iteration=2, current_files=first.files)
    )
    assert first.files == second.files == render_plugin(spec)
    assert first.deleted == ()
    assert first.usage.input_tokens == 0 and first.usage.cost_usd == 0.0


async def test_generator_rejects_a_spec_without_a_name() -> None:
    with pytest.raises(GeneratorError) as caught:
        await TemplateGenerator().generate(GenerationRequest(spec=spec_of({}), iteration=1))
    assert caught.value.reason == "INVALID_SPEC"


def test_names_are_sanitised_and_unique() -> None:
    spec = spec_of(
        {
            "name": "weird",
            "actions": [
                {"name": "do-thing now"},
                {"name": "doThingNow"},
                {"name": "x" * 80},
                {"name": "9lives"},
            ],
            "services": [{"name": "shell", "methods": ["stop", "run-it", "run_it", "constructor"]}],
        }
    )
    exports = expected_exports(spec)
    names = list(exports.values())
    assert len(names) == len(set(names))
    for path, name in exports.items():
        assert re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", name), name
        assert re.fullmatch(r"src/[a-z]+(/[A-Za-z][A-Za-z0-9_]*)?\.ts", path), path
        assert len(name) <= 41
    files = render_plugin(spec)
    shell = files["src/services/Shell.ts"]
    assert "export class ShellService extends Service" in shell
    for method in ("stopOperation(", "runIt(", "run_it(", "constructorOperation("):
        assert f"async {method}" in shell


def test_biome_import_order() -> None:
    names = ["a10", "aB", "a_b", "A", "ab", "a1", "a9", "zz", "Ab", "a01", "b", "B"]
    assert sorted(names, key=biome_sort_key) == [
        "A",
        "Ab",
        "a_b",
        "a1",
        "a9",
        "a01",
        "a10",
        "aB",
        "ab",
        "B",
        "b",
        "zz",
    ]


@pytest.mark.parametrize(
    ("description", "kind", "optional"),
    [
        ("string", "string", False),
        ("number", "number", False),
        ("integer?", "integer", True),
        ("timestamp", "timestamp", False),
        ("object", "record", False),
        ("any", "unknown", False),
        ("a city name", "string", False),
        ("string[]", "array", False),
        ("Array<number>", "array", False),
        ("celsius | fahrenheit", "enum", False),
        ("'a' | \"b\" | null", "enum", True),
        ("string | number", "union", False),
    ],
)
def test_type_descriptions(description: str, kind: str, optional: bool) -> None:
    node = parse_type(description)
    assert (node.kind, node.optional) == (kind, optional)


def test_nested_object_and_enum_types() -> None:
    node = parse_type({"latitude": "number", "longitude": "number", "label?": "string"})
    assert node.kind == "object"
    assert [(k, n.kind, n.optional) for k, n in node.fields] == [
        ("latitude", "number", False),
        ("longitude", "number", False),
        ("label", "string", True),
    ]
    assert parse_type("celsius | fahrenheit").values == ("celsius", "fahrenheit")
    assert invalid_value(parse_type("celsius | fahrenheit")) == "not-an-option"
    assert invalid_value(parse_type("number")) == "not-a-number"
    assert invalid_value(TypeNode("unknown")) is None


def test_action_source_shape() -> None:
    source = render_plugin(spec_of(FULL))["src/actions/getCurrentWeather.ts"]
    assert 'const ACTION_NAME = "GET_CURRENT_WEATHER";' in source
    assert "units: z.enum(unitsValues)," in source
    assert 'const unitsValues = ["celsius", "fahrenheit"] as const;' in source
    assert "days: z.optional(numberParam())," in source
    assert "observer: z.object({" in source
    assert "try {" in source and "} catch (error) {" in source
    assert "await callback({ text, actions: [ACTION_NAME]" in source
    assert "success: true," in source and "failure(ACTION_NAME" in source


def test_toolchain_package_json_is_the_shared_one() -> None:
    assert TOOLCHAIN_PACKAGE_JSON == (
        Path(__file__).resolve().parents[2] / "server/pipeline/toolchain/package.json"
    )


def test_static_validator_accepts_the_output_even_for_a_todo_plugin() -> None:
    """The pipeline's static check (exports + stub markers) passes on template output,
    also when spec text itself says TODO / FIXME / not implemented."""
    from server.pipeline.checks import validate_static

    todo = {
        "name": "@acme/plugin-todo",
        "description": "A TODO list. FIXME: XXX; the sync is not yet implemented",
        "actions": [
            {"name": "todo", "description": "Add a TODO", "parameters": {"item": "string"}}
        ],
        "evaluators": [
            {"name": "fixme", "description": "x", "triggers": ["TODO", "not implemented"]}
        ],
    }
    for data in (TIME, FULL, todo):
        spec = spec_of(data)
        findings, score = validate_static(spec, render_plugin(spec), expected_exports)
        assert findings == [] and score == 100, findings
    assert json.loads(ts_string("TODO: not implemented")) == "TODO: not implemented"
