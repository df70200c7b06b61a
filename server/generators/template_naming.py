"""Naming, escaping and Biome-compatible layout helpers for the template generator.

Everything the template writes must pass ``biome check`` (formatter included) without a
rewrite, so the few constructs whose layout depends on the length of spec-derived text
(string-valued properties, arrays, string constants) are laid out here exactly the way
Biome 2.6 prints them at ``LINE_WIDTH``. Spec text only ever reaches TypeScript through
``ts_string``; identifiers only through ``safe_identifier`` and the export-name helpers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "INDENT",
    "LINE_WIDTH",
    "MAX_IDENTIFIER",
    "assign_string",
    "biome_sort_key",
    "export_name",
    "is_plain_key",
    "property_key",
    "safe_identifier",
    "string_property",
    "ts_array",
    "ts_literal",
    "ts_string",
    "unique_names",
    "upper_snake",
    "words",
]

LINE_WIDTH = 100  # biome.json formatter.lineWidth
INDENT = "  "
# Identifier bases are capped so that every template line holding one stays < LINE_WIDTH.
MAX_IDENTIFIER = 32
# Biome (like Prettier) never breaks ``key: "string"`` after the colon for short keys.
_SHORT_KEY = 5

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_ESCAPE_TOKEN = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)|[^\\]", re.DOTALL)


def ts_string(value: str) -> str:
    """A double-quoted TypeScript string literal that is also a valid JSON string.

    Built on ``json.dumps`` (ASCII-only, so no raw control or line-separator characters).
    ``"`` becomes ``\\u0022`` so Biome's quote preference never rewrites the literal, and
    ``${`` becomes ``\\u0024{`` so the lint rule noTemplateCurlyInString stays quiet.
    """
    inner = json.dumps(value, ensure_ascii=True)[1:-1]
    tokens = _ESCAPE_TOKEN.findall(inner)
    out: list[str] = []
    for i, token in enumerate(tokens):
        if token == '\\"':
            out.append("\\u0022")
        elif token == "$" and i + 1 < len(tokens) and tokens[i + 1] == "{":
            out.append("\\u0024")
        else:
            out.append(token)
    return '"' + _STUB_WORDS.sub(_escape_first, "".join(out)) + '"'


# Spec text may legitimately say "TODO" (a to-do plugin) or "not implemented"; the static
# validator flags those words in sources, so their first letter is written as \uXXXX
# (the value is unchanged).
_STUB_WORDS = re.compile(r"\b(?:TODO|FIXME|XXX)\b|(?i:not\s+(?:yet\s+)?implemented)")


def _escape_first(match: re.Match[str]) -> str:
    text = match.group(0)
    return f"\\u{ord(text[0]):04x}{text[1:]}"


def words(name: str) -> list[str]:
    """Split an identifier-ish name into words: ``getHTTPStatus_v2`` -> get HTTP Status v2."""
    parts = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+", name)
    return [p for p in parts if p]


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:6]


def safe_identifier(name: str, *, pascal: bool = False, fallback: str = "item") -> str:
    """A TypeScript identifier derived from ``name`` (deterministic, at most MAX_IDENTIFIER).

    A name that already is a plain identifier keeps its spelling (only the first letter's
    case changes for ``pascal``); anything else is rebuilt from its words in camelCase.
    """
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        base = name
    else:
        parts = words(name)
        base = "".join(p if i == 0 else p[:1].upper() + p[1:] for i, p in enumerate(parts))
        if not base:
            base = fallback
        if base[0].isdigit():
            base = fallback + base
    if len(base) > MAX_IDENTIFIER:
        base = base[: MAX_IDENTIFIER - 7] + "_" + _short_hash(name)
    base = base[:1].upper() + base[1:] if pascal else base[:1].lower() + base[1:]
    # An identifier that is a stub marker word would read as one to the static validator.
    return base + "_" if base.upper() in ("TODO", "FIXME", "XXX") else base


def export_name(base: str, suffix: str) -> str:
    """``base`` + ``suffix`` unless ``base`` already ends with it (``timeProvider`` stays)."""
    if base.endswith(suffix) and len(base) > len(suffix):
        return base
    return base + suffix


def upper_snake(identifier: str) -> str:
    """``getCurrentTime`` -> ``GET_CURRENT_TIME`` (ElizaOS's convention for action names)."""
    parts = [w.upper() for w in re.split(r"_+", "_".join(words(identifier))) if w]
    return "_".join(parts) or "ACTION"


def unique_names(names: Iterable[str], *, taken: Iterable[str] = ()) -> list[str]:
    """Deduplicate (case-insensitively, so files never clash on macOS) by numbering."""
    seen = {t.lower() for t in taken}
    out: list[str] = []
    for name in names:
        candidate, n = name, 2
        while candidate.lower() in seen:
            candidate = f"{name}{n}"
            n += 1
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def is_plain_key(key: str) -> bool:
    return bool(_IDENTIFIER.match(key)) and key != "__proto__"


def property_key(key: str) -> str:
    """An object-literal key: bare when it is an identifier, else a string literal."""
    return key if is_plain_key(key) else ts_string(key)


def biome_sort_key(text: str) -> list[tuple[int, Any, Any]]:
    """Biome 2's natural order for import sources and specifiers (measured on 2.6.8):
    punctuation < digit runs (shorter first, then by digits: a9 < a01 < a10) < letters
    (case-insensitive, uppercase first at the first difference)."""
    key: list[tuple[int, Any, Any]] = []
    for token in re.findall(r"[0-9]+|.", text, re.DOTALL):
        if token.isdigit():
            key.append((1, len(token), token))
        elif token.isalpha():
            key.append((2, token.lower(), 0 if token.isupper() else 1))
        else:
            key.append((0, token, 0))
    return key


def string_property(indent: int, key: str, value: str) -> list[str]:
    """``key: "value",`` inside an expanded object, broken after the colon the way Biome
    does when the line is too long and the key is not short."""
    pad = INDENT * indent
    literal = ts_string(value)
    line = f"{pad}{key}: {literal},"
    if len(key) >= _SHORT_KEY and len(line) > LINE_WIDTH:
        return [f"{pad}{key}:", f"{pad}{INDENT}{literal},"]
    return [line]


def assign_string(indent: int, lhs: str, value: str) -> list[str]:
    """``lhs = "value";`` (a const or class property), broken after ``=`` when too long."""
    pad = INDENT * indent
    literal = ts_string(value)
    line = f"{pad}{lhs} = {literal};"
    if len(line) > LINE_WIDTH:
        return [f"{pad}{lhs} =", f"{pad}{INDENT}{literal};"]
    return [line]


def ts_array(indent: int, prefix: str, items: list[str], suffix: str) -> list[str]:
    """``prefix[a, b]suffix`` on one line when it fits, else one item per line."""
    pad = INDENT * indent
    if not items:
        return [f"{pad}{prefix}[]{suffix}"]
    line = f"{pad}{prefix}[{', '.join(items)}]{suffix}"
    if len(line) <= LINE_WIDTH:
        return [line]
    return [f"{pad}{prefix}[", *(f"{pad}{INDENT}{item}," for item in items), f"{pad}]{suffix}"]


def ts_literal(indent: int, prefix: str, value: Any, suffix: str) -> list[str]:
    """A JSON-like Python value as a TypeScript literal: objects always expanded (Biome
    keeps them so), arrays of scalars inline when they fit, strings via ``ts_string``."""
    pad = INDENT * indent
    if isinstance(value, dict):
        if not value:
            return [f"{pad}{prefix}{{}}{suffix}"]
        lines = [f"{pad}{prefix}{{"]
        for key, item in value.items():
            k = property_key(str(key))
            if isinstance(item, str):
                lines += string_property(indent + 1, k, item)
            else:
                lines += ts_literal(indent + 1, f"{k}: ", item, ",")
        lines.append(f"{pad}}}{suffix}")
        return lines
    if isinstance(value, list | tuple):
        if all(not isinstance(v, dict | list | tuple) for v in value):
            return ts_array(indent, prefix, [_scalar(v) for v in value], suffix)
        lines = [f"{pad}{prefix}["]
        for item in value:
            lines += ts_literal(indent + 1, "", item, ",")
        lines.append(f"{pad}]{suffix}")
        return lines
    return [f"{pad}{prefix}{_scalar(value)}{suffix}"]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return repr(value)
    return ts_string(str(value))
