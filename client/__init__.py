"""Python client of the auton8n plugin service, and the ``auton8n`` command line.

``PluginClient`` is the async client (``grpc.aio``); errors form one hierarchy rooted at
``ClientError`` (see ``client._errors``). The command line lives in ``client.cli``.
"""

from client._archive import Artifact, safe_unpack
from client._client import DEFAULT_TARGET, PluginClient, Retry, TlsOptions, spec_from_dict
from client._errors import (
    AuthError,
    ClientError,
    EventGapError,
    FailedPreconditionError,
    IntegrityError,
    InvalidArgumentError,
    NotFoundError,
    RateLimitedError,
    UnavailableError,
    UnsafeArchiveError,
    error_from_rpc,
)

__all__ = [
    "DEFAULT_TARGET",
    "Artifact",
    "AuthError",
    "ClientError",
    "EventGapError",
    "FailedPreconditionError",
    "IntegrityError",
    "InvalidArgumentError",
    "NotFoundError",
    "PluginClient",
    "RateLimitedError",
    "Retry",
    "TlsOptions",
    "UnavailableError",
    "UnsafeArchiveError",
    "error_from_rpc",
    "safe_unpack",
    "spec_from_dict",
]
