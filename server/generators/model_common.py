"""Provider-neutral pieces of the model generators: tools, conversations, answers, prices.

The model only ever acts through tools (Anthropic tool use / OpenAI function calling):
``write_files`` writes the plugin, ``submit_review`` gives the verdict, ``submit_spec``
turns a description into a spec. Their inputs are JSON objects checked here field by
field; nothing is ever parsed out of prose. A provider adapter (``ChatAdapter``) turns a
neutral ``Prompt`` into its wire format and its response into an ``Answer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any, Protocol

from server.domain.results import TokenUsage
from server.generators.review import Review, ReviewIssue

__all__ = [
    "DEFAULT_PRICES",
    "SUBMIT_REVIEW",
    "SUBMIT_SPEC",
    "WRITE_FILES",
    "Answer",
    "Ask",
    "ChatAdapter",
    "Price",
    "Prompt",
    "Tool",
    "ToolCall",
    "estimate_cost",
    "parse_prices",
    "parse_review",
    "parse_write_files",
]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    schema: dict[str, Any]  # JSON schema of the input object


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """One model response. ``calls`` are complete tool calls only: when the answer was
    ``truncated`` (stopped at the output limit) the adapter drops the call it was cut
    off in, whose input may be incomplete, so it is never used."""

    calls: tuple[ToolCall, ...]
    truncated: bool
    stop_reason: str
    usage: TokenUsage  # tokens only; the generator adds the cost
    text: str = ""


@dataclass(frozen=True)
class Ask:
    """A user turn: text, plus results for the previous answer's tool calls (by id)."""

    text: str
    results: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Prompt:
    """``system``: blocks from the most static on (each cacheable); then the turns."""

    system: tuple[str, ...]
    turns: tuple[Ask | Answer, ...]


class ChatAdapter(Protocol):
    provider: str  # "anthropic" | "openai": health and log label
    model: str  # the provider's model id

    async def ask(self, prompt: Prompt, tool: Tool, max_tokens: int) -> Answer:
        """One request forcing ``tool``. Raises retry.ModelCallError on any failure."""
        ...


WRITE_FILES = Tool(
    "write_files",
    "Write complete files into the plugin workspace (each content replaces the whole "
    "file) and optionally delete files. Paths are relative to the plugin root.",
    {
        "type": "object",
        "properties": {
            "files": {
                "type": "array",
                "description": "Files to create or replace, each with its complete content.",
                "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "description": "e.g. src/actions/x.ts"},
                        "content": {"type": "string", "description": "the whole file"},
                    },
                    "required": ["path", "content"],
                },
            },
            "delete": {
                "type": "array",
                "description": "Paths of files to remove.",
                "items": {"type": "string"},
            },
        },
        "required": ["files"],
    },
)

SUBMIT_REVIEW = Tool(
    "submit_review",
    "Submit the review verdict of the plugin.",
    {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 0, "maximum": 100},
            "production_ready": {"type": "boolean"},
            "issues": {
                "type": "array",
                "maxItems": 30,
                "items": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string"},
                        "line": {"type": "integer", "minimum": 0},
                        "severity": {"type": "string", "enum": ["critical", "major", "minor"]},
                        "message": {"type": "string"},
                    },
                    "required": ["severity", "message"],
                },
            },
        },
        "required": ["score", "production_ready", "issues"],
    },
)


def _component(**extra: Any) -> dict[str, Any]:
    """An array of {name, description, ...extra} objects."""
    properties = {"name": {"type": "string"}, "description": {"type": "string"}, **extra}
    item = {"type": "object", "properties": properties, "required": ["name", "description"]}
    return {"type": "array", "items": item}


_TYPES = "Field name -> type: string, number, boolean, timestamp, 'a | b' enums, nested objects"
SUBMIT_SPEC = Tool(
    "submit_spec",
    "Submit the plugin specification derived from the description.",
    {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "pattern": "^@[a-z0-9][a-z0-9-]*/plugin-[a-z0-9][a-z0-9-]*$",
                "description": "npm package name, e.g. @elizaos/plugin-weather",
            },
            "description": {"type": "string"},
            "version": {"type": "string", "description": "semver, e.g. 1.0.0"},
            "actions": _component(
                parameters={"type": "object", "description": _TYPES, "additionalProperties": True}
            ),
            "providers": _component(
                dataStructure={
                    "type": "object",
                    "description": _TYPES,
                    "additionalProperties": True,
                }
            ),
            "services": _component(methods={"type": "array", "items": {"type": "string"}}),
            "evaluators": _component(triggers={"type": "array", "items": {"type": "string"}}),
            "dependencies": {
                "type": "object",
                "description": "extra npm packages: name -> semver range",
                "additionalProperties": {"type": "string"},
            },
            "environmentVariables": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"},
                        "description": {"type": "string"},
                        "required": {"type": "boolean"},
                        "sensitive": {"type": "boolean"},
                    },
                    "required": ["name", "description", "required", "sensitive"],
                },
            },
        },
        "required": ["name", "description", "actions"],
    },
)


