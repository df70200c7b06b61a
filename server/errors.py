"""The service's error hierarchy; each error knows its gRPC status and stable reason.

    ServiceError
    ├── InvalidArgument      INVALID_ARGUMENT  (+ google.rpc.BadRequest field violations)
    ├── NotFound             NOT_FOUND
    ├── AlreadyExists        ALREADY_EXISTS
    ├── FailedPrecondition   FAILED_PRECONDITION
    ├── Unauthenticated      UNAUTHENTICATED   (missing, unknown or revoked API token)
    ├── ResourceExhausted    RESOURCE_EXHAUSTED (+ RetryInfo, QuotaFailure; retry trailers)
    ├── Unavailable          UNAVAILABLE
    └── Internal             INTERNAL

One function (``status_for`` in server/api/interceptors.py) turns them into
google.rpc.Status with an ErrorInfo (domain "auton8n.dev", the reason) plus the error's
own details; ``trailers`` are extra trailing metadata sent with the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import grpc

from server.domain.validation import FieldViolation

__all__ = [
    "ERROR_DOMAIN",
    "AlreadyExists",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "QuotaViolation",
    "ResourceExhausted",
    "ServiceError",
    "Unauthenticated",
    "Unavailable",
]

ERROR_DOMAIN = "auton8n.dev"


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        trailers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = metadata or {}
        self.trailers = trailers  # extra trailing metadata (e.g. retry-after)


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: list[FieldViolation] | tuple[FieldViolation, ...] = (),
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = tuple(violations)


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"


class Unauthenticated(ServiceError):
    """No valid credentials. The message never repeats what the caller sent."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


@dataclass(frozen=True)
class QuotaViolation:
    subject: str  # whose quota: "client:<token id>" or "client:<peer address>"
    description: str  # which limit, e.g. "CreatePlugin: 10 per hour, burst 5"


class ResourceExhausted(ServiceError):
    """A rate limit or quota refused the call; ``retry_after`` says when to try again."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        retry_after: timedelta | None,
        violations: tuple[QuotaViolation, ...] = (),
        reason: str | None = None,
        metadata: dict[str, str] | None = None,
        trailers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata, trailers=trailers)
        self.retry_after = retry_after
        self.violations = violations


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"
