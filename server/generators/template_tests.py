"""Renders the vitest suites of a template plugin: the plugin and its actions
(providers, services and evaluators are in ``template_tests_components``)."""

from __future__ import annotations

from typing import Any

from server.generators.template_naming import ts_literal, ts_string
from server.generators.template_plan import ActionPlan, Component, PluginPlan
from server.generators.template_ts import Import, imports_block, sample_parameters
from server.generators.template_types import invalid_value

__all__ = ["it_block", "join_suite", "render_action_test", "render_plugin_test"]


def it_block(title: str, body: list[str], *, is_async: bool = True) -> list[str]:
    """An ``it(...)`` inside a ``describe``, preceded by a blank line."""
    arrow = "async () => {" if is_async else "() => {"
    head = f"  it({ts_string(title)}, {arrow}"
    return ["", head, *(f"    {line}" if line else "" for line in body), "  });"]


def join_suite(lines: list[str]) -> str:
    """The file's text, without the blank line ``it_block`` puts after ``describe(``."""
    kept = [
        line
        for i, line in enumerate(lines)
        if not (line == "" and i > 0 and lines[i - 1].startswith("describe("))
    ]
    return "\n".join(kept) + "\n"


_PLUGIN_INIT_FAILS = [
    "const runtime = createMockRuntime();",
    "const failure = await plugin.init?.({}, runtime).then(",
    "  () => undefined,",
    "  (error: unknown) => error,",
    ");",
    "expect(failure).toBeInstanceOf(Error);",
    "for (const setting of pluginSettings.filter((each) => each.required)) {",
    "  expect(String(failure)).toContain(setting.name);",
    "}",
]


def render_plugin_test(plan: PluginPlan) -> str:
    imports: list[Import] = [
        ("vitest", False, ["describe", "expect", "it"]),
        ("../config", False, ["pluginSettings"]),
        ("../index", False, ["* as entry"]),
        ("./test-utils", False, ["createMockRuntime", "settingValues"]),
    ]
    groups: dict[str, tuple[Component, ...]] = {
        "actions": plan.actions,
        "providers": plan.providers,
        "services": plan.services,
        "evaluators": plan.evaluators,
    }
    for group in groups.values():
        imports += [(f"../{c.path[4:-3]}", False, [c.export]) for c in group]
    lines = [*imports_block(imports), "", f"const plugin = entry.{plan.export};", ""]
    lines.append('describe("plugin", () => {')
    lines += it_block(
        "is both the default and a named export",
        ["expect(entry.default).toBe(plugin);"],
        is_async=False,
    )
    lines += it_block(
        "has a name and a description",
        [
            "expect(plugin.name.length).toBeGreaterThan(0);",
            "expect(plugin.description.length).toBeGreaterThan(0);",
        ],
        is_async=False,
    )
    registered: list[str] = []
    for kind, items in groups.items():
        registered.append(f"expect(plugin.{kind}).toHaveLength({len(items)});")
        registered += [f"expect(plugin.{kind}).toContain({c.export});" for c in items]
    lines += it_block("registers every component", registered, is_async=False)
    lines += it_block(
        "exposes every setting in its config",
        [
            "const keys = Object.keys(plugin.config ?? {});",
            "for (const setting of pluginSettings) {",
            "  expect(keys).toContain(setting.name);",
            "}",
        ],
        is_async=False,
    )
    lines += it_block(
        "initializes when the required settings are present",
        [
            "const runtime = createMockRuntime({ settings: settingValues(true) });",
            "await expect(plugin.init?.({}, runtime)).resolves.toBeUndefined();",
        ],
    )
    if any(v.required for v in plan.settings):
        lines += it_block("fails clearly when a required setting is missing", _PLUGIN_INIT_FAILS)
    return join_suite([*lines, "});"])


def _invalid(action: ActionPlan) -> tuple[str, Any] | None:
    """The first parameter that has a value its schema rejects, with that value."""
    for key, node in action.fields:
        bad = invalid_value(node)
        if bad is not None:
            return key, bad
    return None


def _has_required(action: ActionPlan) -> bool:
    return any(not node.optional and node.kind != "unknown" for _, node in action.fields)


