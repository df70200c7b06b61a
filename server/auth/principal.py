"""Who is calling: the principal of the current RPC, set by the auth interceptor.

Each RPC runs in its own asyncio task (grpc.aio), so a context variable set by the
interceptor before the handler runs is the caller's for the whole call and dies with it.
``current_principal`` fails closed: a handler reached without the interceptor is refused.
"""

from __future__ import annotations

import enum
from contextvars import ContextVar
from dataclasses import dataclass

from server.errors import Unauthenticated

__all__ = [
    "ANONYMOUS",
    "Principal",
    "Role",
    "client_key",
    "current_principal",
    "principal_or_none",
    "set_principal",
]


class Role(enum.StrEnum):
    USER = "user"  # sees and changes only its own tenant's jobs
    ADMIN = "admin"  # sees and changes every tenant's jobs


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller (or the anonymous local user when auth is off)."""

    tenant: str
    role: Role
    token_id: str | None = None  # None: anonymous (auth off)
    name: str = ""

    @property
    def scope(self) -> str | None:
        """The tenant whose jobs this caller may see; None means every tenant (admin)."""
        return None if self.role is Role.ADMIN else self.tenant


# Auth off: every caller is the local user of tenant "" (jobs created so stay tenant "").
ANONYMOUS = Principal(tenant="", role=Role.USER)

_current: ContextVar[Principal | None] = ContextVar("auton8n_principal", default=None)


def set_principal(principal: Principal) -> None:
    """Make ``principal`` the caller of the current RPC (its task)."""
    _current.set(principal)


def current_principal() -> Principal:
    """The caller of the current RPC; Unauthenticated when none was established."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("the call was not authenticated")
    return principal


def principal_or_none() -> Principal | None:
    """The caller of the current RPC if one was established (for rate-limit keys)."""
    return _current.get()


def client_key(token_id: str | None, peer: str) -> str:
    """``token:<id>``, else ``peer:<address without port>`` (grpc peers look like
    ``ipv4:10.0.0.7:51234``, ``ipv6:[::1]:51234`` or ``unix:/path``)."""
    if token_id:
        return f"token:{token_id}"
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        address = address.rpartition(":")[0].removeprefix("[").removesuffix("]")
    return f"peer:{address or peer}"[:180]
