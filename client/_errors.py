"""Errors raised by the client, decoded from gRPC statuses.

One rooted hierarchy; every error carries the gRPC status code it stands for::

    ClientError                  any failure: .code, .message, .reason, .details
    ├── NotFoundError            NOT_FOUND: unknown job id (or another tenant's job)
    ├── InvalidArgumentError     INVALID_ARGUMENT: see .field_violations
    ├── FailedPreconditionError  FAILED_PRECONDITION: e.g. cancelling a finished job
    ├── AuthError                UNAUTHENTICATED or PERMISSION_DENIED
    ├── RateLimitedError         RESOURCE_EXHAUSTED: see .retry_after
    ├── UnavailableError         UNAVAILABLE, after the client's own retries
    ├── IntegrityError           DATA_LOSS: a download does not match its sha256 or size
    ├── UnsafeArchiveError       DATA_LOSS: an archive entry escapes or is not a plain file
    └── EventGapError            INTERNAL: WatchJob skipped a seq (a server bug)

Server errors carry ``google.rpc.Status`` details in the ``grpc-status-details-bin``
trailer (grpcio-status); they are decoded into ``.details`` (ErrorInfo, BadRequest,
RetryInfo, QuotaFailure, ...), with ``.reason`` taken from the ErrorInfo.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "AuthError",
    "ClientError",
    "EventGapError",
    "FailedPreconditionError",
    "IntegrityError",
    "InvalidArgumentError",
    "NotFoundError",
    "RateLimitedError",
    "UnavailableError",
    "UnsafeArchiveError",
    "error_from_rpc",
    "error_from_status",
]

_DETAILS_KEY = "grpc-status-details-bin"
_RETRY_AFTER_KEY = "retry-after"
_DETAIL_TYPES: tuple[type[Message], ...] = (
    error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest,
    error_details_pb2.RetryInfo,
    error_details_pb2.QuotaFailure,
    error_details_pb2.PreconditionFailure,
    error_details_pb2.ResourceInfo,
    error_details_pb2.RequestInfo,
    error_details_pb2.Help,
    error_details_pb2.LocalizedMessage,
    error_details_pb2.DebugInfo,
)
_M = TypeVar("_M", bound=Message)


class ClientError(Exception):
    """A failed call, or a result the client refuses.

    Attributes:
        code: the gRPC status code.
        message: the server's (or client's) human-readable message.
        reason: the stable ``ErrorInfo.reason`` (e.g. ``JOB_NOT_FOUND``), or "".
        details: the decoded ``google.rpc.Status`` details; unknown ones stay ``Any``.
        retry_after: how long to wait before retrying (RetryInfo, or the
            ``retry-after`` trailer in seconds), or None.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        details: Iterable[Message] = (),
        retry_after: timedelta | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details: tuple[Message, ...] = tuple(details)
        info = self.detail(error_details_pb2.ErrorInfo)
        self.reason = reason or (info.reason if info is not None else "")
        retry = self.detail(error_details_pb2.RetryInfo)
        if retry is not None and retry.HasField("retry_delay"):
            retry_after = retry.retry_delay.ToTimedelta()
        self.retry_after = retry_after

    def detail(self, kind: type[_M]) -> _M | None:
        """The first detail of this type, or None."""
        for detail in self.details:
            if isinstance(detail, kind):
                return detail
        return None

    @property
    def field_violations(self) -> list[error_details_pb2.BadRequest.FieldViolation]:
        """The BadRequest field violations (field path + description), possibly empty."""
        requests = [d for d in self.details if isinstance(d, error_details_pb2.BadRequest)]
        return [violation for request in requests for violation in request.field_violations]

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" [{self.reason}]"
        violations = "; ".join(f"{v.field}: {v.description}" for v in self.field_violations)
        if violations:
            text += f"; {violations}"
        if self.retry_after is not None:
            text += f"; retry after {self.retry_after.total_seconds():g}s"
        return text


class NotFoundError(ClientError):
    """NOT_FOUND: the job does not exist (or belongs to another tenant)."""


class InvalidArgumentError(ClientError):
    """INVALID_ARGUMENT: the request was rejected; see ``field_violations``."""


class FailedPreconditionError(ClientError):
    """FAILED_PRECONDITION: the job is in the wrong state (e.g. already finished)."""


class AuthError(ClientError):
    """UNAUTHENTICATED (missing or bad token) or PERMISSION_DENIED."""


class RateLimitedError(ClientError):
    """RESOURCE_EXHAUSTED: a rate limit or quota; see ``retry_after``."""


class UnavailableError(ClientError):
    """UNAVAILABLE: the server is unreachable, restarting or draining."""


class IntegrityError(ClientError):
    """A downloaded archive does not match the sha256 or size the server announced."""

    def __init__(self, message: str, *, reason: str = "CHECKSUM_MISMATCH") -> None:
        super().__init__(grpc.StatusCode.DATA_LOSS, message, reason=reason)


class UnsafeArchiveError(ClientError):
    """An archive entry is absolute, climbs out with ``..``, or is a link or device."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.DATA_LOSS, message, reason="UNSAFE_ARCHIVE")


class EventGapError(ClientError):
    """WatchJob delivered seq ``got`` after ``last``: events were lost (a server bug)."""

    def __init__(self, job_id: str, last: int, got: int) -> None:
        super().__init__(
            grpc.StatusCode.INTERNAL,
            f"job {job_id}: event seq {got} followed {last}; events {last + 1}..{got - 1} "
            "are missing (server bug)",
            reason="EVENT_GAP",
        )
        self.last = last
        self.got = got


_CODES: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}
_BY_CODE: dict[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAUTHENTICATED: AuthError,
    grpc.StatusCode.PERMISSION_DENIED: AuthError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimitedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def error_from_rpc(error: grpc.RpcError) -> ClientError:
    """Converts a failed call (sync or ``grpc.aio.AioRpcError``) into a ClientError.

    Never raises: undecodable details are ignored, so the code and message survive.
    """
    code: grpc.StatusCode = error.code()
    message: str = error.details() or ""
    trailers: Iterable[Any] = error.trailing_metadata() or ()
    details: list[Message] = []
    retry_after: timedelta | None = None
    for key, value in trailers:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            details.extend(_decode_status(value))
        elif key == _RETRY_AFTER_KEY:
            retry_after = _parse_seconds(value)
    return _BY_CODE.get(code, ClientError)(code, message, details=details, retry_after=retry_after)


def error_from_status(status: status_pb2.Status) -> ClientError:
    """Converts a ``google.rpc.Status`` (e.g. ``Job.error``) into a ClientError."""
    code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
    details = [_unpack(detail) for detail in status.details]
    return _BY_CODE.get(code, ClientError)(code, status.message, details=details)


def _decode_status(raw: bytes) -> list[Message]:
    try:
        status = status_pb2.Status.FromString(raw)
    except DecodeError:
        return []
    return [_unpack(detail) for detail in status.details]


def _unpack(detail: any_pb2.Any) -> Message:
    name = detail.TypeName()
    for kind in _DETAIL_TYPES:
        if kind.DESCRIPTOR.full_name == name:
            message = kind()
            if detail.Unpack(message):
                return message
    return detail


def _parse_seconds(value: str | bytes) -> timedelta | None:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    try:
        seconds = float(text.strip())
    except ValueError:
        return None
    return timedelta(seconds=seconds) if 0 <= seconds < 1e9 else None
