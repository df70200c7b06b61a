"""Commands that run next to the server, on its database, not through the API:
``auton8n tokens create|list|revoke`` and ``auton8n backup``.

Whoever can read the database is an administrator anyway. They take the server's
settings (``AUTON8N_DATABASE_URL`` / ``AUTON8N_DATA_DIR``, or the flags) and import the
server's modules lazily, so the client side works without them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client._usage import UsageError

if TYPE_CHECKING:
    from server.settings import Settings

__all__ = ["ADMIN_COMMANDS", "add_admin_commands", "run_admin"]

ADMIN_COMMANDS = ("tokens", "backup")


def add_admin_commands(commands: Any) -> None:
    """Adds the admin commands to the CLI's subparsers."""
    tokens = _admin_parser(
        commands,
        "tokens",
        "manage API tokens (on the server's database)",
        "Create, list and revoke API tokens, directly on the server's database "
        "(AUTON8N_DATABASE_URL, or the SQLite file in the data folder).",
    )
    actions = tokens.add_subparsers(dest="tokens_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a token; it is printed once")
    create.add_argument("--tenant", required=True, help="the tenant whose jobs it reaches")
    create.add_argument("--admin", action="store_true", help="may see every tenant's jobs")
    create.add_argument("--name", default="", help="a label (who or what uses it)")
    actions.add_parser("list", help="list tokens (never their secrets)")
    actions.add_parser("revoke", help="revoke a token for good").add_argument(
        "token_id", metavar="ID"
    )

    backup = _admin_parser(
        commands,
        "backup",
        "write a consistent copy of the SQLite database (online)",
        "Copy the server's SQLite database to FILE with SQLite's online backup API: "
        "consistent while the server runs. PostgreSQL: use pg_dump (docs/operations.md).",
    )
    backup.add_argument("destination", type=Path, metavar="FILE", help="new file to write")


def _admin_parser(commands: Any, name: str, help_: str, description: str) -> Any:
    parser = commands.add_parser(name, help=help_, description=description)
    parser.add_argument("--data-dir", metavar="DIR", help="data folder (AUTON8N_DATA_DIR)")
    parser.add_argument("--database-url", metavar="URL", help="database (AUTON8N_DATABASE_URL)")
    return parser


def run_admin(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Runs ``args.command`` (one of ADMIN_COMMANDS); returns the exit code."""
    settings = _settings(args, env)
    if args.command == "backup":
        return _backup(settings.resolved_database_url, args.destination, as_json=args.json)
    from server.auth.admin import run_tokens

    return asyncio.run(
        run_tokens(
            settings.resolved_database_url,
            args.tokens_action,
            tenant=getattr(args, "tenant", ""),
            admin=getattr(args, "admin", False),
            name=getattr(args, "name", ""),
            token_id=getattr(args, "token_id", ""),
            as_json=args.json,
            out=sys.stdout,
            err=sys.stderr,
        )
    )


def _settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    from server.settings import Settings

    flags = {"data_dir": args.data_dir, "database_url": args.database_url}
    try:
        return Settings.from_env(env, {k: v for k, v in flags.items() if v is not None})
    except ValueError as error:
        raise UsageError(f"invalid configuration: {error}") from error


def _backup(database_url: str, destination: Path, *, as_json: bool) -> int:
    import json

    from server.store.maintenance import backup_sqlite

    try:
        written = asyncio.run(backup_sqlite(database_url, destination))
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from error
    size = written.stat().st_size
    if as_json:
        print(json.dumps({"path": str(written), "bytes": size}))
    else:
        print(f"backup written to {written} ({size} bytes)")
    return 0
