"""Server interceptors. ErrorInterceptor is the one place ServiceErrors become statuses,
and the reason a request that does not parse is INVALID_ARGUMENT (not UNKNOWN). Other
exceptions become INTERNAL (logged with their traceback), except a database that cannot
be reached (connection refused or lost, pool timeout, SQLite file unusable or locked):
UNAVAILABLE with reason DATABASE_UNAVAILABLE, which a client may retry.

``guard`` is the shared way for an interceptor to admit or refuse a call before the
handler runs (authentication, rate limiting): a refusal is a ServiceError, sent with the
same google.rpc.Status details (``status_for``) the ErrorInterceptor uses.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Never, TypeAlias

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from loguru import logger

from server.api.handlers import HANDLER_KINDS, MethodInterceptor, rewrap
from server.errors import (
    ERROR_DOMAIN,
    FieldViolation,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from server.logs import bound_request_id
from server.store.engine import database_unreachable, first_line

__all__ = [
    "REQUEST_ID_KEY",
    "Admit",
    "After",
    "ErrorInterceptor",
    "abort_with",
    "guard",
    "status_for",
]

DETAILS_KEY = "grpc-status-details-bin"
REQUEST_ID_KEY = "x-request-id"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
# Runs after the handler with the exception it ended with (None when it returned).
After: TypeAlias = Callable[[BaseException | None], Awaitable[None]]
# Decides before the handler: raises ServiceError to refuse; may return an After hook.
# Synchronous, because it runs on every call and usually decides from memory (a cached
# token, an in-process bucket): when it must wait (a database read), it returns a
# coroutine that does, and that coroutine refuses or returns the After hook instead.
Admit: TypeAlias = Callable[[Context], "After | Coroutine[Any, Any, After | None] | None"]


# Trailers past 8 KiB make grpc clients fail the call with RESOURCE_EXHAUSTED instead of
# showing the error: details are capped (the violations a request can cause are not).
MAX_DETAILS_BYTES = 3000
_MAX_TEXT = 200


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "\u2026"


def _bad_request(
    violations: tuple[FieldViolation, ...], budget: int
) -> error_details_pb2.BadRequest:
    """BadRequest with as many violations (each shortened) as fit in ``budget`` bytes."""
    shown = len(violations)
    while True:
        request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=_short(v.field), description=_short(v.description)
                )
                for v in violations[:shown]
            ]
        )
        if shown < len(violations):
            request.field_violations.add(
                field="request", description=f"{len(violations) - shown} more violations not shown"
            )
        if shown <= 1 or request.ByteSize() <= budget:
            return request
        shown //= 2


def status_for(error: ServiceError) -> status_pb2.Status:
    """google.rpc.Status with ErrorInfo, plus BadRequest for invalid arguments and
    RetryInfo + QuotaFailure for exhausted resources (at most ~MAX_DETAILS_BYTES)."""
    status = status_pb2.Status(code=error.code.value[0], message=_short(error.message))
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        )
    )
    if isinstance(error, InvalidArgument) and error.violations:
        budget = MAX_DETAILS_BYTES - status.ByteSize()
        status.details.add().Pack(_bad_request(error.violations, budget))
    if isinstance(error, ResourceExhausted):
        if error.retry_after is not None:
            delay = duration_pb2.Duration()
            delay.FromTimedelta(error.retry_after)
            status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        if error.violations:
            status.details.add().Pack(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=v.subject, description=v.description
                        )
                        for v in error.violations
                    ]
                )
            )
    return status


async def abort_with(context: Context, error: ServiceError) -> Never:
    """End the call with ``error``'s status, details and trailers (raises AbortError)."""
    status = status_for(error)
    # Trailers set earlier in the call (x-request-id) survive: abort replaces them.
    kept = tuple((k, v) for k, v in context.trailing_metadata() or () if k != DETAILS_KEY)
    # Every error names its request (the RequestContextInterceptor's id), so a client can
    # quote it; successes carry it only when the client sent one.
    request_id = bound_request_id()
    if request_id is not None and all(k != REQUEST_ID_KEY for k, _ in kept):
        kept += ((REQUEST_ID_KEY, request_id),)
    await context.abort(
        error.code,
        status.message,
        trailing_metadata=(*kept, (DETAILS_KEY, status.SerializeToString()), *error.trailers),
    )


def _internal(method: str) -> ServiceError:
    logger.exception("unhandled error in {}", method)
    return ServiceError("internal error; see the server log")


