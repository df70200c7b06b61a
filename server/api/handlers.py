"""Rebuilding an RPC method handler around a wrapped behavior (for interceptors)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

__all__ = ["HANDLER_KINDS", "HandlerCache", "MethodInterceptor", "rewrap"]

# (handler attribute, grpc_type label, constructor) for the four RPC shapes.
HANDLER_KINDS: tuple[tuple[str, str, Callable[..., grpc.RpcMethodHandler[Any, Any]]], ...] = (
    ("unary_unary", "unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", "server_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", "client_stream", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", "bidi_stream", grpc.stream_stream_rpc_method_handler),
)


def rewrap(
    handler: grpc.RpcMethodHandler[Any, Any],
    wrap: Callable[[str, Callable[..., Any]], Callable[..., Any]],
) -> grpc.RpcMethodHandler[Any, Any]:
    """The same handler with its behavior replaced by ``wrap(grpc_type, behavior)``."""
    for attr, grpc_type, make in HANDLER_KINDS:
        behavior = getattr(handler, attr)
        if behavior is not None:
            return make(
                wrap(grpc_type, behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler


class HandlerCache:
    """An interceptor's wrapped handlers by method, so each is built once, not per call.

    grpc.aio asks every interceptor for a handler on every call; the handler a method
    resolves to (the servicer's table entry, or the next interceptor's cached wrapper) is
    the same object each time, so its wrapper can be reused. A different inner handler is
    wrapped anew. Only methods that have a handler are cached: a bounded set.
    """

    def __init__(self, max_methods: int = 1024) -> None:
        self._max = max_methods
        self._wrapped: dict[str, tuple[Any, grpc.RpcMethodHandler[Any, Any]]] = {}

    def peek(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The wrapper built for ``handler`` of ``method``, if there is one."""
        hit = self._wrapped.get(method)
        return hit[1] if hit is not None and hit[0] is handler else None

    def get(
        self,
        method: str,
        handler: grpc.RpcMethodHandler[Any, Any],
        build: Callable[[], grpc.RpcMethodHandler[Any, Any]],
    ) -> grpc.RpcMethodHandler[Any, Any]:
        hit = self._wrapped.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = build()
        if len(self._wrapped) < self._max or method in self._wrapped:
            self._wrapped[method] = (handler, wrapped)
        return wrapped


# unused-ignore: without grpc stubs (types-grpcio) ServerInterceptor is Any.
class MethodInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """An interceptor that wraps each method's handler by the method alone: ``wrap``
    builds the wrapper (or returns the handler as it is) once per method and handler;
    later calls reuse it. This is the contract InterceptorChain relies on."""

    def __init__(self) -> None:
        self._handlers = HandlerCache()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        return self._handlers.get(method, handler, lambda: self.wrap(method, handler))

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        raise NotImplementedError
