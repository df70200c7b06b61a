"""The offline, deterministic ``template`` generator.

From any valid PluginSpec it writes a complete ElizaOS 1.7.x plugin: package.json pinned
to the shared toolchain, strict tsconfig, Biome, vitest and tsup configuration, one
module per component (see ``template_plan`` for the export naming rule), helpers, a
README and a vitest suite for every component. The output type-checks, lints clean,
builds and passes its tests with the toolchain in ``server/pipeline/toolchain``.

The spec's extra npm ``dependencies`` are declared in package.json only: the template
code never imports them (it cannot know their API), so it also compiles when they are not
installed. No I/O besides reading the toolchain's package.json once.
"""

from __future__ import annotations

import functools
import html
import json
import re
from pathlib import Path
from typing import Any

from server.domain.spec import PluginSpec
from server.generators.base import GenerationRequest, GenerationResult, GeneratorError
from server.generators.template_plan import PluginPlan, expected_exports, plan_plugin
from server.generators.template_static import STATIC_FILES
from server.generators.template_tests import render_action_test, render_plugin_test
from server.generators.template_tests_components import (
    render_evaluator_test,
    render_provider_test,
    render_service_test,
)
from server.generators.template_ts import (
    render_action,
    render_config,
    render_index,
    render_provider,
)
from server.generators.template_ts_services import render_evaluator, render_service
from server.generators.template_types import TypeNode

__all__ = [
    "TOOLCHAIN_PACKAGE_JSON",
    "TemplateGenerator",
    "expected_exports",
    "render_plugin",
    "toolchain_versions",
]

TOOLCHAIN_PACKAGE_JSON = Path(__file__).resolve().parents[1] / "pipeline/toolchain/package.json"


@functools.cache
def toolchain_versions() -> tuple[dict[str, str], dict[str, str]]:
    """(dependencies, devDependencies) of the shared toolchain, read once."""
    data = json.loads(TOOLCHAIN_PACKAGE_JSON.read_text(encoding="utf-8"))
    return dict(data.get("dependencies", {})), dict(data.get("devDependencies", {}))


class TemplateGenerator:
    """Writes the whole plugin on every iteration (it is deterministic)."""

    name = "template"

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if not request.spec.name.strip():
            raise GeneratorError("the spec has no package name", reason="INVALID_SPEC")
        return GenerationResult(files=render_plugin(request.spec))


def render_plugin(spec: PluginSpec) -> dict[str, str]:
    """Every file of the plugin: workspace-relative path -> content."""
    plan = plan_plugin(spec)
    files = dict(STATIC_FILES)
    files["package.json"] = render_package_json(plan)
    files["README.md"] = render_readme(plan)
    files["src/config.ts"] = render_config(plan)
    files["src/index.ts"] = render_index(plan)
    files["src/__tests__/plugin.test.ts"] = render_plugin_test(plan)
    for action in plan.actions:
        files[action.path] = render_action(action)
        files[action.test_path] = render_action_test(action, plan)
    for provider in plan.providers:
        files[provider.path] = render_provider(provider)
        files[provider.test_path] = render_provider_test(provider)
    for service in plan.services:
        files[service.path] = render_service(service)
        files[service.test_path] = render_service_test(service)
    for evaluator in plan.evaluators:
        files[evaluator.path] = render_evaluator(evaluator)
        files[evaluator.test_path] = render_evaluator_test(evaluator)
    return dict(sorted(files.items()))


def render_package_json(plan: PluginPlan) -> str:
    spec = plan.spec
    pinned, dev = toolchain_versions()
    dependencies = dict(pinned)
    for name, version in spec.dependencies.items():
        # The toolchain's pins win: a spec cannot move @elizaos/core, zod or the tools.
        if name not in pinned and name not in dev:
            dependencies[name] = version
    parameters = {
        v.name: {
            "type": "string",
            "description": v.description.strip() or v.name,
            "required": v.required,
            "sensitive": v.sensitive,
        }
        for v in plan.settings
    }
    package: dict[str, Any] = {
        "name": spec.name,
        "version": spec.package_version,
        "description": spec.description.strip() or f"ElizaOS plugin {spec.name}",
        "type": "module",
        "main": "dist/index.js",
        "module": "dist/index.js",
        "types": "dist/index.d.ts",
        "exports": {
            "./package.json": "./package.json",
            ".": {"types": "./dist/index.d.ts", "import": "./dist/index.js"},
        },
        "files": ["dist", "README.md"],
        "keywords": ["elizaos", "elizaos-plugin", "plugin"],
        "scripts": {
            "build": "tsup",
            "typecheck": "tsc --noEmit",
            "lint": "biome check .",
            "format": "biome format --write .",
            "test": "vitest run",
        },
        "dependencies": dict(sorted(dependencies.items())),
        "devDependencies": dict(sorted(dev.items())),
        "engines": {"node": ">=20"},
        "agentConfig": {"pluginType": "elizaos:plugin:1.0.0", "pluginParameters": parameters},
    }
    return json.dumps(package, indent=2, ensure_ascii=False) + "\n"


