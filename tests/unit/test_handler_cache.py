"""HandlerCache: an interceptor wraps a method's handler once and reuses the wrapper
while the inner handler is the same object."""

from __future__ import annotations

import grpc

from server.api.handlers import HandlerCache


async def behavior(request: bytes, context: object) -> bytes:
    return request


def test_wrapped_once_per_inner_handler() -> None:
    cache = HandlerCache(max_methods=2)
    builds: list[str] = []
    inner = grpc.unary_unary_rpc_method_handler(behavior)

    def build(name: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        builds.append(name)
        return grpc.unary_unary_rpc_method_handler(behavior)

    first = cache.get("/s/A", inner, lambda: build("A"))
    assert cache.get("/s/A", inner, lambda: build("A")) is first
    assert builds == ["A"]
    other = grpc.unary_unary_rpc_method_handler(behavior)  # a new inner handler
    assert cache.get("/s/A", other, lambda: build("A")) is not first
    assert builds == ["A", "A"]
    cache.get("/s/B", inner, lambda: build("B"))
    cache.get("/s/C", inner, lambda: build("C"))  # over the bound: built, not kept
    cache.get("/s/C", inner, lambda: build("C"))
    assert builds == ["A", "A", "B", "C", "C"]
