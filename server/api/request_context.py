"""RequestContextInterceptor: every log record inside an RPC carries who and what.

For the duration of each call (handler, inner interceptors, anything they await) every
log record carries ``request_id``, ``method`` (the full gRPC method path), ``peer``
and, when the request message has a well-formed ``job_id`` field, ``job_id``
(``server.logs.bind_request``: a contextvar of the call's task, so tasks the handler
starts inherit it; records get the fields from the patcher ``configure_logging`` installs).

``request_id``: the client's ``x-request-id`` metadata when it is 1-128 characters of
``[A-Za-z0-9._~:/+=-]``, otherwise a fresh one (32 hex digits: 16 random per server
process, then a counter; unique without a random draw per call). Every error sends it
back in the trailing metadata as ``x-request-id`` (``abort_with``), so a client can quote
it when reporting a problem; a call that succeeds sends it back only when the client sent
an ``x-request-id`` (its own, or the replacement of an unsafe one). A trailer on every
success cost ~5% of GetJob's throughput (bench/perf_analysis.md). (Unrelated to
``CreatePluginRequest.request_id``, the idempotency key.)

Each finished call also writes one DEBUG record, ``rpc <method> <code> <ms> ms`` (when
DEBUG records go anywhere: otherwise not even its code and time are computed).

Place it right after the MetricsInterceptor, before authentication, so refusals are
logged with the context too.
"""

from __future__ import annotations

import inspect
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeAlias

import grpc
from loguru import logger

from server.api.chain import invocation_metadata
from server.api.handlers import MethodInterceptor, rewrap
from server.api.interceptors import REQUEST_ID_KEY
from server.api.metrics_interceptor import call_status
from server.logs import bind_request, debug_enabled, unbind_request

__all__ = ["RequestContextInterceptor", "RequestIds"]
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


def _request_id(metadata: Iterable[tuple[str, Any]], new: Callable[[], str]) -> tuple[str, bool]:
    """The call's request id: the client's ``x-request-id`` if it is safe to log and echo,
    else ``new()``; and whether the client sent one."""
    for key, value in metadata:
        if key == REQUEST_ID_KEY:
            if isinstance(value, str) and _SAFE_REQUEST_ID.fullmatch(value):
                return value, True
            return new(), True
    return new(), False


def _context_of(
    method: str, request: Any, context: _Context, new_id: Callable[[], str]
) -> dict[str, str]:
    request_id, asked = _request_id(invocation_metadata(context), new_id)
    fields = {"request_id": request_id, "method": method, "peer": context.peer() or ""}
    job_id = getattr(request, "job_id", None)
    if isinstance(job_id, str) and _SAFE_JOB_ID.fullmatch(job_id):
        fields["job_id"] = job_id
    if asked:  # errors get it anyway (abort_with); a success only when asked for
        context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
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
                    if debug_enabled():
                        _finished(method, context, failure, t0)
                finally:
                    unbind_request(token)

        return stream

    if not inspect.iscoroutinefunction(behavior):
        return behavior  # a sync handler runs in a thread pool: not ours to wrap

    async def call(request: Any, context: _Context) -> Any:
        bind_request(_context_of(method, request, context, new_id))
        if not debug_enabled():  # no "rpc" line to write
            return await behavior(request, context)
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


class RequestContextInterceptor(MethodInterceptor):
    """Binds the request's log context; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self._new_id = RequestIds()

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        new_id = self._new_id
        return rewrap(handler, lambda _kind, b: _wrap(method, b, new_id))
