"""Any OpenAI-compatible chat API through the official ``openai`` SDK.

GPT models, Gemini's OpenAI-compatible endpoint, a local vLLM or Ollama: a base URL, a
key (a local server needs none) and a model id. Jobs name such a model ``openai:<id>``;
the prefix is stripped before the request. The same tools as the Anthropic generator,
as function tools with ``tool_choice`` forcing the one of the call; a response cut off
at the token limit (``finish_reason == "length"``) is handled like ``max_tokens``.

Caching is the provider's automatic prefix caching (the system message comes first and
is identical across one job's calls); cached prompt tokens count as cache reads.

The SDK is imported only when such an endpoint is configured (``sdk()``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
from types import ModuleType
from typing import TYPE_CHECKING, Any

from server.domain.results import TokenUsage
from server.generators.health import ModelHealth, ModelObserver
from server.generators.model import ModelConfig, ModelGenerator
from server.generators.model_common import Answer, Ask, Prompt, Tool, ToolCall
from server.generators.retry import FailureKind, ModelCallError, sdk_failures

if TYPE_CHECKING:
    import openai

__all__ = ["OPENAI_PREFIX", "OpenAIAdapter", "OpenAICompatibleGenerator", "sdk"]

OPENAI_PREFIX = "openai:"
_NO_KEY = "unused"  # local servers take any key; the SDK insists on one


def sdk() -> ModuleType:
    """The ``openai`` module, imported on first use (blocks: call it at start or in a
    thread, not on the event loop)."""
    return importlib.import_module("openai")


def _status_text(exc: openai.APIStatusError) -> str:
    return f"HTTP {exc.status_code}: {exc.message}"


class OpenAIAdapter:
    provider = "openai"

    def __init__(self, model: str, *, api_key: str, base_url: str = "", timeout_s: float) -> None:
        self.model = model
        self._api_key = api_key or _NO_KEY
        self._base_url = base_url or None
        self._timeout_s = timeout_s

    def __repr__(self) -> str:  # never the key
        return f"OpenAIAdapter(model={self.model!r}, base_url={self._base_url!r})"

    def request(self, prompt: Prompt, tool: Tool, max_tokens: int) -> dict[str, Any]:
        """The chat.completions request body."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": "\n\n".join(prompt.system)}]
        for turn in prompt.turns:
            if isinstance(turn, Ask):
                messages += [
                    {"role": "tool", "tool_call_id": call_id, "content": result}
                    for call_id, result in turn.results
                ]
                messages.append({"role": "user", "content": turn.text})
            elif turn.calls:
                calls = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.input)},
                    }
                    for c in turn.calls
                ]
                messages.append({"role": "assistant", "content": None, "tool_calls": calls})
            else:
                messages.append({"role": "assistant", "content": "(my answer was cut off here)"})
        # OpenAI's own API wants max_completion_tokens (newer models refuse max_tokens);
        # compatible servers (vLLM, Ollama, Gemini) all understand max_tokens.
        limit_key = "max_tokens" if self._base_url else "max_completion_tokens"
        return {
            "model": self.model,
            "messages": messages,
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.schema,
                    },
                }
            ],
            "tool_choice": {"type": "function", "function": {"name": tool.name}},
            limit_key: max_tokens,
        }

    def _client(self) -> openai.AsyncOpenAI:
        client: openai.AsyncOpenAI = sdk().AsyncOpenAI(
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
                completion = await client.chat.completions.create(**body)
        if not completion.choices:
            raise ModelCallError(
                "the response had no choices", kind=FailureKind.TRANSIENT, outcome="invalid"
            )
        choice = completion.choices[0]
        stop = choice.finish_reason or ""
        raw_calls = list(choice.message.tool_calls or [])
        if stop == "length" and raw_calls:
            raw_calls.pop()  # cut off inside this call: its arguments may be incomplete
        calls: list[ToolCall] = []
        notes: list[str] = []
        for call in raw_calls:
            function = getattr(call, "function", None)
            if function is None:
                continue
            try:
                arguments = json.loads(function.arguments or "{}")
            except ValueError:
                notes.append(f"(the {function.name} call had invalid JSON arguments)")
                continue
            if isinstance(arguments, dict):
                calls.append(ToolCall(call.id, function.name, arguments))
        usage = TokenUsage()
        if completion.usage is not None:
            details = completion.usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details is not None else 0
            usage = TokenUsage(
                input_tokens=max(0, completion.usage.prompt_tokens - cached),
                output_tokens=completion.usage.completion_tokens,
                cache_read_tokens=cached,
            )
        text = "\n".join([choice.message.content or "", *notes]).strip()
        return Answer(tuple(calls), stop == "length", stop, usage, text)


class OpenAICompatibleGenerator(ModelGenerator):
    """``openai:<model>`` jobs; ``model`` here is the id without the prefix."""

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
        adapter = OpenAIAdapter(model, api_key=api_key, base_url=base_url, timeout_s=timeout_s)
        qualified = OPENAI_PREFIX + model
        super().__init__(
            adapter, config, name=qualified, price_key=qualified, health=health, observer=observer
        )