def _unexpected(method: str, exc: Exception) -> ServiceError:
    """An exception no layer mapped: UNAVAILABLE when the database is unreachable (the
    call may be retried; health readiness turns NOT_SERVING too), else INTERNAL."""
    if database_unreachable(exc):
        why = first_line(exc)
        logger.warning("database unreachable in {}: {}: {}", method, type(exc).__name__, why)
        return Unavailable("the database is unreachable; retry", reason="DATABASE_UNAVAILABLE")
    return _internal(method)


@dataclass(frozen=True, slots=True)
class _Malformed:
    """Stands in for a request message that failed to parse."""

    error: str


def _tolerant(deserialize: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """A deserializer that never raises: grpc would answer UNKNOWN with the parser's
    exception text; the handler wrapper answers INVALID_ARGUMENT instead."""

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, RecursionError (nesting), bad UTF-8 ...
            return _Malformed(type(exc).__name__)

    return parse


def _malformed() -> InvalidArgument:
    return InvalidArgument(
        "the request is not a valid protobuf message of this method's type",
        [FieldViolation("request", "malformed protobuf wire data")],
        reason="MALFORMED_REQUEST",
    )


def _wrap(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            if isinstance(request, _Malformed):
                await abort_with(context, _malformed())
            try:
                async for item in behavior(request, context):
                    yield item
            except ServiceError as exc:
                await abort_with(context, exc)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await abort_with(context, _unexpected(method, exc))

        return stream

    async def unary(request: Any, context: Context) -> Any:
        if isinstance(request, _Malformed):
            await abort_with(context, _malformed())
        try:
            return await behavior(request, context)
        except ServiceError as exc:
            await abort_with(context, exc)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_with(context, _unexpected(method, exc))

    return unary


async def _refuse(method: str, context: Context, exc: Exception) -> Never:
    """End the call for an exception an admission check raised (a ServiceError is the
    refusal it means; anything else is mapped like a handler's failure)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    await abort_with(context, exc if isinstance(exc, ServiceError) else _unexpected(method, exc))


async def _admitted(method: str, admit: Admit, context: Context) -> After | None:
    """``admit``'s answer (awaited when it had to wait), or the call ended with its refusal."""
    try:
        decided = admit(context)
        if isinstance(decided, Coroutine):
            return await decided
        return decided
    except Exception as exc:
        await _refuse(method, context, exc)


async def _after(method: str, after: After, failure: BaseException | None) -> None:
    try:
        await after(failure)
    except Exception:
        logger.exception("after-call hook of {} failed", method)


def guard(
    method: str,
    behavior: Callable[..., Any],
    admit: Admit,
    *,
    each: Callable[[Context], Awaitable[None]] | None = None,
) -> Callable[..., Any]:
    """``behavior`` behind ``admit``, as a wrapper of the same kind.

    An async generator stays an async generator and a coroutine (unary, or a stream
    handler that writes with ``context.write`` such as health Watch) stays a coroutine,
    because grpc.aio picks how to run a handler by its kind. A sync handler cannot be
    guarded without blocking the event loop, so it is refused (fail closed). ``each``
    runs before every message an async generator sends (and may refuse it likewise).
    """
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            after = await _admitted(method, admit, context)
            failure: BaseException | None = None
            try:
                # aclosing: a refusal between messages closes the handler's generator
                # now (its finally blocks run), not whenever it is collected.
                async with contextlib.aclosing(behavior(request, context)) as items:
                    async for item in items:
                        if each is not None:
                            try:
                                await each(context)
                            except Exception as exc:
                                await _refuse(method, context, exc)
                        yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                if after is not None:
                    await _after(method, after, failure)

        return stream

    if inspect.iscoroutinefunction(behavior):

        async def call(request: Any, context: Context) -> Any:
            try:  # _admitted inline: one coroutine less on every unary call
                after = admit(context)
                if isinstance(after, Coroutine):
                    after = await after
            except Exception as exc:
                await _refuse(method, context, exc)
            if after is None:
                return await behavior(request, context)
            failure: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                await _after(method, after, failure)

        return call

    async def refuse(request: Any, context: Context) -> None:
        logger.error("{} has a sync handler, which cannot be guarded; refusing it", method)
        await abort_with(context, ServiceError("internal error; see the server log"))

    return refuse


class ErrorInterceptor(MethodInterceptor):
    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        deserialize = handler.request_deserializer
        if handler.request_streaming or deserialize is None:
            return rewrap(handler, lambda _kind, behavior: _wrap(method, behavior))
        for attr, _kind, make in HANDLER_KINDS:
            behavior = getattr(handler, attr)
            if behavior is not None:
                return make(
                    _wrap(method, behavior),
                    request_deserializer=_tolerant(deserialize),
                    response_serializer=handler.response_serializer,
                )
        return handler