_SETUP = [
    "const runtime = createMockRuntime({ settings: settingValues() });",
    "const callback = createMockCallback();",
]
_RUN_OPTIONS = (
    "const output = await action.handler(runtime, message, undefined, options, callback);"
)
_RUN_CONTENT = "const output = await action.handler(runtime, message, undefined, {}, callback);"
_WITH_PARAMETERS = 'const message = createMockMemory({ text: "request", ...validParameters });'
_WITHOUT_PARAMETERS = 'const message = createMockMemory({ text: "request" });'


def render_action_test(action: ActionPlan, plan: PluginPlan) -> str:
    utils = ["createMockCallback", "createMockMemory", "createMockRuntime", "expectResult"]
    lines = imports_block(
        [
            ("vitest", False, ["describe", "expect", "it"]),
            (f"../../actions/{action.file}", False, [action.export]),
            ("../test-utils", False, [*utils, "settingValues"]),
        ]
    )
    lines += ["", f"const action = {action.export};", ""]
    valid_head = "const validParameters: Record<string, unknown> = "
    lines += ts_literal(0, valid_head, sample_parameters(action), ";")
    invalid = _invalid(action)
    if invalid is not None:
        lines += [
            "",
            "const invalidParameters: Record<string, unknown> = {",
            "  ...validParameters,",
        ]
        lines += [*ts_literal(1, f"{invalid[0]}: ", invalid[1], ","), "};"]
    lines += ["", f"describe({ts_string(action.file + ' action')}, () => {{"]
    lines += it_block(
        "describes itself with examples",
        [
            f"expect(action.name).toBe({ts_string(action.upper)});",
            "expect(action.description.length).toBeGreaterThan(0);",
            "expect(action.examples?.[0]?.length).toBeGreaterThan(0);",
        ],
        is_async=False,
    )
    lines += it_block(
        "validates when its parameters and settings are present",
        [
            "const runtime = createMockRuntime({ settings: settingValues() });",
            _WITH_PARAMETERS,
            "expect(await action.validate(runtime, message)).toBe(true);",
        ],
    )
    if _has_required(action):
        lines += it_block(
            "does not validate without its required parameters",
            [
                "const runtime = createMockRuntime({ settings: settingValues() });",
                "expect(await action.validate(runtime, createMockMemory())).toBe(false);",
            ],
        )
    if any(v.required for v in plan.settings):
        lines += it_block(
            "does not validate without its required settings",
            [
                _WITH_PARAMETERS,
                "expect(await action.validate(createMockRuntime(), message)).toBe(false);",
            ],
        )
    lines += it_block(
        "runs with valid options and tells the user",
        [
            *_SETUP,
            _WITHOUT_PARAMETERS,
            "const options = { parameters: validParameters };",
            _RUN_OPTIONS,
            "const result = expectResult(output);",
            "expect(result.success).toBe(true);",
            "expect(result.data?.parameters).toEqual(validParameters);",
            "expect(callback).toHaveBeenCalledTimes(1);",
            "expect(callback.mock.calls[0]?.[0].text).toBe(result.text);",
        ],
    )
    lines += it_block(
        "reads its parameters from the message content",
        [
            *_SETUP,
            _WITH_PARAMETERS,
            _RUN_CONTENT,
            "expect(expectResult(output).success).toBe(true);",
            "expect(callback).toHaveBeenCalledTimes(1);",
        ],
    )
    if invalid is not None:
        lines += it_block(
            "rejects invalid parameters and tells the user",
            [
                *_SETUP,
                _WITHOUT_PARAMETERS,
                "const options = { parameters: invalidParameters };",
                _RUN_OPTIONS,
                "const result = expectResult(output);",
                "expect(result.success).toBe(false);",
                "expect(result.error).toBeDefined();",
                "expect(callback).toHaveBeenCalledTimes(1);",
                'expect(callback.mock.calls[0]?.[0].text).toContain("Invalid parameters");',
            ],
        )
    if _has_required(action):
        lines += it_block(
            "fails without its required parameters",
            [
                *_SETUP,
                "const message = createMockMemory();",
                _RUN_CONTENT,
                "expect(expectResult(output).success).toBe(false);",
                "expect(callback).toHaveBeenCalledTimes(1);",
            ],
        )
    return join_suite([*lines, "});"])
