"""MetricsInterceptor: the standard gRPC server series for every call with a handler.

Put it first (outermost) in the server's interceptor list, so it sees the status that
ErrorInterceptor and any auth/rate-limit interceptor produce:
``grpc.aio.server(interceptors=[MetricsInterceptor(metrics), ..., ErrorInterceptor()])``.

Handler kinds and how each is wrapped (the wrapper keeps the kind, because grpc.aio
decides between iterating an async generator and awaiting a coroutine that calls
``context.write``):

- unary_unary: counted, timed (``grpc_server_handling_seconds``), one message each way.
- unary_stream as an async generator: each yielded message counts as sent.
- unary_stream as a coroutine using ``context.write``: the handler gets a thin proxy
  context whose ``write`` counts (and ``read`` for request streams).
- stream_unary / stream_stream: the request iterator and ``context.read`` count received
  messages; responses count as above.

The final code: ``context.code()`` after the handler (``context.abort`` sets it, then
raises ``grpc.aio.AbortError``); OK when the handler returned without setting one;
UNKNOWN for any other exception (what grpc reports); CANCELLED (or DEADLINE_EXCEEDED when
the deadline passed) when the call was cancelled. Calls for unknown methods never reach
an interceptor's wrapper and are not counted (as in go-grpc-prometheus).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import grpc

from server.api.handlers import MethodInterceptor, rewrap
from server.metrics import GrpcMethodMetrics, Latency, Metrics, Tally

__all__ = ["MetricsInterceptor", "call_status"]

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_BY_VALUE = {code.value[0]: code for code in grpc.StatusCode}


def _status(context: _Context, default: grpc.StatusCode) -> grpc.StatusCode:
    """The code the call ends with: what the handler set or aborted with, else default."""
    code: Any = context.code()
    if code is None:
        return default
    if isinstance(code, grpc.StatusCode):
        return code
    return _BY_VALUE.get(code, grpc.StatusCode.UNKNOWN)  # some grpcio versions: an int


def _failure(exc: BaseException, context: _Context) -> grpc.StatusCode:
    if isinstance(exc, grpc.aio.AbortError):
        return _status(context, grpc.StatusCode.UNKNOWN)
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def call_status(context: _Context, failure: BaseException | None) -> grpc.StatusCode:
    """The code a finished call ends with, given the exception it ended with (None: it
    returned); the same rules as the ``grpc_code`` label."""
    if failure is None:
        return _status(context, grpc.StatusCode.OK)
    return _failure(failure, context)


class _CountingContext:
    """Delegates to the real context; counts messages written and read."""

    __slots__ = ("_context", "_received", "_sent")

    def __init__(self, context: _Context, sent: Tally, received: Tally) -> None:
        self._context = context
        self._sent = sent
        self._received = received

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._sent.inc()

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            self._received.inc()
        return message

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


async def _counted(requests: AsyncIterator[Any], received: Tally) -> AsyncIterator[Any]:
    async for message in requests:
        received.inc()
        yield message


def _wrap(
    behavior: Callable[..., Any], m: GrpcMethodMetrics, request_streaming: bool
) -> Callable[..., Any]:
    """A wrapper of the same kind (async generator or coroutine) as ``behavior``."""

    def prepare(request: Any, context: _Context) -> tuple[Any, Any]:
        m.started.inc()
        if request_streaming:
            return _counted(request, m.received), _CountingContext(context, m.sent, m.received)
        m.received.inc()
        return request, context

    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: _Context) -> AsyncIterator[Any]:
            request, inner = prepare(request, context)
            code: grpc.StatusCode | None = None
            try:
                async for item in behavior(request, inner):
                    yield item
                    m.sent.inc()
            except BaseException as exc:
                code = _failure(exc, context)
                raise
            finally:
                m.handled(code or _status(context, grpc.StatusCode.OK))

        return stream

    if not inspect.iscoroutinefunction(behavior):
        return behavior  # a sync handler (thread pool): not ours to time

    handling = m.handling
    if handling is not None and not request_streaming:
        return _unary(behavior, m, handling)

    streaming_response = handling is None

    async def call(request: Any, context: _Context) -> Any:
        request, inner = prepare(request, context)
        if streaming_response and inner is context:
            inner = _CountingContext(context, m.sent, m.received)
        started = time.perf_counter()
        code: grpc.StatusCode | None = None
        try:
            response = await behavior(request, inner)
            if response is not None:
                m.sent.inc()
            return response
        except BaseException as exc:
            code = _failure(exc, context)
            raise
        finally:
            m.handled(code or _status(context, grpc.StatusCode.OK))
            if m.handling is not None:
                m.handling.observe(time.perf_counter() - started)

    return call


def _unary(
    behavior: Callable[..., Any], m: GrpcMethodMetrics, handling: Latency
) -> Callable[..., Any]:
    """The unary-unary wrapper: the most frequent calls, so the fewest steps."""
    started, received, sent = m.started, m.received, m.sent

    async def unary(request: Any, context: _Context) -> Any:
        started.value += 1
        received.value += 1
        t0 = time.perf_counter()
        try:
            response = await behavior(request, context)
        except BaseException as exc:
            m.handled(_failure(exc, context))
            handling.observe(time.perf_counter() - t0)
            raise
        if response is not None:
            sent.value += 1
        m.handled(_status(context, grpc.StatusCode.OK))
        handling.observe(time.perf_counter() - t0)
        return response

    return unary


class MetricsInterceptor(MethodInterceptor):
    """Records grpc_server_* series in ``metrics``; label children are cached per method."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self._metrics = metrics

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        streaming = handler.request_streaming
        return rewrap(
            handler,
            lambda kind, behavior: _wrap(
                behavior, self._metrics.grpc_method(kind, method), request_streaming=streaming
            ),
        )
