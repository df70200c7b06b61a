"""Claude through the official ``anthropic`` SDK (Messages API, tool use, prompt caching).

The SDK's own retries are off (``max_retries=0``): ``retry.Retry`` retries with the
job's budget instead, so the three counters (iteration, attempt, retry) stay separate
and a retry-after is honoured. A client is built (in a thread: TLS setup blocks) per
request and closed after it, so nothing outlives a call (no module-level client, no
shutdown hook; one more connect is noise next to a generation of tens of seconds).
The SDK is imported only when a Claude model is configured (``sdk()``: ~40 MB and
seconds of import that a template-only server never needs).

Structured output only: ``tool_choice`` forces the one tool of the call; text blocks are
kept for diagnostics and never parsed. Both system blocks carry ``cache_control``
(ephemeral): the static instructions are shared by every job, the plugin block by every
iteration of one job.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from loguru import logger

from server.domain.results import TokenUsage
from server.generators.health import ModelHealth, ModelObserver
from server.generators.model import ModelConfig, ModelGenerator
from server.generators.model_common import Answer, Ask, Prompt, Tool, ToolCall
from server.generators.retry import sdk_failures

if TYPE_CHECKING:
    import anthropic

__all__ = ["AnthropicAdapter", "AnthropicGenerator", "deprecated_models", "sdk"]

_CACHE = {"type": "ephemeral"}


def sdk() -> ModuleType:
    """The ``anthropic`` module, imported on first use (blocks: call it at start or in a
    thread, not on the event loop)."""
    return importlib.import_module("anthropic")


def _status_text(exc: anthropic.APIStatusError) -> str:
    kind = f" {exc.type}" if exc.type else ""
    return f"HTTP {exc.status_code}{kind}: {exc.api_message or exc.message}"


def deprecated_models() -> Mapping[str, str]:
    """The installed SDK's table: model id -> end-of-life date (empty if it has none)."""
    try:
        from anthropic._data import DEPRECATED_MODELS
    except ImportError:  # a future SDK may move it; then we cannot warn
        return {}
    return dict(DEPRECATED_MODELS)


class AnthropicAdapter:
    provider = "anthropic"

    def __init__(self, model: str, *, api_key: str, base_url: str = "", timeout_s: float) -> None:
        self.model = model
        self._api_key = api_key
        self._base_url = base_url or None
        self._timeout_s = timeout_s

    def __repr__(self) -> str:  # never the key
        return f"AnthropicAdapter(model={self.model!r}, base_url={self._base_url!r})"

    def request(self, prompt: Prompt, tool: Tool, max_tokens: int) -> dict[str, Any]:
        """The Messages API request body (keyword arguments of ``messages.create``)."""
        system = [
            {"type": "text", "text": block, "cache_control": _CACHE} for block in prompt.system
        ]
        messages: list[dict[str, Any]] = []
        for turn in prompt.turns:
            if isinstance(turn, Ask):
                content: list[dict[str, Any]] = [
                    {"type": "tool_result", "tool_use_id": call_id, "content": result}
                    for call_id, result in turn.results
                ]
                content.append({"type": "text", "text": turn.text})
                messages.append({"role": "user", "content": content})
            else:
                blocks: list[dict[str, Any]] = [
                    {"type": "tool_use", "id": c.id, "name": c.name, "input": c.input}
                    for c in turn.calls
                ] or [{"type": "text", "text": "(my answer was cut off here)"}]
                messages.append({"role": "assistant", "content": blocks})
        return {
            "model": self.model,
            "max_tokens": max_tokens,
            "system": system,
            "messages": messages,
            "tools": [
                {"name": tool.name, "description": tool.description, "input_schema": tool.schema}
            ],
            "tool_choice": {"type": "tool", "name": tool.name},
        }

    def _client(self) -> anthropic.AsyncAnthropic:
        client: anthropic.AsyncAnthropic = sdk().AsyncAnthropic(
            api_key=self._api_key,
            base_url=self._base_url,
            max_retries=0,  # retry.Retry retries, with the job's budget
            timeout=self._timeout_s,
        )
        return client

    async def ask(self, prompt: Prompt, tool: Tool, max_tokens: int) -> Answer:
        body = self.request(prompt, tool, max_tokens)
        # Building a client sets up TLS (~40 ms of blocking work): off the event loop.
        client = await asyncio.to_thread(self._client)  # the SDK is imported by now
        with sdk_failures(sdk(), self._timeout_s, _status_text):
            async with client:
                message = await client.messages.create(**body)
        blocks = list(message.content)
        stop = message.stop_reason or ""
        if stop == "max_tokens" and blocks and blocks[-1].type == "tool_use":
            blocks.pop()  # cut off inside this call: its input may be incomplete
        calls: list[ToolCall] = []
        prose: list[str] = []
        for block in blocks:
            if block.type == "tool_use" and isinstance(block.input, dict):
                calls.append(ToolCall(block.id, block.name, dict(block.input)))
            elif block.type == "text":
                prose.append(block.text)
        u = message.usage
        usage = TokenUsage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_input_tokens or 0,
            cache_write_tokens=u.cache_creation_input_tokens or 0,
        )
        return Answer(tuple(calls), stop == "max_tokens", stop, usage, "\n".join(prose))


class AnthropicGenerator(ModelGenerator):
    """A Claude model (any id: opaque) writing and reviewing plugins."""

    def __init__(
        self,
        model: str,
        config: ModelConfig,
        *,
        api_key: str,
        base_url: str = "",
        timeout_s: float = 600.0,
        health: ModelHealth | None = None,
        observer: ModelObserver | None = None,
    ) -> None:
        adapter = AnthropicAdapter(model, api_key=api_key, base_url=base_url, timeout_s=timeout_s)
        super().__init__(
            adapter, config, name=model, price_key=model, health=health, observer=observer
        )
        end_of_life = deprecated_models().get(model)
        if end_of_life:
            logger.warning(
                "model {} is deprecated and reaches end of life on {}; use a current model "
                "(e.g. the default) instead",
                model,
                end_of_life,
            )
