"""Spec type descriptions -> a small type model -> zod schemas, sample values, field kinds.

A spec describes a parameter or provider field with a free-form value: a type word
(``"string"``, ``"number"``, ``"timestamp"``, ``"object"``...), an array (``"string[]"``,
``"Array<number>"``), a union of types or of literals (``"celsius | fahrenheit"``), an
optional marker (``"string?"``, a key ending in ``?``, ``"| null"``) or a nested object
(a dict). Unknown words are treated as strings (``"url"``, ``"uuid"``, ``"city name"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from server.generators.template_naming import (
    INDENT,
    LINE_WIDTH,
    is_plain_key,
    property_key,
    safe_identifier,
    ts_array,
    ts_string,
    unique_names,
)

__all__ = [
    "EnumConst",
    "TypeNode",
    "enum_const_lines",
    "field_kind_lines",
    "fit_fields",
    "helpers_used",
    "invalid_value",
    "parse_fields",
    "parse_type",
    "sample_value",
    "schema_field_lines",
]

MAX_DEPTH = 4  # deeper nested objects are accepted as plain records
MAX_KEY = 40

_WORDS: dict[str, str] = {
    **dict.fromkeys(("string", "str", "text", "char"), "string"),
    **dict.fromkeys(("number", "float", "double", "decimal", "numeric"), "number"),
    **dict.fromkeys(("integer", "int", "long", "bigint"), "integer"),
    **dict.fromkeys(("boolean", "bool"), "boolean"),
    **dict.fromkeys(("timestamp", "date", "datetime", "iso8601", "isodate"), "timestamp"),
    **dict.fromkeys(("object", "json", "record", "map", "dict", "dictionary"), "record"),
    **dict.fromkeys(("any", "unknown", "mixed"), "unknown"),
    **dict.fromkeys(("array", "list"), "array"),
}
_NULLISH = {"null", "undefined", "none", "optional", "void"}


@dataclass(frozen=True)
class TypeNode:
    kind: str  # string number integer boolean timestamp record unknown array enum union object
    optional: bool = False
    item: TypeNode | None = None
    values: tuple[str, ...] = ()
    members: tuple[TypeNode, ...] = ()
    fields: tuple[tuple[str, TypeNode], ...] = ()


@dataclass
class EnumConst:
    """A module-level ``const <name> = [...] as const;`` holding an enum's literals."""

    name: str
    values: tuple[str, ...]


