"""Renders the vitest suites of a template plugin's providers, services and evaluators."""

from __future__ import annotations

import re
from typing import Any

from server.generators.template_naming import assign_string, ts_literal, ts_string
from server.generators.template_plan import EvaluatorPlan, ProviderPlan, ServicePlan
from server.generators.template_tests import it_block, join_suite
from server.generators.template_ts import imports_block
from server.generators.template_types import TypeNode

__all__ = ["render_evaluator_test", "render_provider_test", "render_service_test"]

_JS_TYPES = {
    "string": "string",
    "enum": "string",
    "timestamp": "string",
    "number": "number",
    "integer": "number",
    "boolean": "boolean",
}
_STATE_SAMPLES: dict[str, Any] = {"string": "from-state", "number": 7, "boolean": True}
_SETTING_SAMPLES: dict[str, tuple[str, Any]] = {
    "string": ("from-settings", "from-settings"),
    "number": ("12", 12),
    "boolean": ("true", True),
}


_GET = [
    "const runtime = createMockRuntime();",
    "const result = await provider.get(runtime, createMockMemory(), createMockState());",
]


def setting_key(path: str) -> str:
    """Python twin of settingKey() in utils/providers.ts."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", path)
    return re.sub(r"[^A-Za-z0-9]+", "_", text).upper()


def _js_type(node: TypeNode) -> str | None:
    return _JS_TYPES.get(node.kind)


def render_provider_test(provider: ProviderPlan) -> str:
    lines = imports_block(
        [
            ("vitest", False, ["describe", "expect", "it"]),
            (f"../../providers/{provider.file}", False, [provider.export]),
            ("../test-utils", False, ["createMockMemory", "createMockRuntime", "createMockState"]),
        ]
    )
    lines += ["", f"const provider = {provider.export};", ""]
    keys = [key for key, _ in provider.fields]
    lines += ts_literal(0, "const expectedKeys: string[] = ", keys, ";")
    lines += ["", f"describe({ts_string(provider.file + ' provider')}, () => {{"]
    lines += it_block(
        "has a name and a description",
        [
            "expect(provider.name.length).toBeGreaterThan(0);",
            "expect(provider.description?.length).toBeGreaterThan(0);",
        ],
        is_async=False,
    )
    type_checks = [
        f'expect(typeof result.data?.{key}).toBe("{_js_type(node)}");'
        for key, node in provider.fields
        if _js_type(node) is not None
    ]
    lines += it_block(
        "returns text, values and data with every field",
        [
            *_GET,
            "expect(Object.keys(result.data ?? {})).toEqual(expectedKeys);",
            "expect(Object.keys(result.values ?? {})).toEqual(expectedKeys);",
            "expect(result.text).toContain(provider.name);",
            *type_checks,
        ],
    )
    scalar = next(((k, n) for k, n in provider.fields if _js_type(n) is not None), None)
    if scalar is not None:
        key, node = scalar
        js_type = str(_js_type(node))
        state_value = _STATE_SAMPLES[js_type]
        lines += it_block(
            "prefers a value already in the conversation state",
            [
                "const runtime = createMockRuntime();",
                *ts_literal(0, "const state = createMockState(", {key: state_value}, ");"),
                "const result = await provider.get(runtime, createMockMemory(), state);",
                *ts_literal(0, f"expect(result.data?.{key}).toEqual(", state_value, ");"),
            ],
        )
        text, parsed = _SETTING_SAMPLES[js_type]
        lines += it_block(
            "reads a value from the runtime settings",
            [
                *ts_literal(0, "const settings = ", {setting_key(key): text}, ";"),
                "const runtime = createMockRuntime({ settings });",
                _GET[1],
                *ts_literal(0, f"expect(result.data?.{key}).toEqual(", parsed, ");"),
            ],
        )
    return join_suite([*lines, "});"])


def render_service_test(service: ServicePlan) -> str:
    cls = service.export
    lines = imports_block(
        [
            ("vitest", False, ["describe", "expect", "it"]),
            (f"../../services/{service.file}", False, [cls]),
            ("../test-utils", False, ["createMockRuntime"]),
        ]
    )
    start = f"const service = await {cls}.start(createMockRuntime());"
    lines += ["", *assign_string(0, "const expectedType", service.service_type)]
    lines += ["", f"describe({ts_string(cls + ' service')}, () => {{"]
    lines += it_block(
        "starts with its type and capability, and stops",
        [
            start,
            f"expect({cls}.serviceType).toBe(expectedType);",
            "expect(service.capabilityDescription.length).toBeGreaterThan(0);",
            "expect(service.isRunning).toBe(true);",
            "await service.stop();",
            "expect(service.isRunning).toBe(false);",
        ],
    )
    for method in service.methods:
        lines += it_block(
            f"performs {method}",
            [
                start,
                f"const call = await service.{method}({{ value: 1 }});",
                f'expect(call.method).toBe("{method}");',
                "expect(call.input).toEqual({ value: 1 });",
                "expect(service.history()).toEqual([call]);",
                "await service.stop();",
                "expect(service.history()).toEqual([]);",
            ],
        )
    if service.methods:
        lines += it_block(
            "refuses operations once stopped",
            [
                start,
                "await service.stop();",
                f'await expect(service.{service.methods[0]}()).rejects.toThrow("not running");',
            ],
        )
    lines += it_block(
        "stops through the runtime",
        [
            start,
            f"const services = {{ [{cls}.serviceType]: service }};",
            f"await {cls}.stop(createMockRuntime({{ services }}));",
            "expect(service.isRunning).toBe(false);",
        ],
    )
    return join_suite([*lines, "});"])


def render_evaluator_test(evaluator: EvaluatorPlan) -> str:
    lines = imports_block(
        [
            ("vitest", False, ["describe", "expect", "it"]),
            (f"../../evaluators/{evaluator.file}", False, [evaluator.export]),
            ("../test-utils", False, ["createMockMemory", "createMockRuntime", "expectResult"]),
        ]
    )
    lines += ["", f"const evaluator = {evaluator.export};"]
    lines += ["const exampleText = evaluator.examples[0]?.messages[0]?.content.text;", ""]
    lines += [f"describe({ts_string(evaluator.file + ' evaluator')}, () => {{"]
    lines += it_block(
        "describes itself with examples",
        [
            f"expect(evaluator.name).toBe({ts_string(evaluator.upper)});",
            "expect(evaluator.description.length).toBeGreaterThan(0);",
            "expect(evaluator.examples.length).toBeGreaterThan(0);",
        ],
        is_async=False,
    )
    lines += it_block(
        "validates a message like its example",
        [
            "const message = createMockMemory({ text: exampleText });",
            "expect(await evaluator.validate(createMockRuntime(), message)).toBe(true);",
        ],
    )
    lines += it_block(
        "ignores an empty message",
        [
            'const message = createMockMemory({ text: "" });',
            "expect(await evaluator.validate(createMockRuntime(), message)).toBe(false);",
        ],
    )
    lines += it_block(
        "evaluates a message",
        [
            "const message = createMockMemory({ text: exampleText });",
            "const result = expectResult(await evaluator.handler(createMockRuntime(), message));",
            "expect(result.success).toBe(true);",
            "expect(result.data?.evaluatorName).toBe(evaluator.name);",
        ],
    )
    return join_suite([*lines, "});"])
