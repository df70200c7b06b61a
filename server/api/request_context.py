"""RequestContextInterceptor: every log record inside an RPC carries who and what.

For the duration of each call (handler, inner interceptors, anything they await) every
log record carries ``request_id``, ``method`` (the full gRPC method path), ``peer``
and, when the request message has a well-formed ``job_id`` field, ``job_id``
(``server.logs.bind_request``: a contextvar of the call's task, so tasks the handler
starts inherit it; records get the fields from the patcher ``configure_logging`` installs).

``request_id``: the client's ``x-request-id`` metadata when it is 1-128 characters of
``[A-Za-z0-9._~:/+=-]``, otherwise a fresh one (32 hex digits: 16 random per server
process, then a counter; unique without a random draw per call). It is sent back in the
trailing metadata as ``x-request-id`` (on errors too, see ``abort_with``), so a client
can quote it when reporting a problem. (Unrelated to ``CreatePluginRequest.request_id``,
the idempotency key.)

Each finished call also writes one DEBUG record, ``rpc <method> <code> <ms> ms``.

Place it right after the MetricsInterceptor, before authentication, so refusals are
logged with the context too.
"""

from __future__ import annotations

import inspect
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeAlias

import grpc
from loguru import logger

from server.api.handlers import HandlerCache, rewrap
from server.api.metrics_interceptor import call_status
from server.logs import bind_request, unbind_request

__all__ = ["REQUEST_ID_KEY", "RequestContextInterceptor", "RequestIds", "request_id_from"]

REQUEST_ID_KEY = "x-request-id"
_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:/+=-]{1,128}")
_SAFE_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class RequestIds:
    """Fresh request ids: a random prefix, then a counter (32 hex digits)."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(8)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


def request_id_from(metadata: Iterable[tuple[str, Any]] | None, new: Callable[[], str]) -> str:
    """The client's ``x-request-id`` if it is safe to log and echo, else ``new()``."""
    for key, value in metadata or ():
        if key == REQUEST_ID_KEY and isinstance(value, str) and _SAFE_REQUEST_ID.fullmatch(value):
            return value
    return new()


def _context_of(
    method: str, request: Any, context: _Context, new_id: Callable[[], str]
) -> dict[str, str]:
    fields = {
        "request_id": request_id_from(context.invocation_metadata(), new_id),
        "method": method,
        "peer": context.peer() or "",
    }
    job_id = getattr(request, "job_id", None)
    if isinstance(job_id, str) and _SAFE_JOB_ID.fullmatch(job_id):
        fields["job_id"] = job_id
    context.set_trailing_metadata(((REQUEST_ID_KEY, fields["request_id"]),))
    return fields


def _finished(method: str, context: _Context, failure: BaseException | None, t0: float) -> None:
    code = call_status(context, failure)
    ms = (time.perf_counter() - t0) * 1000
    logger.debug("rpc {} {} {:.1f} ms", method, code.name, ms)


def _wrap(method: str, behavior: Callable[..., Any], new_id: RequestIds) -> Callable[..., Any]:
    """A wrapper of the same kind (async generator or coroutine) as ``behavior``."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: _Context) -> AsyncIterator[Any]:
            fields = _context_of(method, request, context, new_id)
            bind_request(fields)
            t0 = time.perf_counter()
            items = behavior(request, context)
            failure: BaseException | None = None
            try:
                async for item in items:
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                # Bound again: the stream may be closed (aclose) from another context.
                token = bind_request(fields)
                try:
                    await items.aclose()
                    _finished(method, context, failure, t0)
                finally:
                    unbind_request(token)

        return stream

    if not inspect.iscoroutinefunction(behavior):
        return behavior  # a sync handler runs in a thread pool: not ours to wrap

    async def call(request: Any, context: _Context) -> Any:
        bind_request(_context_of(method, request, context, new_id))
        t0 = time.perf_counter()
        failure: BaseException | None = None
        try:
            return await behavior(request, context)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            _finished(method, context, failure, t0)

    return call


# unused-ignore: without grpc stubs (types-grpcio) ServerInterceptor is Any.
class RequestContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc, unused-ignore]
    """Binds the request's log context; see the module docstring."""

    def __init__(self) -> None:
        self._handlers = HandlerCache()
        self._new_id = RequestIds()

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
        method, new_id = handler_call_details.method, self._new_id
        return self._handlers.get(
            method, handler, lambda: rewrap(handler, lambda _kind, b: _wrap(method, b, new_id))
        )
