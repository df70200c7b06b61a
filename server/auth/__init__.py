"""Who may call, and how much: API tokens, the auth mode, TLS and token buckets.

- ``principal``: the caller of the current RPC (tenant and role), fail-closed.
- ``tokens``: hashed API tokens in the database (``auton8n tokens`` manages them).
- ``interceptor``: the AuthInterceptor that checks the bearer token on every call.
- ``mode``: ``auto`` / ``required`` / ``off`` and the loopback rule.
- ``tls``: server credentials (TLS, mutual TLS).
- ``buckets``: token-bucket math and its in-process and shared (SQL) stores, used by
  ``server.api.ratelimit``.
"""

from server.auth.interceptor import AuthInterceptor
from server.auth.mode import auth_required, is_loopback_only
from server.auth.principal import ANONYMOUS, Principal, Role, current_principal
from server.auth.tls import server_credentials
from server.auth.tokens import IssuedToken, TokenInfo, TokenStore

__all__ = [
    "ANONYMOUS",
    "AuthInterceptor",
    "IssuedToken",
    "Principal",
    "Role",
    "TokenInfo",
    "TokenStore",
    "auth_required",
    "current_principal",
    "is_loopback_only",
    "server_credentials",
]
