"""InterceptorChain on a real grpc.aio server: members apply in grpc's order (first is
outermost), a member may pass a method through unwrapped, and the composed handler is
built once per method, not per call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from server.api.chain import InterceptorChain, invocation_metadata
from server.api.handlers import rewrap

SERVICE = "test.v1.Chain"


class Tagging(grpc.aio.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """Wraps every method but ``skip`` (passed through) and ``refuse`` (None: no such
    method); the wrapper records ``name`` before the call."""

    def __init__(self, name: str, seen: list[str], skip: str = "", refuse: str = "") -> None:
        self.name, self.seen, self.skip, self.refuse = name, seen, skip, refuse
        self.intercepted = 0

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        details: grpc.HandlerCallDetails,
    ) -> Any:
        self.intercepted += 1
        handler = await continuation(details)
        if self.refuse and details.method.endswith(self.refuse):
            return None
        if handler is None or details.method.endswith(self.skip or "\0"):
            return handler

        def wrap(_kind: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
            async def call(request: bytes, context: Any) -> bytes:
                self.seen.append(self.name)
                result: bytes = await behavior(request, context)
                return result

            return call

        return rewrap(handler, wrap)


async def test_members_apply_in_order_and_compose_once_per_method() -> None:
    seen: list[str] = []

    async def handler(request: bytes, _context: Any) -> bytes:
        seen.append("handler")
        return request

    outer = Tagging("outer", seen)
    inner = Tagging("inner", seen, skip="/Plain", refuse="/Hidden")
    server = grpc.aio.server(interceptors=[InterceptorChain([outer, inner])])
    unary = grpc.unary_unary_rpc_method_handler(handler)
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE, {"Echo": unary, "Plain": unary, "Hidden": unary}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            echo = channel.unary_unary(f"/{SERVICE}/Echo")
            plain = channel.unary_unary(f"/{SERVICE}/Plain")
            for _ in range(3):
                assert await echo(b"x") == b"x"
            assert seen == ["outer", "inner", "handler"] * 3
            seen.clear()
            assert await plain(b"y") == b"y"
            assert seen == ["outer", "handler"]  # inner passed Plain through
            for name in ("Missing", "Hidden"):  # no handler; a member refused it
                try:
                    await channel.unary_unary(f"/{SERVICE}/{name}")(b"z")
                    raise AssertionError(f"{name} must fail")
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNIMPLEMENTED, name
            assert seen == ["outer", "handler"]  # the refused call ran nothing
    finally:
        await server.stop(None)
    # Once per method with a handler (Echo, Plain), not once per call; a refused method
    # is not cached (asked again per call: Hidden once here).
    assert (outer.intercepted, inner.intercepted) == (2, 3)


async def test_wrappers_read_the_calls_metadata_in_a_chain_and_outside_one() -> None:
    """``invocation_metadata`` gives a wrapper the call's metadata: the tuple grpc built
    for the chain, or the context's own when no chain runs."""
    got: list[tuple[str, tuple[Any, ...]]] = []

    async def handler(request: bytes, context: Any) -> bytes:
        got.append((request.decode(), invocation_metadata(context)))
        return request

    servers, ports = [], []
    for interceptors in ([InterceptorChain([Tagging("t", [])])], []):
        server = grpc.aio.server(interceptors=interceptors)
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(handler)}
                ),
            )
        )
        ports.append(server.add_insecure_port("127.0.0.1:0"))
        servers.append(server)
        await server.start()
    try:
        for name, port in zip(("chain", "plain"), ports, strict=True):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                echo = channel.unary_unary(f"/{SERVICE}/Echo")
                await echo(name.encode(), metadata=(("x-trace", name), ("x-other", "1")))
    finally:
        for server in servers:
            await server.stop(None)
    for name, metadata in got:
        assert ("x-trace", name) in metadata and ("x-other", "1") in metadata, name
    assert [name for name, _ in got] == ["chain", "plain"]
