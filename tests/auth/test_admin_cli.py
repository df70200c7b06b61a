"""``auton8n tokens create|list|revoke`` against the database the settings name."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from client.cli import run
from server.auth.admin import open_token_store


def tokens(data: Path, *args: str, json_out: bool = False) -> int:
    prefix = ["--json"] if json_out else []
    return run([*prefix, "tokens", "--data-dir", str(data), *args], environ={})


def test_create_list_revoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert tokens(data, "create", "--tenant", "acme", "--name", "ci") == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("a8n_") and "\n" not in token
    assert "only time it is shown" in err and token not in err

    assert tokens(data, "create", "--tenant", "ops", "--admin", json_out=True) == 0
    admin = json.loads(capsys.readouterr().out)
    assert admin["role"] == "admin" and admin["token"].startswith("a8n_")

    assert tokens(data, "list", json_out=True) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(t["tenant"], t["role"], t["name"]) for t in listed] == [
        ("acme", "user", "ci"),
        ("ops", "admin", ""),
    ]
    assert all("token" not in t for t in listed)

    token_id = listed[0]["id"]
    assert tokens(data, "revoke", token_id) == 0
    assert capsys.readouterr().out.strip() == f"revoked {token_id}"
    assert tokens(data, "list") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "revoked" in lines[0] and "active" in lines[1]

    async def check() -> tuple[object, object]:
        url = f"sqlite+aiosqlite:///{data / 'auton8n.db'}"
        async with open_token_store(url) as store:
            return await store.authenticate(token), await store.authenticate(admin["token"])

    revoked, active = asyncio.run(check())
    assert revoked is None and active is not None


def test_errors_have_their_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert tokens(data, "revoke", "ffffffffffff") == 4
    assert tokens(data, "create", "--tenant", "") == 2
    assert tokens(data, "create") == 2  # --tenant is required
    assert run(["tokens", "--database-url", "nope://", "list"], environ={}) != 0
    capsys.readouterr()
