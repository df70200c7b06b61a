"""Renders the spec-dependent TypeScript sources of a template plugin: actions,
providers, ``src/config.ts`` and ``src/index.ts`` (services and evaluators live in
``template_ts_services``).

Fixed code is written as text blocks in Biome's printed form with ``__TOKEN__``
placeholders for identifiers; spec text only enters through the layout helpers of
``template_naming`` (which escape it with ``ts_string``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from server.generators.template_naming import (
    INDENT,
    LINE_WIDTH,
    assign_string,
    biome_sort_key,
    string_property,
    ts_array,
    ts_literal,
    ts_string,
    words,
)
from server.generators.template_plan import ActionPlan, PluginPlan, ProviderPlan
from server.generators.template_types import (
    enum_const_lines,
    field_kind_lines,
    helpers_used,
    sample_value,
    schema_field_lines,
)

__all__ = [
    "CONTENT_KEYS",
    "Import",
    "describe_parameters",
    "description_of",
    "fill",
    "imports_block",
    "render_action",
    "render_config",
    "render_index",
    "render_provider",
    "sample_parameters",
    "similes_of",
]

# (source, type_only, names); names == ["* as x"] is a namespace import.
Import = tuple[str, bool, list[str]]

# Typed members of @elizaos/core's Content: example contents never set them from parameters.
CONTENT_KEYS = {
    "thought",
    "text",
    "actions",
    "providers",
    "source",
    "target",
    "url",
    "inReplyTo",
    "attachments",
    "channelType",
    "mentionContext",
    "responseMessageId",
}
_TOKEN = re.compile(r"__([A-Z][A-Z0-9_]*?)__")
_VERBS = {"get", "fetch", "make", "run", "do", "execute", "calculate", "compute", "create"}


def fill(template: str, **tokens: str) -> list[str]:
    """The lines of ``template`` with every ``__NAME__`` replaced by ``tokens[name]``.

    One pass: substituted text (which may carry spec text) is never scanned again.
    """
    text = _TOKEN.sub(lambda m: tokens.get(m.group(1), m.group(0)), template)
    return text.splitlines()


def _source_key(source: str) -> tuple[int, int, list[tuple[int, Any, Any]]]:
    """Biome's import order: packages, then paths from the farthest (``../../``) to ``./``."""
    if not source.startswith("."):
        return (0, 0, biome_sort_key(source))
    ups = source.count("../")
    rest = source.replace("../", "").removeprefix("./")
    return (1, -ups if ups else 1, biome_sort_key(rest))


def imports_block(imports: list[Import]) -> list[str]:
    """Import statements in Biome's organizeImports order and line layout."""
    lines: list[str] = []
    for source, type_only, names in sorted(
        imports, key=lambda i: (_source_key(i[0]), 0 if i[1] else 1)
    ):
        if len(names) == 1 and names[0].startswith("* as "):
            lines.append(f'import {names[0]} from "{source}";')
            continue
        ordered = sorted(set(names), key=biome_sort_key)
        keyword = "import type" if type_only else "import"
        line = f'{keyword} {{ {", ".join(ordered)} }} from "{source}";'
        if len(line) <= LINE_WIDTH or len(ordered) == 1:
            lines.append(line)
        else:
            lines += [f"{keyword} {{", *(f"{INDENT}{n}," for n in ordered), f'}} from "{source}";']
    return lines


def description_of(text: str, kind: str, name: str) -> str:
    """The spec's description, or one made from the component's name."""
    text = text.strip()
    return text or f"{kind} {' '.join(w.lower() for w in words(name)) or name}"


def similes_of(raw_name: str, upper: str) -> list[str]:
    """The spec's own spelling of the name, and the name without a leading verb."""
    similes = [] if raw_name == upper else [raw_name]
    parts = upper.split("_")
    if len(parts) > 1 and parts[0].lower() in _VERBS:
        similes.append("_".join(parts[1:]))
    return [s for i, s in enumerate(similes) if s and s not in similes[:i]]


