"""A loopback fake of the Anthropic Messages API and the OpenAI chat completions API.

One real HTTP server on 127.0.0.1:0 (``tests.fakes.loopback_http``) answers
``POST /v1/messages`` (Anthropic: base_url = ``fake.url``) and
``POST /v1/chat/completions`` (OpenAI: base_url = ``fake.url + "/v1"``) with the real
response and error shapes, so the official SDKs run unmodified against it.

Conversations are scripted per forced tool: ``fake.script("write_files", reply, ...)``
queues the answers for requests whose ``tool_choice`` forces ``write_files``. A reply is
provider-neutral (``Reply``, ``Fail``) and rendered in the wire format of the endpoint
that was called; a callable reply gets the request body and the fake (to look at the
prompt, plant something, or wait) and returns one, or an awaitable of one.
``submit_review`` answers with a passing verdict unless scripted; any other exhausted
script answers 400, which fails the job with a message naming the fake. Every request
is recorded (``fake.requests``).
"""

from __future__ import annotations

import inspect
import itertools
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.loopback_http import HttpRequest, HttpResponse, LoopbackHttpServer

__all__ = [
    "Fail",
    "FakeModelAPI",
    "Reply",
    "Usage",
    "last_user_text",
    "review",
    "spec_reply",
    "write",
]


@dataclass(frozen=True)
class Usage:
    input: int = 1200
    output: int = 800
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class Reply:
    """A model answer: tool calls (name, input), how it stopped, some prose."""

    calls: tuple[tuple[str, dict[str, Any]], ...]
    stop: str = "tool_use"  # "tool_use" | "max_tokens" | "end_turn"
    text: str = ""
    usage: Usage = field(default_factory=Usage)


@dataclass(frozen=True)
class Fail:
    """An API error: status, error type, message, extra headers (e.g. retry-after)."""

    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


Answer = (
    Reply
    | Fail
    | Callable[[dict[str, Any], "FakeModelAPI"], "Reply | Fail | Awaitable[Reply | Fail]"]
)


def write(files: Mapping[str, str], delete: Sequence[str] = (), **kw: Any) -> Reply:
    entries = [{"path": p, "content": c} for p, c in files.items()]
    return Reply((("write_files", {"files": entries, "delete": list(delete)}),), **kw)


def review(score: int, ready: bool = True, issues: Sequence[dict[str, Any]] = ()) -> Reply:
    verdict = {"score": score, "production_ready": ready, "issues": list(issues)}
    return Reply((("submit_review", verdict),), usage=Usage(2000, 300, cache_read=1500))


def spec_reply(spec: Mapping[str, Any]) -> Reply:
    return Reply((("submit_spec", dict(spec)),))