@dataclass
class _Ctx:
    enums: list[EnumConst] = field(default_factory=list)


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def _strip_quotes(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        return text[1:-1]
    return text


def parse_type(value: Any, depth: int = 0) -> TypeNode:
    """The type model of one spec type description."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return TypeNode("record")
        return TypeNode("object", fields=parse_fields(value, depth + 1))
    if isinstance(value, list):
        item = parse_type(value[0], depth) if value else TypeNode("unknown")
        return TypeNode("array", item=item)
    if not isinstance(value, str):
        return TypeNode("unknown")
    return _parse_text(value.strip())


def _parse_text(text: str) -> TypeNode:
    lowered = text.lower()
    optional = False
    if lowered.endswith("?"):
        optional, text, lowered = True, text[:-1].strip(), lowered[:-1].strip()
    if lowered.startswith("optional ") or lowered.startswith("optional<"):
        inner = text[len("optional") :].strip()
        if inner.startswith("<") and inner.endswith(">"):
            inner = inner[1:-1]
        node = _parse_text(inner)
        return _with_optional(node, True)
    parts = [p for p in _split_top(text, "|") if p]
    if len(parts) > 1:
        kept = [p for p in parts if p.lower() not in _NULLISH]
        node = _union(kept) if kept else TypeNode("unknown")
        return _with_optional(node, optional or len(kept) < len(parts))
    match = re.fullmatch(r"(?i)(?:array|list)\s*<(.+)>", text)
    if match:
        return _with_optional(TypeNode("array", item=_parse_text(match.group(1))), optional)
    if text.endswith("[]"):
        return _with_optional(TypeNode("array", item=_parse_text(text[:-2])), optional)
    kind = _WORDS.get(lowered)
    if kind == "array":
        return _with_optional(TypeNode("array", item=TypeNode("unknown")), optional)
    return _with_optional(TypeNode(kind or "string"), optional)


def _with_optional(node: TypeNode, optional: bool) -> TypeNode:
    if not optional or node.optional:
        return node
    return TypeNode(node.kind, True, node.item, node.values, node.members, node.fields)


def _union(parts: list[str]) -> TypeNode:
    types: list[TypeNode] = []
    literals: list[str] = []
    for part in parts:
        bare = _strip_quotes(part)
        quoted = bare != part
        word = part.lower()
        if not quoted and (word in _WORDS or part.endswith("[]") or "<" in part):
            node = _parse_text(part)
            if node not in types:
                types.append(node)
        elif bare and bare not in literals:
            literals.append(bare)
    if literals:
        types.append(TypeNode("enum", values=tuple(literals)))
    if len(types) == 1:
        return types[0]
    return TypeNode("union", members=tuple(types))


def parse_fields(mapping: dict[str, Any], depth: int = 0) -> tuple[tuple[str, TypeNode], ...]:
    """Parameters or a data structure: safe keys (identifiers, unique, bounded) -> types.

    A key that is not a plain identifier of at most MAX_KEY characters is renamed to a
    camelCase identifier; a trailing ``?`` marks the field optional.
    """
    raw: list[tuple[str, TypeNode]] = []
    for key, value in mapping.items():
        name = str(key).strip()
        node = parse_type(value, depth)
        if name.endswith("?"):
            name, node = name[:-1], _with_optional(node, True)
        if not (is_plain_key(name) and len(name) <= MAX_KEY):
            name = safe_identifier(name, fallback="field")
        raw.append((name, node))
    keys = unique_names([k for k, _ in raw])
    return tuple((k, node) for k, (_, node) in zip(keys, raw, strict=True))


# --- zod -------------------------------------------------------------------------------

_SIMPLE = {
    "string": "z.string()",
    "number": "numberParam()",
    "integer": "integerParam()",
    "boolean": "booleanParam()",
    "timestamp": "timestampParam()",
    "record": "recordParam()",
    "unknown": "z.unknown()",
}


def helpers_used(node: TypeNode) -> set[str]:
    """The ``../utils/parameters`` helpers (and whether ``z`` is needed) a schema uses."""
    out: set[str] = set()
    expr = _SIMPLE.get(node.kind, "")
    if expr.endswith("Param()"):
        out.add(expr[:-2])
    for child in (node.item, *node.members, *(n for _, n in node.fields)):
        if child is not None:
            out |= helpers_used(child)
    return out


def _expr(node: TypeNode, path: str, ctx: _Ctx) -> list[str]:
    """A zod expression: one line, or several lines relative to the first's indent."""
    if node.kind in _SIMPLE:
        lines = [_SIMPLE[node.kind]]
    elif node.kind == "array":
        assert node.item is not None
        lines = _wrap("z.array", _expr(node.item, path, ctx))
    elif node.kind == "enum":
        names = [e.name for e in ctx.enums]
        const = unique_names([safe_identifier(path, fallback="option") + "Values"], taken=names)
        ctx.enums.append(EnumConst(const[0], node.values))
        lines = [f"z.enum({const[0]})"]
    elif node.kind == "union":
        members = [_expr(m, path, ctx) for m in node.members]
        lines = [f"z.union([{', '.join(m[0] for m in members)}])"]
    else:
        lines = ["z.object({})"] if not node.fields else ["z.object({"]
        for key, child in node.fields:
            lines += [INDENT + line for line in _field(key, child, f"{path} {key}", ctx)]
        if node.fields:
            lines.append("})")
    if node.optional:
        lines = _wrap("z.optional", lines)
    return lines


def _wrap(fn: str, inner: list[str]) -> list[str]:
    if len(inner) == 1:
        return [f"{fn}({inner[0]})"]
    return [f"{fn}(", *(INDENT + line for line in inner[:-1]), f"{INDENT}{inner[-1]},", ")"]


def _field(key: str, node: TypeNode, path: str, ctx: _Ctx) -> list[str]:
    lines = _expr(node, path, ctx)
    first = f"{property_key(key)}: {lines[0]}"
    return [first, *lines[1:-1], lines[-1] + ","] if len(lines) > 1 else [first + ","]


def schema_field_lines(
    fields: tuple[tuple[str, TypeNode], ...], indent: int
) -> tuple[list[str], list[EnumConst]]:
    """The body lines of ``z.object({ ... })`` and the enum constants they reference."""
    ctx = _Ctx()
    out: list[str] = []
    for key, node in fields:
        out += [INDENT * indent + line for line in _field(key, node, key, ctx)]
    return out, ctx.enums


def fit_fields(
    fields: tuple[tuple[str, TypeNode], ...], indent: int = 1
) -> tuple[tuple[str, TypeNode], ...]:
    """``fields`` with every field whose schema line would exceed the line width (an
    exotic many-member union, say) degraded to ``unknown``, so the schema, the examples
    and the tests all agree and Biome's formatter has nothing to re-wrap."""
    ctx = _Ctx()
    out: list[tuple[str, TypeNode]] = []
    for key, node in fields:
        before = len(ctx.enums)
        lines = _field(key, node, key, ctx)
        if any(len(INDENT * indent + line) > LINE_WIDTH for line in lines):
            del ctx.enums[before:]
            node = TypeNode("unknown", optional=node.optional)
        out.append((key, node))
    return tuple(out)


def enum_const_lines(enums: list[EnumConst]) -> list[str]:
    lines: list[str] = []
    for enum in enums:
        items = [ts_string(v) for v in enum.values]
        lines += ts_array(0, f"const {enum.name} = ", items, " as const;")
    return lines


# --- values for examples and tests ------------------------------------------------------

_STRING_SAMPLES: tuple[tuple[str, str], ...] = (
    ("fromtimezone", "America/New_York"),
    ("totimezone", "Europe/London"),
    ("timezone", "UTC"),
    ("location", "London"),
    ("city", "Paris"),
    ("country", "France"),
    ("url", "https://example.com"),
    ("email", "user@example.com"),
    ("method", "GET"),
    ("command", "echo"),
    ("cwd", "/tmp"),
    ("path", "/tmp/example.txt"),
    ("birthdate", "1990-05-15"),
    ("birthtime", "14:30"),
    ("date", "2024-01-15"),
    ("time", "2024-01-15T12:00:00Z"),
    ("name", "Ada"),
    ("query", "example query"),
    ("language", "en"),
    ("currency", "USD"),
    ("symbol", "ETH"),
    ("address", "0x0000000000000000000000000000000000000000"),
)
_NUMBER_SAMPLES: tuple[tuple[str, float | int], ...] = (
    ("latitude", 51.5074),
    ("longitude", -0.1278),
    ("days", 3),
    ("limit", 10),
    ("count", 5),
    ("amount", 10),
)
TIMESTAMP_SAMPLE = "2024-01-15T12:00:00.000Z"


def sample_value(key: str, node: TypeNode) -> Any:
    """A deterministic valid value for ``node`` (what the parsed result equals, too)."""
    name = key.lower().replace("_", "")
    if node.kind == "string":
        return next((v for k, v in _STRING_SAMPLES if k in name), f"example {key}")
    if node.kind == "number":
        return next((v for k, v in _NUMBER_SAMPLES if k in name), 42)
    if node.kind == "integer":
        return next((int(v) for k, v in _NUMBER_SAMPLES if k in name), 3)
    if node.kind == "boolean":
        return True
    if node.kind == "timestamp":
        return TIMESTAMP_SAMPLE
    if node.kind == "record":
        return {"example": "value"}
    if node.kind == "unknown":
        return "example"
    if node.kind == "array":
        assert node.item is not None
        return [sample_value(key, node.item)]
    if node.kind == "enum":
        return node.values[0]
    if node.kind == "union":
        return sample_value(key, node.members[0])
    return {k: sample_value(k, child) for k, child in node.fields}


_CANDIDATES: tuple[Any, ...] = (12345, "not-a-number", {"unexpected": True}, ["unexpected"], True)


def invalid_value(node: TypeNode) -> Any | None:
    """A present value the schema rejects, or None when the type accepts anything."""
    if node.kind == "enum":
        bad = "not-an-option"
        while bad in node.values:
            bad += "-really"
        return bad
    for candidate in _CANDIDATES:
        if not _accepts(node, candidate):
            return candidate
    return None


def _accepts(node: TypeNode, value: Any) -> bool:
    """Mirror of the generated zod schema for the candidate values above."""
    kind = node.kind
    if kind == "string":
        return isinstance(value, str)
    if kind in ("number", "integer"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "timestamp":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "record":
        return isinstance(value, dict)
    if kind == "unknown":
        return True
    if kind == "array":
        assert node.item is not None
        return isinstance(value, list) and all(_accepts(node.item, v) for v in value)
    if kind == "enum":
        return value in node.values
    if kind == "union":
        return any(_accepts(m, value) for m in node.members)
    if not isinstance(value, dict):
        return False
    return all(
        (k in value and _accepts(child, value[k])) or (k not in value and child.optional)
        for k, child in node.fields
    )


# --- provider field kinds -----------------------------------------------------------------


def _kind(node: TypeNode) -> str:
    if node.kind in ("string", "enum"):
        return "string"
    if node.kind in ("number", "integer"):
        return "number"
    if node.kind in ("boolean", "timestamp", "record", "unknown"):
        return node.kind
    if node.kind == "array":
        assert node.item is not None
        item = _kind(node.item)
        return f"{item}[]" if item in ("string", "number", "boolean") else "list"
    return "record" if node.kind == "object" else "unknown"


def field_kind_lines(fields: tuple[tuple[str, TypeNode], ...], indent: int) -> list[str]:
    """The body of a provider's ``fields`` object (kinds understood by resolveFields)."""
    out: list[str] = []
    pad = INDENT * indent
    for key, node in fields:
        k = property_key(key)
        if node.kind == "object" and node.fields:
            out.append(f"{pad}{k}: {{")
            out += field_kind_lines(node.fields, indent + 1)
            out.append(f"{pad}}},")
        else:
            out.append(f"{pad}{k}: {ts_string(_kind(node))},")
    return out