def sample_parameters(action: ActionPlan) -> dict[str, Any]:
    return {key: sample_value(key, node) for key, node in action.fields}


def describe_parameters(parameters: dict[str, Any]) -> str:
    """Python twin of describeParameters() in utils/parameters.ts."""
    if not parameters:
        return "no parameters"
    return ", ".join(
        f"{k}: {v if isinstance(v, str) else json.dumps(v, separators=(',', ':'))}"
        for k, v in parameters.items()
    )


# --- actions ------------------------------------------------------------------------------

_ACTION_BODY = """\
  validate: async (runtime, message) => {
    if (missingSettings(runtime, pluginSettings).length > 0) {
      return false;
    }
    const values = collectParameters(parametersSchema, message);
    return missingParameters(parametersSchema, values).length === 0;
  },
  handler: async (runtime, message, _state, options, callback): Promise<ActionResult> => {
    try {
      const missing = missingSettings(runtime, pluginSettings).map((setting) => setting.name);
      if (missing.length > 0) {
        const text = `${ACTION_NAME} needs these settings: ${missing.join(", ")}`;
        return await failure(ACTION_NAME, text, callback);
      }
      const values = collectParameters(parametersSchema, message, options);
      const parsed = parametersSchema.safeParse(values);
      if (!parsed.success) {
        const text = `Invalid parameters for ${ACTION_NAME}: ${describeIssues(parsed.error)}`;
        return await failure(ACTION_NAME, text, callback);
      }
      const parameters: ActionParameters = parsed.data;
      const text = `${ACTION_NAME} completed with ${describeParameters(parameters)}.`;
      if (callback) {
        await callback({ text, actions: [ACTION_NAME], source: message.content.source });
      }
      return {
        success: true,
        text,
        values: { lastActionName: ACTION_NAME },
        data: { actionName: ACTION_NAME, parameters },
      };
    } catch (error) {
      const text = `${ACTION_NAME} failed: ${errorMessage(error)}`;
      return await failure(ACTION_NAME, text, callback, error);
    }
  },
  examples: [
    [
      {
        name: "{{name1}}",
__USER_CONTENT__
      },
      {
        name: "{{name2}}",
        content: {
          text: __REPLY__,
          actions: [ACTION_NAME],
        },
      },
    ],
  ],
};
"""


def render_action(action: ActionPlan) -> str:
    fields, enums = schema_field_lines(action.fields, 1)
    schema_text = "\n".join(fields)
    helpers = [h for h in sorted(_schema_helpers(action)) if f"{h}(" in schema_text]
    parameter_helpers = ["collectParameters", "describeIssues", "describeParameters"]
    lines = imports_block(
        [
            ("@elizaos/core", True, ["Action", "ActionResult"]),
            ("zod", False, ["z"]),
            ("../config", False, ["pluginSettings"]),
            ("../utils/actions", False, ["errorMessage", "failure"]),
            ("../utils/parameters", False, [*parameter_helpers, "missingParameters", *helpers]),
            ("../utils/settings", False, ["missingSettings"]),
        ]
    )
    lines += ["", f"const ACTION_NAME = {ts_string(action.upper)};", ""]
    if enums:
        lines += [*enum_const_lines(enums), ""]
    if fields:
        lines += ["const parametersSchema = z.object({", *fields, "});"]
    else:
        lines.append("const parametersSchema = z.object({});")
    lines += ["", "type ActionParameters = z.output<typeof parametersSchema>;", ""]
    lines += [f"export const {action.export}: Action = {{", "  name: ACTION_NAME,"]
    similes = [ts_string(s) for s in similes_of(action.spec.name, action.upper)]
    lines += ts_array(1, "similes: ", similes, ",")
    description = description_of(action.spec.description, "Run", action.file)
    lines += string_property(1, "description", description)

    sample = sample_parameters(action)
    user: dict[str, Any] = {"text": description}
    user.update({k: v for k, v in sample.items() if k not in CONTENT_KEYS})
    reply = f"{action.upper} completed with {describe_parameters(sample)}."
    user_content = "\n".join(ts_literal(4, "content: ", user, ","))
    lines += fill(_ACTION_BODY, USER_CONTENT=user_content, REPLY=ts_string(reply))
    return "\n".join(lines) + "\n"