# --- README -------------------------------------------------------------------------------


def _md(text: str) -> str:
    """Spec text as inert Markdown: one line, HTML escaped, table/code markers neutralised."""
    one_line = " ".join(text.split())
    return html.escape(one_line, quote=False).replace("|", "\\|").replace("`", "\\`")


def _code(text: str) -> str:
    return "`" + " ".join(text.split()).replace("`", "'") + "`"


def describe_type(node: TypeNode) -> str:
    """Human-readable type, as shown in the README."""
    if node.kind == "array":
        assert node.item is not None
        text = f"{describe_type(node.item)}[]"
    elif node.kind == "enum":
        text = " | ".join(json.dumps(v, ensure_ascii=False) for v in node.values)
    elif node.kind == "union":
        text = " | ".join(describe_type(m) for m in node.members)
    elif node.kind == "object":
        inner = ", ".join(f"{k}: {describe_type(n)}" for k, n in node.fields)
        text = f"{{ {inner} }}" if inner else "object"
    elif node.kind == "record":
        text = "object"
    else:
        text = node.kind
    return f"{text} (optional)" if node.optional else text


def render_readme(plan: PluginPlan) -> str:
    spec = plan.spec
    out = [f"# {_md(spec.name)}", "", _md(spec.description) or "An ElizaOS plugin.", ""]
    out += ["Generated by auton8n for `@elizaos/core` 1.7.x.", "", "## Components", ""]
    if plan.actions:
        out += ["### Actions", ""]
        for a in plan.actions:
            out.append(f"- **{a.upper}** (`{a.export}` in `{a.path}`): {_md(a.spec.description)}")
            for key, node in a.fields:
                out.append(f"  - `{key}`: {_md(describe_type(node))}")
        out += ["", "Parameters are read from the handler's `options` (or "]
        out[-1] += "`options.parameters`) and from the message content, then validated with zod."
        out.append("")
    if plan.providers:
        out += ["### Providers", ""]
        for p in plan.providers:
            where = f"`{p.export}` in `{p.path}`"
            out.append(f"- **{_md(p.spec.name)}** ({where}): {_md(p.spec.description)}")
            for key, node in p.fields:
                out.append(f"  - `{key}`: {_md(describe_type(node))}")
        out += ["", "Each field comes from the conversation state, else a runtime setting named"]
        out[-1] += " after it (`currentTime` -> `CURRENT_TIME`), else a default."
        out.append("")
    if plan.services:
        out += ["### Services", ""]
        for s in plan.services:
            methods = ", ".join(f"`{m}()`" for m in s.methods) or "none"
            where = f"type `{s.service_type}`, `{s.path}`"
            out.append(f"- **{s.export}** ({where}): {_md(s.spec.description)}")
            out.append(f"  - operations: {methods}")
        out.append("")
    if plan.evaluators:
        out += ["### Evaluators", ""]
        for e in plan.evaluators:
            triggers = ", ".join(f'"{_md(t)}"' for t in e.spec.triggers if t.strip())
            out.append(f"- **{e.upper}** (`{e.export}` in `{e.path}`): {_md(e.spec.description)}")
            out.append(f"  - triggers: {triggers or 'any message'}")
        out.append("")
    out += ["## Configuration", ""]
    if plan.settings:
        out += ["| Variable | Required | Sensitive | Description |", "| --- | --- | --- | --- |"]
        for v in plan.settings:
            req, sens = ("yes" if v.required else "no"), ("yes" if v.sensitive else "no")
            out.append(f"| {_code(v.name)} | {req} | {sens} | {_md(v.description)} |")
        out += ["", "Set them in the character's `settings`/`secrets` or in the environment;"]
        out[-1] += " the plugin's `init` fails with a clear message when a required one is missing."
    else:
        out.append("This plugin needs no environment variables.")
    package = json.dumps(spec.name)
    out += ["", "## Usage", "", "```ts", f"import {{ {plan.export} }} from {package};", ""]
    out += ["export const character = {", '  name: "Eliza",', f"  plugins: [{package}],"]
    out += ["};", "```", ""]
    if spec.dependencies:
        deps = ", ".join(_code(f"{k}@{v}") for k, v in spec.dependencies.items())
        out += [f"Declared runtime dependencies: {deps}.", ""]
    out += ["## Development", "", "```sh", "npm install", "npm run typecheck"]
    out += ["npm run lint", "npm test", "npm run build", "```", ""]
    return "\n".join(re.sub(r"[ \t]+$", "", line) for line in out)
