"""API tokens: ``a8n_<id>_<secret>``, stored as the sha256 of the secret part.

The id (12 hex characters) is public: it names the token in listings, logs and rate-limit
keys. The secret (32 random bytes, url-safe base64) is shown once, when the token is
created, and never stored: a lookup finds the row by id and compares digests in constant
time. sha256 without salt or stretching is enough for 256 random bits (nothing to guess).

Checks are cached for ``cache_s`` seconds (AUTON8N_AUTH_CACHE_S, default 2; 0 reads the
database on every call): one primary-key read per call halved GetJob throughput on
SQLite (bench/unary_bench.py, variant c). Within that time a token already accepted is
recognised by the exact bearer string (``cached``: a dict lookup, not a sha256 per call).
Revocation stays immediate where it can be: the revoking TokenStore forgets the token at
once, and on PostgreSQL the revocation is NOTIFYed (at commit) to every replica, which
forget it too. The cache bounds everything else (a lost notification; ``auton8n tokens
revoke`` against a running SQLite server) to ``cache_s``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from server.auth.principal import Principal, Role
from server.domain.job import utcnow
from server.errors import NotFound
from server.store.repository import NOTIFY_CHANNEL
from server.store.shielding import shielded
from server.store.tables import ApiTokenRow

__all__ = [
    "PREFIX",
    "REVOKED_NOTICE",
    "IssuedToken",
    "TokenInfo",
    "TokenStore",
    "hash_secret",
    "parse_token",
]

PREFIX = "a8n"
REVOKED_NOTICE = "token-revoked:"  # NOTIFY payload prefix, followed by the token id
_ID_HEX = 12
_TOKEN = re.compile(rf"{PREFIX}_([0-9a-f]{{{_ID_HEX}}})_(.+)", re.DOTALL)
_CACHE_MAX = 10_000
# A cached check: (expires at, sha256 of the secret, principal); None, None: no such
# active token.
_Cached = tuple[float, str | None, Principal | None]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: str
    tenant: str
    name: str
    role: Role
    create_time: datetime
    revoke_time: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    info: TokenInfo
    token: str  # the full bearer token; shown once, stored nowhere

    def __repr__(self) -> str:  # never the secret, even in a traceback
        return f"IssuedToken(info={self.info!r}, token='[REDACTED]')"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None (never raises)."""
    if len(token) > 200 or (match := _TOKEN.fullmatch(token)) is None:
        return None
    return match[1], match[2]


def _verified(cached: _Cached, secret: str) -> Principal | None:
    _, digest, principal = cached
    if digest is None or not hmac.compare_digest(digest, hash_secret(secret)):
        return None
    return principal


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.id, row.tenant, row.name, Role(row.role), row.create_time, row.revoke_time)


