"""``auton8n tokens create|list|revoke``: token administration on the server's database.

Runs next to the server (same ``AUTON8N_DATABASE_URL`` / data folder), not through the
API: whoever can read the database is an administrator anyway. The schema is migrated
first, so tokens can be made before the first start. A new token is printed once, alone
on stdout (``TOKEN=$(auton8n tokens create --tenant acme)``); details go to stderr.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TextIO

from server.auth.principal import Role
from server.auth.tokens import TokenInfo, TokenStore
from server.errors import NotFound
from server.store.engine import create_engine
from server.store.migrate import migrate

__all__ = ["open_token_store", "run_tokens"]

EXIT_OK, EXIT_USAGE, EXIT_NOT_FOUND = 0, 2, 4


@asynccontextmanager
async def open_token_store(database_url: str) -> AsyncIterator[TokenStore]:
    """A TokenStore on a migrated database; the engine is disposed on exit."""
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        tokens = TokenStore(engine)
        try:
            yield tokens
        finally:
            await tokens.close()
    finally:
        await engine.dispose()


def _as_json(info: TokenInfo) -> dict[str, str | None]:
    return {
        "id": info.id,
        "tenant": info.tenant,
        "name": info.name,
        "role": info.role.value,
        "create_time": info.create_time.isoformat(),
        "revoke_time": info.revoke_time.isoformat() if info.revoke_time else None,
    }


def _line(info: TokenInfo) -> str:
    revoked = f"revoked {info.revoke_time:%Y-%m-%d %H:%M}" if info.revoke_time else "active"
    return (
        f"{info.id}  {info.role.value:<5}  {info.create_time:%Y-%m-%d %H:%M}  {revoked:<24}  "
        f"{info.tenant}  {info.name}"
    ).rstrip()


async def run_tokens(
    database_url: str,
    action: str,
    *,
    tenant: str = "",
    admin: bool = False,
    name: str = "",
    token_id: str = "",
    as_json: bool = False,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run one action ("create", "list", "revoke"); returns the exit code (0, 2, 4)."""
    async with open_token_store(database_url) as tokens:
        if action == "create":
            try:
                issued = await tokens.create(
                    tenant=tenant, role=Role.ADMIN if admin else Role.USER, name=name
                )
            except ValueError as exc:
                err.write(f"auton8n: {exc}\n")
                return EXIT_USAGE
            info = issued.info
            if as_json:
                out.write(json.dumps({**_as_json(info), "token": issued.token}) + "\n")
            else:
                out.write(issued.token + "\n")
                err.write(
                    f"created {info.role.value} token {info.id} for tenant {info.tenant!r}; "
                    "this is the only time it is shown\n"
                )
            return EXIT_OK
        if action == "list":
            for info in await tokens.list():
                out.write((json.dumps(_as_json(info)) if as_json else _line(info)) + "\n")
            return EXIT_OK
        if action == "revoke":
            try:
                info = await tokens.revoke(token_id)
            except NotFound as exc:
                err.write(f"auton8n: {exc.message}\n")
                return EXIT_NOT_FOUND
            out.write(json.dumps(_as_json(info)) + "\n" if as_json else f"revoked {info.id}\n")
            return EXIT_OK
    raise ValueError(f"unknown tokens action {action!r}")
