"""Semantic validation of a create request: every problem found, as field violations.

Field paths use the proto field names (``spec.actions[0].name``), as google.rpc.BadRequest
expects. Validation never stops at the first problem, so a client can fix all at once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from server.domain.spec import ActionSpec, EvaluatorSpec, PluginSpec, ProviderSpec, ServiceSpec

Component = ActionSpec | ProviderSpec | ServiceSpec | EvaluatorSpec

__all__ = ["FieldViolation", "ValidationLimits", "validate_request_fields", "validate_spec"]

# npm's own rules for a scoped package name (lowercase, url-safe), no traversal.
PACKAGE_NAME = re.compile(r"^@[a-z0-9][a-z0-9._-]{0,99}/[a-z0-9][a-z0-9._-]{0,113}$")
IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
SEMVER = re.compile(
    r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
NPM_DEP_NAME = re.compile(r"^(?:@[a-z0-9][a-z0-9._-]{0,99}/)?[a-z0-9][a-z0-9._-]{0,113}$")
# Registry version ranges only (no URLs, git, file: or aliases): ^1.2.3, ~1.2, 1.x, >=1 <2.
NPM_RANGE = re.compile(
    r"^(?:[\^~]|[<>]=?|=)?[0-9xX*]+(?:\.[0-9xX*]+){0,2}(?:-[0-9A-Za-z.-]+)?"
    r"(?:\s*(?:\|\||\s)\s*(?:[\^~]|[<>]=?|=)?[0-9xX*]+(?:\.[0-9xX*]+){0,2}"
    r"(?:-[0-9A-Za-z.-]+)?)*$|^\*$|^latest$"
)
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Control characters other than tab and newline.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class FieldViolation:
    field: str  # proto field path, e.g. "spec.actions[0].name"
    description: str


@dataclass(frozen=True)
class ValidationLimits:
    max_components: int = 50
    max_description_chars: int = 4000
    max_struct_depth: int = 8
    max_struct_keys: int = 200
    max_type_chars: int = 200
    max_dependencies: int = 20
    max_env_vars: int = 50
    max_list_items: int = 50
    max_iterations: int = 20
    min_description_words: int = 3


def _text(out: list[FieldViolation], path: str, value: str, limit: int, required: bool) -> None:
    if required and not value.strip():
        out.append(FieldViolation(path, "is required"))
    if len(value) > limit:
        out.append(FieldViolation(path, f"is {len(value)} characters; at most {limit} allowed"))
    if CONTROL.search(value):
        out.append(FieldViolation(path, "contains control characters"))


def _name(out: list[FieldViolation], path: str, value: str, seen: set[str]) -> None:
    if not IDENTIFIER.match(value):
        out.append(
            FieldViolation(
                path,
                f"{value[:80]!r} is not an identifier (a letter, then letters, digits or _; "
                "at most 64)",
            )
        )
    elif value.lower() in seen:
        out.append(FieldViolation(path, f"duplicate name {value!r}"))
    seen.add(value.lower())


def _struct(
    out: list[FieldViolation], path: str, value: Any, limits: ValidationLimits, depth: int = 1
) -> int:
    """Check a parameters/data-structure tree; returns the number of keys seen."""
    if depth > limits.max_struct_depth:
        out.append(FieldViolation(path, f"nests deeper than {limits.max_struct_depth} levels"))
        return 0
    if isinstance(value, dict):
        count = 0
        for key, child in value.items():
            if not IDENTIFIER.match(str(key)):
                out.append(FieldViolation(f"{path}.{str(key)[:40]}", "key is not an identifier"))
            count += 1 + _struct(out, f"{path}.{key}", child, limits, depth + 1)
            if count > limits.max_struct_keys:
                out.append(FieldViolation(path, f"has more than {limits.max_struct_keys} keys"))
                return count
        return count
    if isinstance(value, list):
        if len(value) > limits.max_list_items:
            out.append(FieldViolation(path, f"has more than {limits.max_list_items} items"))
            return len(value)
        return sum(_struct(out, f"{path}[{i}]", v, limits, depth + 1) for i, v in enumerate(value))
    if isinstance(value, str):
        _text(out, path, value, limits.max_type_chars, required=False)
    elif not isinstance(value, bool | int | float) and value is not None:
        out.append(FieldViolation(path, "must be a type description, object or list"))
    return 0


def validate_spec(
    spec: PluginSpec, limits: ValidationLimits, prefix: str = "spec"
) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    p = prefix
    if not spec.name:
        out.append(FieldViolation(f"{p}.name", "is required (e.g. @elizaos/plugin-time)"))
    elif not PACKAGE_NAME.match(spec.name) or ".." in spec.name:
        out.append(
            FieldViolation(
                f"{p}.name",
                f"{spec.name[:80]!r} is not a scoped npm package name @scope/plugin-name "
                "(lowercase letters, digits, '.', '_', '-')",
            )
        )
    _text(out, f"{p}.description", spec.description, limits.max_description_chars, required=True)
    if spec.version and not SEMVER.match(spec.version):
        out.append(FieldViolation(f"{p}.version", f"{spec.version[:40]!r} is not semver (1.2.3)"))

    components = len(spec.actions) + len(spec.providers) + len(spec.services) + len(spec.evaluators)
    if components == 0:
        out.append(FieldViolation(p, "needs at least one action, provider, service or evaluator"))
    if components > limits.max_components:
        out.append(
            FieldViolation(p, f"has {components} components; at most {limits.max_components}")
        )
        return out  # don't walk a huge list

    named: tuple[tuple[str, Sequence[Component]], ...] = (
        ("actions", spec.actions),
        ("providers", spec.providers),
        ("services", spec.services),
        ("evaluators", spec.evaluators),
    )
    for kind, items in named:
        seen: set[str] = set()
        for i, item in enumerate(items):
            base = f"{p}.{kind}[{i}]"
            _name(out, f"{base}.name", item.name, seen)
            _text(out, f"{base}.description", item.description, 1000, required=False)
    for i, a in enumerate(spec.actions):
        _struct(out, f"{p}.actions[{i}].parameters", a.parameters, limits)
    for i, pr in enumerate(spec.providers):
        _struct(out, f"{p}.providers[{i}].data_structure", pr.data_structure, limits)
    for i, s in enumerate(spec.services):
        if len(s.methods) > limits.max_list_items:
            out.append(FieldViolation(f"{p}.services[{i}].methods", "too many methods"))
            continue
        methods: set[str] = set()
        for j, m in enumerate(s.methods):
            _name(out, f"{p}.services[{i}].methods[{j}]", m, methods)
    for i, e in enumerate(spec.evaluators):
        if len(e.triggers) > limits.max_list_items:
            out.append(FieldViolation(f"{p}.evaluators[{i}].triggers", "too many triggers"))
            continue
        for j, t in enumerate(e.triggers):
            _text(out, f"{p}.evaluators[{i}].triggers[{j}]", t, 200, required=True)

    if len(spec.dependencies) > limits.max_dependencies:
        out.append(
            FieldViolation(f"{p}.dependencies", f"at most {limits.max_dependencies} allowed")
        )
    else:
        for dep, version in spec.dependencies.items():
            if not NPM_DEP_NAME.match(dep) or ".." in dep:
                out.append(FieldViolation(f"{p}.dependencies", f"{dep[:80]!r} is not an npm name"))
            elif not NPM_RANGE.match(version.strip()):
                out.append(
                    FieldViolation(
                        f"{p}.dependencies[{dep}]",
                        f"{version[:40]!r} is not a registry version range (e.g. ^1.6.0)",
                    )
                )
    if len(spec.environment_variables) > limits.max_env_vars:
        out.append(FieldViolation(f"{p}.environment_variables", "too many variables"))
    else:
        env_seen: set[str] = set()
        for i, v in enumerate(spec.environment_variables):
            path = f"{p}.environment_variables[{i}]"
            if not ENV_NAME.match(v.name):
                out.append(
                    FieldViolation(f"{path}.name", f"{v.name[:80]!r} is not UPPER_SNAKE_CASE")
                )
            elif v.name in env_seen:
                out.append(FieldViolation(f"{path}.name", f"duplicate variable {v.name!r}"))
            env_seen.add(v.name)
            _text(out, f"{path}.description", v.description, 1000, required=False)
    return out


def validate_request_fields(
    *,
    model: str,
    max_iterations: int,
    request_id: str,
    description: str | None,
    limits: ValidationLimits,
) -> list[FieldViolation]:
    """The create request's fields other than the spec."""
    out: list[FieldViolation] = []
    if model and not MODEL.match(model):
        out.append(FieldViolation("model", f"{model[:80]!r} is not a model name"))
    if not 0 <= max_iterations <= limits.max_iterations:
        out.append(
            FieldViolation("max_iterations", f"must be between 0 and {limits.max_iterations}")
        )
    if request_id and not REQUEST_ID.match(request_id):
        out.append(FieldViolation("request_id", "at most 128 of letters, digits and . _ : -"))
    if description is not None:
        _text(out, "description", description, limits.max_description_chars, required=True)
        if description.strip() and len(description.split()) < limits.min_description_words:
            out.append(
                FieldViolation(
                    "description",
                    f"say what the plugin should do in at least {limits.min_description_words}"
                    " words",
                )
            )
    return out
