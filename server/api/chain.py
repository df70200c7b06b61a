"""InterceptorChain: several server interceptors, applied once per method instead of per call.

grpc.aio runs every interceptor's ``intercept_service`` on every call, each a coroutine
with its own continuation. Ours decide by method alone (which wrapper, whether exempt),
never by the call, and each wraps the same inner handler the same way every time: so the
composed handler can be built once per method and reused. One ``intercept_service`` per
call remains (grpc still resolves the handler), whatever the number of interceptors.

Contract for the members: ``intercept_service`` returns the continuation's handler, a
wrapper of it, or None (no such method), depending only on
``handler_call_details.method`` and that handler (``server.api.handlers.MethodInterceptor``
is that shape).

``invocation_metadata(context)`` is how wrappers read the call's metadata: grpc.aio
builds a new tuple on every ``context.invocation_metadata()`` (~2 us each), while the
tuple it built for ``intercept_service`` is the same data, so the chain keeps that one
for the call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, TypeAlias

import grpc

from server.api.handlers import HandlerCache

__all__ = ["InterceptorChain", "invocation_metadata"]

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"
Metadata: TypeAlias = "tuple[tuple[str, str | bytes], ...]"

# Each RPC runs in a task of its own (grpc.aio), which runs intercept_service and then
# the handler: a value set here is the call's, and never another call's.
_METADATA: ContextVar[Metadata | None] = ContextVar("auton8n_call_metadata", default=None)


def invocation_metadata(context: Any) -> Metadata:
    """The current call's invocation metadata: the chain's copy, else the context's."""
    metadata = _METADATA.get()
    if metadata is None:
        return tuple(context.invocation_metadata() or ())
    return metadata


# unused-ignore: without grpc stubs (types-grpcio) ServerInterceptor is Any.
class InterceptorChain(grpc.aio.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """``interceptors`` in grpc's order: the first is the outermost."""

    def __init__(self, interceptors: Sequence[grpc.aio.ServerInterceptor]) -> None:
        self.interceptors = tuple(interceptors)
        self._handlers = HandlerCache()

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        _METADATA.set(handler_call_details.invocation_metadata)
        method = handler_call_details.method
        hit = self._handlers.peek(method, handler)
        if hit is not None:
            return hit
        composed = await self._compose(handler, handler_call_details)
        if composed is None:
            return None  # a member refused the method (grpc answers UNIMPLEMENTED)
        return self._handlers.get(method, handler, lambda: composed)

    async def _compose(self, handler: Handler, details: grpc.HandlerCallDetails) -> Handler | None:
        composed = handler
        for interceptor in reversed(self.interceptors):
            result = await interceptor.intercept_service(_returning(composed), details)
            if result is None:
                return None
            composed = result
        return composed


def _returning(handler: Handler) -> Continuation:
    async def continuation(_details: grpc.HandlerCallDetails) -> Handler:
        return handler

    return continuation
