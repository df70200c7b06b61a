"""The service's error hierarchy; each error knows its gRPC status and stable reason.

    ServiceError
    ├── InvalidArgument      INVALID_ARGUMENT  (+ google.rpc.BadRequest field violations)
    ├── NotFound             NOT_FOUND
    ├── AlreadyExists        ALREADY_EXISTS
    ├── FailedPrecondition   FAILED_PRECONDITION
    ├── Unavailable          UNAVAILABLE
    └── Internal             INTERNAL

One interceptor (server/api/interceptors.py) turns them into google.rpc.Status with an
ErrorInfo (domain "auton8n.dev", the reason) plus the error's own details.
"""

from __future__ import annotations

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
    "ServiceError",
    "Unavailable",
]

ERROR_DOMAIN = "auton8n.dev"


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"

    def __init__(
        self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = metadata or {}


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


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL
    default_reason = "INTERNAL"