class FakeModelAPI:
    """Start with ``await fake.start()`` (or ``async with``); ``url`` is the base URL."""

    def __init__(self, *, api_key: str = "test-key") -> None:
        self.api_key = api_key  # requests with another key get 401
        self.requests: list[HttpRequest] = []
        self.default_review: Reply | None = review(92)
        self._scripts: dict[str, deque[Answer]] = {}
        self._ids = itertools.count(1)
        self._http = LoopbackHttpServer(self._handle)

    @property
    def url(self) -> str:
        return self._http.url

    async def start(self) -> FakeModelAPI:
        await self._http.start()
        return self

    async def stop(self) -> None:
        await self._http.stop()

    async def __aenter__(self) -> FakeModelAPI:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def script(self, tool: str, *answers: Answer) -> None:
        self._scripts.setdefault(tool, deque()).extend(answers)

    def bodies(self, tool: str | None = None) -> list[dict[str, Any]]:
        """Request bodies (JSON), optionally only those forcing ``tool``."""
        out = [r.json() for r in self.requests]
        return [b for b in out if tool is None or forced_tool(b) == tool]

    # -- protocol -----------------------------------------------------------------

    async def _handle(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if request.method != "POST":
            return HttpResponse(405, {"error": "method not allowed"})
        if request.path.endswith("/v1/messages"):
            render, fail = self._anthropic, _anthropic_error
        elif request.path.endswith("/chat/completions"):
            render, fail = self._openai, _openai_error
        else:
            return HttpResponse(404, {"error": f"no route {request.path}"})
        # anthropic 2.x sends the key as a bearer token; older SDKs used x-api-key.
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key not in (request.headers.get("x-api-key"), bearer):
            return fail(Fail(401, "authentication_error", "invalid x-api-key"))
        body = request.json()
        answer = self._next(forced_tool(body))
        if callable(answer):
            produced = answer(body, self)
            answer = await produced if inspect.isawaitable(produced) else produced
        if isinstance(answer, Fail):
            return fail(answer)
        return HttpResponse(200, render(body, answer), {"request-id": self._id("req_")})

    def _next(self, tool: str) -> Answer:
        queue = self._scripts.get(tool)
        if queue:
            return queue.popleft()
        if tool == "submit_review" and self.default_review is not None:
            return self.default_review
        n = len(self.requests)
        return Fail(400, "invalid_request_error", f"fake: no scripted {tool} answer (request {n})")

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}"

    def _anthropic(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for name, tool_input in reply.calls:
            content.append(
                {"type": "tool_use", "id": self._id("toolu_"), "name": name, "input": tool_input}
            )
        return {
            "id": self._id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model", ""),
            "content": content,
            "stop_reason": reply.stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.usage.input,
                "output_tokens": reply.usage.output,
                "cache_creation_input_tokens": reply.usage.cache_write,
                "cache_read_input_tokens": reply.usage.cache_read,
            },
        }

    def _openai(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        calls = []
        for i, (name, tool_input) in enumerate(reply.calls):
            arguments = json.dumps(tool_input)
            if reply.stop == "max_tokens" and i == len(reply.calls) - 1:
                arguments = arguments[: len(arguments) // 2]  # cut off mid-JSON, as for real
            calls.append(
                {
                    "id": self._id("call_"),
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            )
        finish = {"max_tokens": "length", "tool_use": "tool_calls"}.get(reply.stop, "stop")
        u = reply.usage
        return {
            "id": self._id("chatcmpl-"),
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body.get("model", ""),
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": reply.text or None,
                        "tool_calls": calls or None,
                    },
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": u.input + u.cache_read,
                "completion_tokens": u.output,
                "total_tokens": u.input + u.cache_read + u.output,
                "prompt_tokens_details": {"cached_tokens": u.cache_read},
            },
        }


def _anthropic_error(fail: Fail) -> HttpResponse:
    body = {
        "type": "error",
        "error": {"type": fail.type, "message": fail.message},
        "request_id": "req_fake_error",
    }
    return HttpResponse(fail.status, body, {"request-id": "req_fake_error", **fail.headers})


def _openai_error(fail: Fail) -> HttpResponse:
    body = {"error": {"message": fail.message, "type": fail.type, "param": None, "code": None}}
    return HttpResponse(fail.status, body, {"x-request-id": "req_fake_error", **fail.headers})


def forced_tool(body: Mapping[str, Any]) -> str:
    """The tool a request's tool_choice forces (either wire format)."""
    choice = body.get("tool_choice") or {}
    if not isinstance(choice, dict):
        return ""
    if "function" in choice:
        return str(choice["function"].get("name", ""))
    return str(choice.get("name", ""))


def last_user_text(body: Mapping[str, Any]) -> str:
    """Every text the request's user turns carry (text blocks and tool results)."""
    out: list[str] = []
    for message in body.get("messages", []):
        if message.get("role") not in ("user", "tool"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
            continue
        for block in content or []:
            if block.get("type") == "text":
                out.append(block["text"])
            elif block.get("type") == "tool_result":
                out.append(str(block.get("content", "")))
    return "\n".join(out)


def system_text(body: Mapping[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, list):
        return "\n".join(b.get("text", "") for b in system)
    for message in body.get("messages", []):
        if message.get("role") == "system":
            return str(message.get("content", ""))
    return str(system or "")
