"""Server interceptors. ErrorInterceptor is the one place ServiceErrors become statuses."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2
from loguru import logger

from server.api.handlers import rewrap
from server.errors import ERROR_DOMAIN, InvalidArgument, ServiceError

__all__ = ["ErrorInterceptor", "status_for"]

DETAILS_KEY = "grpc-status-details-bin"


def status_for(error: ServiceError) -> status_pb2.Status:
    """google.rpc.Status with ErrorInfo, plus BadRequest for invalid arguments."""
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    status.details.add().Pack(
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        )
    )
    if isinstance(error, InvalidArgument) and error.violations:
        status.details.add().Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in error.violations
                ]
            )
        )
    return status


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: ServiceError) -> None:
    status = status_for(error)
    await context.abort(
        error.code, error.message, trailing_metadata=((DETAILS_KEY, status.SerializeToString()),)
    )


def _internal(method: str) -> ServiceError:
    logger.exception("unhandled error in {}", method)
    return ServiceError("internal error; see the server log")


def _wrap(method: str, behavior: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(behavior):

        async def stream(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            try:
                async for item in behavior(request, context):
                    yield item
            except ServiceError as exc:
                await _abort(context, exc)
            except grpc.aio.AbortError:
                raise
            except Exception:
                await _abort(context, _internal(method))

        return stream

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behavior(request, context)
        except ServiceError as exc:
            await _abort(context, exc)
        except grpc.aio.AbortError:
            raise
        except Exception:
            await _abort(context, _internal(method))

    return unary


class ErrorInterceptor(grpc.aio.ServerInterceptor):
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
        return rewrap(handler, lambda _kind, behavior: _wrap(method, behavior))