def parse_write_files(data: Mapping[str, Any]) -> tuple[dict[str, str], list[str], list[str]]:
    """A write_files input -> (files, deletions, problems). Bad entries are skipped and
    described in ``problems`` (told to the model next iteration); good ones are kept."""
    files: dict[str, str] = {}
    deleted: list[str] = []
    problems: list[str] = []
    entries = data.get("files", [])
    if not isinstance(entries, list):
        problems.append("write_files: 'files' must be an array of {path, content}")
        entries = []
    for i, entry in enumerate(entries):
        path = entry.get("path") if isinstance(entry, dict) else None
        content = entry.get("content") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not isinstance(content, str):
            problems.append(f"write_files: files[{i}] needs a string 'path' and 'content'")
        elif path in files:
            problems.append(f"write_files: {path} was given twice; the last content was used")
            files[path] = content
        else:
            files[path] = content
    removals = data.get("delete", [])
    if not isinstance(removals, list):
        problems.append("write_files: 'delete' must be an array of paths")
        removals = []
    for i, path in enumerate(removals):
        if isinstance(path, str):
            deleted.append(path)
        else:
            problems.append(f"write_files: delete[{i}] is not a path string")
    return files, deleted, problems


def parse_review(data: Mapping[str, Any]) -> Review | None:
    """A submit_review input -> Review, or None when score/production_ready are unusable."""
    score, ready = data.get("score"), data.get("production_ready")
    if (
        isinstance(score, bool)
        or not isinstance(score, (int, float))
        or not isinstance(ready, bool)
    ):
        return None
    issues: list[ReviewIssue] = []
    raw = data.get("issues")
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("message"), str):
            continue
        line = item.get("line")
        severity = item.get("severity")
        issues.append(
            ReviewIssue(
                message=item["message"].strip()[:2000],
                file=str(item.get("file") or "")[:300],
                line=line if isinstance(line, int) and not isinstance(line, bool) else 0,
                severity=severity if severity in ("critical", "major", "minor") else "major",
            )
        )
    return Review(
        score=max(0, min(100, round(score))), production_ready=ready, issues=tuple(issues)
    )


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float

    @classmethod
    def of(cls, input_: float, output: float) -> Price:
        # Provider practice: a cache write costs 1.25x input, a cache read 0.1x.
        return cls(input_, output, input_ * 1.25, input_ * 0.1)


# Estimates by model-id prefix (longest prefix wins); override with AUTON8N_MODEL_PRICES.
# OpenAI-compatible models are keyed with their "openai:" prefix.
DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        "claude-opus-": Price.of(5.0, 25.0),
        "claude-sonnet-": Price.of(3.0, 15.0),
        "claude-haiku-": Price.of(1.0, 5.0),
        "openai:gpt-4o-mini": Price(0.15, 0.6, 0.15, 0.075),
        "openai:gpt-4o": Price(2.5, 10.0, 2.5, 1.25),
        "openai:gpt-4.1-mini": Price(0.4, 1.6, 0.4, 0.1),
        "openai:gpt-4.1": Price(2.0, 8.0, 2.0, 0.5),
        "openai:gpt-5-mini": Price(0.25, 2.0, 0.25, 0.025),
        "openai:gpt-5": Price(1.25, 10.0, 1.25, 0.125),
    }
)


def parse_prices(text: str) -> dict[str, Price]:
    """``"prefix=in/out[/cache_write/cache_read];..."`` -> prices. Raises ValueError."""
    out: dict[str, Price] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        prefix, sep, numbers = item.partition("=")
        values = [float(v) for v in numbers.split("/")] if sep else []
        if not prefix.strip() or len(values) not in (2, 4) or min(values) < 0:
            raise ValueError(f"bad model price {item!r}: use prefix=input/output[/write/read]")
        out[prefix.strip()] = Price.of(*values) if len(values) == 2 else Price(*values)
    return out


def estimate_cost(
    model: str, usage: TokenUsage, prices: Mapping[str, Price]
) -> tuple[TokenUsage, str]:
    """``usage`` with its cost filled in, and a note when the model has no price (cost 0)."""
    matches = [p for p in prices if model.startswith(p)]
    if not matches:
        note = f"no price known for model {model!r}: cost not estimated"
        return replace(usage, cost_usd=0.0), note
    price = prices[max(matches, key=len)]
    cost = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_write_tokens * price.cache_write
        + usage.cache_read_tokens * price.cache_read
    ) / 1_000_000
    return replace(usage, cost_usd=round(cost, 6)), ""
