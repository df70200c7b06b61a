"""Rebuilding an RPC method handler around a wrapped behavior (for interceptors)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

__all__ = ["HANDLER_KINDS", "rewrap"]

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
