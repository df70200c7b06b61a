"""API tokens on real databases: stored hashed, checked, listed, revoked for good."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.auth.principal import Role
from server.auth.tokens import REVOKED_NOTICE, TokenStore, hash_secret, parse_token
from server.errors import NotFound
from server.store.engine import create_engine
from server.store.migrate import migrate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await migrate(engine)
    yield engine
    await engine.dispose()


async def test_a_token_is_checked_and_only_its_hash_is_stored(engine: AsyncEngine) -> None:
    tokens = TokenStore(engine)
    issued = await tokens.create(tenant="acme", name="ci")
    assert "[REDACTED]" in repr(issued) and issued.token not in repr(issued)
    token_id, secret = parse_token(issued.token) or ("", "")
    assert token_id == issued.info.id and len(secret) >= 40

    principal = await tokens.authenticate(issued.token)
    assert principal is not None
    assert (principal.tenant, principal.role, principal.token_id) == ("acme", Role.USER, token_id)
    assert principal.scope == "acme"

    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM api_tokens"))).all()
    stored = repr(rows)
    assert secret not in stored and issued.token not in stored
    assert hash_secret(secret) in stored


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "a8n",
        "a8n__x",
        "Bearer x",
        "a8n_ZZZZZZZZZZZZ_secret",
        "a8n_0123456789ab_",
        "a8n_0123456789ab_wrong-secret",
        "x" * 5000,
        "a8n_0123456789ab_\x00\n",
    ],
)
async def test_malformed_and_unknown_tokens_are_refused(
    engine: AsyncEngine, presented: str
) -> None:
    tokens = TokenStore(engine)
    await tokens.create(tenant="acme")
    assert await tokens.authenticate(presented) is None


async def test_a_wrong_secret_for_a_real_id_is_refused(engine: AsyncEngine) -> None:
    tokens = TokenStore(engine)
    issued = await tokens.create(tenant="acme")
    forged = f"a8n_{issued.info.id}_{'A' * 43}"
    assert await tokens.authenticate(forged) is None


async def test_admin_tokens_see_every_tenant(engine: AsyncEngine) -> None:
    tokens = TokenStore(engine)
    issued = await tokens.create(tenant="ops", role=Role.ADMIN)
    principal = await tokens.authenticate(issued.token)
    assert principal is not None and principal.scope is None


async def test_revocation_is_immediate_even_with_a_cache(engine: AsyncEngine) -> None:
    clock = Clock()
    tokens = TokenStore(engine, cache_s=60, clock=clock)
    issued = await tokens.create(tenant="acme")
    assert await tokens.authenticate(issued.token) is not None  # cached now
    revoked = await tokens.revoke(issued.info.id)
    assert revoked.revoked
    assert await tokens.authenticate(issued.token) is None
    again = await tokens.revoke(issued.info.id)  # idempotent, first time kept
    assert again.revoke_time == revoked.revoke_time
    with pytest.raises(NotFound):
        await tokens.revoke("ffffffffffff")


async def test_cached_vouches_only_for_the_exact_token_checked_within_the_cache_time(
    engine: AsyncEngine,
) -> None:
    """``cached`` (the per-call path, no hashing) answers only for a token ``authenticate``
    accepted, until the cache time ends or the token is revoked; else None, and
    ``authenticate`` decides."""
    clock = Clock()
    tokens = TokenStore(engine, cache_s=2.0, clock=clock)
    issued = await tokens.create(tenant="acme")
    assert tokens.cached(issued.token) is None  # never checked
    checked = await tokens.authenticate(issued.token)
    assert checked is not None and tokens.cached(issued.token) == checked
    token_id, secret = issued.token.rsplit("_", 1)
    forged = f"{token_id}_{'x' * len(secret)}"  # same id, wrong secret
    assert await tokens.authenticate(forged) is None and tokens.cached(forged) is None
    clock.now += 2.0
    assert tokens.cached(issued.token) is None  # expired with the check it rests on
    assert await tokens.authenticate(issued.token) == checked
    assert tokens.cached(issued.token) == checked
    await tokens.revoke(issued.info.id)
    assert tokens.cached(issued.token) is None  # revoked: at once
    uncached = TokenStore(engine, cache_s=0, clock=clock)
    other = await uncached.create(tenant="acme")
    assert await uncached.authenticate(other.token) is not None
    assert uncached.cached(other.token) is None  # no cache time: every call checks


async def test_another_process_revoking_is_seen_within_the_cache_time(engine: AsyncEngine) -> None:
    clock = Clock()
    server = TokenStore(engine, cache_s=2.0, clock=clock)
    admin_cli = TokenStore(engine)
    issued = await admin_cli.create(tenant="acme")
    assert await server.authenticate(issued.token) is not None
    await admin_cli.revoke(issued.info.id)
    clock.now += 2.0
    assert await server.authenticate(issued.token) is None
    # A NOTIFY from another replica makes it immediate (PostgreSQL delivers it).
    second = await admin_cli.create(tenant="acme")
    assert await server.authenticate(second.token) is not None
    await admin_cli.revoke(second.info.id)
    assert server.on_notify(REVOKED_NOTICE + second.info.id)
    assert not server.on_notify("0123456789abcdef0123456789abcdef")  # a job id: not ours
    assert await server.authenticate(second.token) is None


async def test_list_shows_tokens_without_secrets(engine: AsyncEngine) -> None:
    tokens = TokenStore(engine)
    first = await tokens.create(tenant="acme", name="laptop")
    second = await tokens.create(tenant="globex", role=Role.ADMIN)
    await tokens.revoke(first.info.id)
    listed = await tokens.list()
    assert [(t.id, t.tenant, t.role, t.revoked) for t in listed] == [
        (first.info.id, "acme", Role.USER, True),
        (second.info.id, "globex", Role.ADMIN, False),
    ]
    assert [t.id for t in await tokens.list(include_revoked=False)] == [second.info.id]
    assert first.token not in repr(listed)


@pytest.mark.parametrize(
    ("tenant", "name"), [("", ""), ("x" * 200, ""), ("a\nb", ""), ("a", "\x00")]
)
async def test_bad_tenants_and_names_are_refused(
    engine: AsyncEngine, tenant: str, name: str
) -> None:
    with pytest.raises(ValueError):
        await TokenStore(engine).create(tenant=tenant, name=name)


async def test_concurrent_misses_share_one_lookup(
    tmp_path: Path,
) -> None:
    """A busy token's check missing the cache: the calls in flight share one read, and a
    revocation still wins at once."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'tokens.db'}"
    engine = create_engine(url)
    await migrate(engine)
    reads = 0

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal reads
        if "FROM api_tokens" in statement:
            reads += 1

    store = TokenStore(engine, cache_s=60)
    try:
        issued = await store.create(tenant="acme")
        results = await asyncio.gather(*(store.authenticate(issued.token) for _ in range(50)))
        assert all(r is not None and r.tenant == "acme" for r in results)
        assert reads == 1
        pending = asyncio.ensure_future(store.authenticate(issued.token))  # cached: no read
        assert await pending is not None and reads == 1
        await store.revoke(issued.info.id)
        assert await store.authenticate(issued.token) is None
    finally:
        await store.close()
        await engine.dispose()