class TokenStore:
    """Create, list, revoke and check API tokens (each method one transaction)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        cache_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._postgres = engine.dialect.name == "postgresql"
        self._inflight: set[asyncio.Future[Any]] = set()
        self._cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        # Tokens (the whole bearer string) accepted within the cache time: (expires at,
        # principal). Exact string equality, so a hit is the token that was checked; it
        # holds no more than the requests carrying the token do while they run.
        self._verified: dict[str, tuple[float, Principal]] = {}
        self._swept_at = clock()
        self._forgets = 0  # a check that overlapped a forget() does not cache its answer
        # Token id -> the lookup in flight: calls that miss together share one read (no
        # stampede on the database when a busy token's cached check expires).
        self._pending: dict[str, asyncio.Future[_Cached]] = {}

    def forget(self, token_id: str) -> None:
        """Drop a cached check (the token was revoked somewhere)."""
        self._forgets += 1
        self._cache.pop(token_id, None)
        for token in [t for t, (_, p) in self._verified.items() if p.token_id == token_id]:
            del self._verified[token]
        self._pending.pop(token_id, None)  # later calls must not join a lookup from before

    def on_notify(self, payload: str) -> bool:
        """Handle a NOTIFY payload; True when it was a token revocation."""
        if not payload.startswith(REVOKED_NOTICE):
            return False
        self.forget(payload.removeprefix(REVOKED_NOTICE))
        return True

    async def close(self, timeout_s: float = 10.0) -> None:
        """Wait (bounded) for calls whose callers were cancelled."""
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=timeout_s)

    @shielded
    async def create(self, *, tenant: str, role: Role = Role.USER, name: str = "") -> IssuedToken:
        """A new token for ``tenant``; the returned ``token`` is the only copy."""
        if not tenant or len(tenant) > 128 or not tenant.isprintable():
            raise ValueError("a tenant is 1-128 printable characters")
        if len(name) > 128 or not name.isprintable():
            raise ValueError("a token name is at most 128 printable characters")
        token_id = secrets.token_hex(_ID_HEX // 2)
        secret = secrets.token_urlsafe(32)
        row = ApiTokenRow(
            id=token_id,
            secret_sha256=hash_secret(secret),
            tenant=tenant,
            name=name,
            role=role.value,
            create_time=utcnow(),
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return IssuedToken(_info(row), f"{PREFIX}_{token_id}_{secret}")

    @shielded
    async def list(self, *, include_revoked: bool = True) -> list[TokenInfo]:
        query = select(ApiTokenRow).order_by(ApiTokenRow.create_time, ApiTokenRow.id)
        if not include_revoked:
            query = query.where(ApiTokenRow.revoke_time.is_(None))
        async with self._sessions() as session:
            return [_info(r) for r in (await session.execute(query)).scalars()]

    @shielded
    async def revoke(self, token_id: str) -> TokenInfo:
        """Revoke for good (idempotent: a revoked token keeps its first revoke time).

        Raises NotFound for an unknown id.
        """
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id, ApiTokenRow.revoke_time.is_(None))
                .values(revoke_time=utcnow())
            )
            row = await session.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(f"token {token_id!r} not found", reason="TOKEN_NOT_FOUND")
            if self._postgres:  # delivered at commit to every replica's listener
                await session.execute(
                    text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": NOTIFY_CHANNEL, "payload": REVOKED_NOTICE + token_id},
                )
        self.forget(token_id)  # a check that raced the revocation may have cached it
        return _info(row)

    async def authenticate(self, token: str) -> Principal | None:
        """The principal of a valid, unrevoked token; None otherwise."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        token_id, secret = parsed
        now = self._clock()
        cached = self._cache.get(token_id)
        if cached is None or cached[0] <= now:
            cached = await self._refresh(token_id, now)
        principal = _verified(cached, secret)
        if principal is not None and self._cache.get(token_id) is cached:  # not forgotten
            self._remember(token, cached[0], principal, now)
        return principal

    def _remember(self, token: str, expires: float, principal: Principal, now: float) -> None:
        verified = self._verified
        if len(verified) >= _CACHE_MAX:
            verified.clear()
        elif now >= self._swept_at + self._cache_s:  # drop expired tokens, not just unused
            self._swept_at = now
            for stale in [t for t, (until, _) in verified.items() if until <= now]:
                del verified[stale]
        verified[token] = (expires, principal)

    def cached(self, token: str) -> Principal | None:
        """The principal of exactly ``token`` if ``authenticate`` accepted it within the
        cache time, else None (then ``authenticate`` decides). For every call: a dict
        lookup, where hashing the secret costs ~2 us of a GetJob."""
        hit = self._verified.get(token)
        if hit is None:
            return None
        if hit[0] <= self._clock():
            self._verified.pop(token, None)
            return None
        return hit[1]

    async def _refresh(self, token_id: str, now: float) -> _Cached:
        pending = self._pending.get(token_id)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup_and_cache(token_id, now))
            self._pending[token_id] = pending
            pending.add_done_callback(lambda done: self._settled(token_id, done))
        return await asyncio.shield(pending)

    def _settled(self, token_id: str, done: asyncio.Future[_Cached]) -> None:
        if self._pending.get(token_id) is done:
            del self._pending[token_id]

    async def _lookup_and_cache(self, token_id: str, now: float) -> _Cached:
        forgets = self._forgets
        cached = await self._lookup(token_id, now + self._cache_s)
        if self._cache_s > 0 and forgets == self._forgets:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[token_id] = cached
        return cached

    @shielded
    async def _lookup(self, token_id: str, expires: float) -> _Cached:
        async with self._sessions() as session:
            row = await session.get(ApiTokenRow, token_id)
            if row is None or row.revoke_time is not None:
                return expires, None, None
            principal = Principal(row.tenant, Role(row.role), row.id, row.name)
            return expires, row.secret_sha256, principal
