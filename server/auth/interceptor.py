"""AuthInterceptor: establishes the caller (a Principal) of every RPC before it runs.

With auth required, the call must carry ``authorization: Bearer <token>`` of a valid,
unrevoked token; otherwise UNAUTHENTICATED, and the handler never runs. Streams check the
token again before each message they send, so revoking a token also ends the WatchJob
streams it opened (at their next event or heartbeat). With auth off, every
caller is the anonymous local user. The health service is exempt either way: probes
carry no tokens. Reflection needs a token like every other service.

The token never reaches a log line: failures log the peer and the token id at most.
Failed checks are budgeted per peer address (``FailureThrottle``): past the budget,
RESOURCE_EXHAUSTED, and that address's calls are refused before any token lookup.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health
from loguru import logger
from sqlalchemy.exc import SQLAlchemyError

from server.api.chain import invocation_metadata
from server.api.handlers import MethodInterceptor, rewrap
from server.api.interceptors import Context, guard
from server.auth.failures import FailureThrottle
from server.auth.principal import ANONYMOUS, Principal, client_key, set_principal
from server.errors import Unauthenticated, Unavailable

__all__ = ["AuthInterceptor", "Authenticator", "bearer_token"]

_EXEMPT_PREFIXES = (f"/{health.SERVICE_NAME}/",)
_SCHEME = "bearer "


class Authenticator(Protocol):
    async def authenticate(self, token: str) -> Principal | None: ...

    def cached(self, token: str) -> Principal | None:
        """The principal of ``token`` if a live cached check vouches for it, else None
        (then ``authenticate`` decides)."""
        ...


def bearer_token(metadata: Any) -> str | None:
    """The token of the first ``authorization: Bearer <token>`` entry, else None."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            if value[: len(_SCHEME)].lower() == _SCHEME:
                return value[len(_SCHEME) :].strip() or None
            return None
    return None


class AuthInterceptor(MethodInterceptor):
    """``required``: tokens checked by ``tokens``; else everyone is ``ANONYMOUS``."""

    def __init__(
        self,
        tokens: Authenticator | None,
        *,
        required: bool,
        failures: FailureThrottle | None = None,
    ) -> None:
        if required and tokens is None:
            raise ValueError("auth required needs a token store")
        super().__init__()
        self._tokens = tokens
        self._required = required
        self._failures = failures

    def _anonymous(self, context: Context) -> None:
        set_principal(ANONYMOUS)

    def _authenticate(self, context: Context) -> Coroutine[Any, Any, None] | None:
        principal = self._check_now(context)
        if isinstance(principal, Principal):
            set_principal(principal)
            return None
        return self._set_when_checked(principal)

    async def _set_when_checked(self, check: Coroutine[Any, Any, Principal]) -> None:
        set_principal(await check)

    async def _recheck(self, context: Context) -> None:
        principal = self._check_now(context)
        if not isinstance(principal, Principal):
            await principal

    def _check_now(self, context: Context) -> Principal | Coroutine[Any, Any, Principal]:
        """The caller, from the token cache; else a coroutine that checks the token."""
        failures = self._failures
        if failures is not None and failures.blocking:
            failures.check(client_key(None, context.peer()))
        token = bearer_token(invocation_metadata(context))
        assert self._tokens is not None
        if token is not None and (principal := self._tokens.cached(token)) is not None:
            return principal
        return self._check(context, token)

    async def _check(self, context: Context, token: str | None) -> Principal:
        if token is None:
            await self._failed(context)
            raise Unauthenticated(
                "this server requires an API token: send 'authorization: Bearer <token>'"
            )
        assert self._tokens is not None
        try:
            principal = await self._tokens.authenticate(token)
        except SQLAlchemyError as exc:
            logger.warning("token check failed: {}", type(exc).__name__)
            raise Unavailable("cannot check the API token right now; retry") from exc
        if principal is None:
            logger.info("refused an invalid or revoked API token from {}", context.peer())
            await self._failed(context)
            raise Unauthenticated("the API token is invalid or revoked")
        return principal

    async def _failed(self, context: Context) -> None:
        if self._failures is not None:
            await self._failures.failed(client_key(None, context.peer()))

    def wrap(
        self, method: str, handler: grpc.RpcMethodHandler[Any, Any]
    ) -> grpc.RpcMethodHandler[Any, Any]:
        if method.startswith(_EXEMPT_PREFIXES):
            return handler
        if not self._required:
            return rewrap(handler, lambda _kind, b: guard(method, b, self._anonymous))
        return rewrap(
            handler, lambda _kind, b: guard(method, b, self._authenticate, each=self._recheck)
        )