def _schema_helpers(action: ActionPlan) -> set[str]:
    out: set[str] = set()
    for _, node in action.fields:
        out |= helpers_used(node)
    return out


# --- providers ----------------------------------------------------------------------------

_PROVIDER_GET = """\
  get: async (runtime, _message, state) => {
    try {
      const data = resolveFields(runtime, state, fields);
      return {
        text: formatProviderText(PROVIDER_NAME, data),
        values: { ...data },
        data: { ...data },
      };
    } catch (error) {
      const text = `${PROVIDER_NAME} is unavailable: ${errorMessage(error)}`;
      return { text, values: {}, data: { error: text } };
    }
  },
};
"""


def render_provider(provider: ProviderPlan) -> str:
    lines = imports_block(
        [
            ("@elizaos/core", True, ["Provider"]),
            ("../utils/actions", False, ["errorMessage"]),
            ("../utils/providers", False, ["formatProviderText", "resolveFields"]),
        ]
    )
    lines += ["", *assign_string(0, "const PROVIDER_NAME", provider.spec.name or provider.file)]
    if provider.fields:
        lines += ["", "const fields = {", *field_kind_lines(provider.fields, 1), "} as const;"]
    else:
        lines += ["", "const fields = {} as const;"]
    lines += ["", f"export const {provider.export}: Provider = {{", "  name: PROVIDER_NAME,"]
    description = description_of(provider.spec.description, "Provides", provider.file)
    lines += string_property(1, "description", description)
    lines += fill(_PROVIDER_GET)
    return "\n".join(lines) + "\n"


# --- settings and the plugin --------------------------------------------------------------


def render_config(plan: PluginPlan) -> str:
    lines = imports_block([("./utils/settings", True, ["PluginSetting"])])
    lines += ["", "/** The plugin's settings; package.json's agentConfig lists the same. */"]
    head = "export const pluginSettings: readonly PluginSetting[] = "
    entries = [
        {
            "name": v.name,
            "description": v.description.strip() or v.name,
            "required": v.required,
            "sensitive": v.sensitive,
        }
        for v in plan.settings
    ]
    lines += ts_literal(0, head, entries, ";")
    return "\n".join(lines) + "\n"


_PLUGIN_BODY = """\
  config: readEnvironmentConfig(pluginSettings),
  init: async (config, runtime) => {
    assertRequiredSettings(PLUGIN_NAME, pluginSettings, config, runtime);
    logger.info(`Plugin ${PLUGIN_NAME} initialized`);
  },
"""


def render_index(plan: PluginPlan) -> str:
    imports: list[Import] = [
        ("@elizaos/core", True, ["Plugin"]),
        ("@elizaos/core", False, ["logger"]),
        ("./config", False, ["pluginSettings"]),
        ("./utils/settings", False, ["assertRequiredSettings", "readEnvironmentConfig"]),
    ]
    for group in (plan.actions, plan.providers, plan.services, plan.evaluators):
        imports += [(f"./{c.path[4:-3]}", False, [c.export]) for c in group]
    lines = [*imports_block(imports), "", *assign_string(0, "const PLUGIN_NAME", plan.spec.name)]
    lines += ["", f"export const {plan.export}: Plugin = {{", "  name: PLUGIN_NAME,"]
    description = description_of(plan.spec.description, "ElizaOS plugin", plan.export)
    lines += string_property(1, "description", description)
    lines += fill(_PLUGIN_BODY)
    lines += ts_array(1, "actions: ", [a.export for a in plan.actions], ",")
    lines += ts_array(1, "providers: ", [p.export for p in plan.providers], ",")
    lines += ts_array(1, "evaluators: ", [e.export for e in plan.evaluators], ",")
    lines += ts_array(1, "services: ", [s.export for s in plan.services], ",")
    lines += ["};", "", f"export default {plan.export};"]
    return "\n".join(lines) + "\n"
