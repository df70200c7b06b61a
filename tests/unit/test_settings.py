from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from server.settings import DEFAULT_CLAUDE_MODEL, Settings, SettingsError, env_name


def test_defaults_serve_a_developer_machine() -> None:
    s = Settings.from_env({})
    assert s.listen_address == "127.0.0.1:50051"
    assert s.metrics_address == "127.0.0.1:9464"
    assert s.resolved_database_url == "sqlite+aiosqlite:///data/auton8n.db"
    assert s.default_model == "template"


def test_environment_and_overrides() -> None:
    env = {
        "AUTON8N_DATA_DIR": "/tmp/x",
        "AUTON8N_MAX_CONCURRENT_JOBS": "4",
        "AUTON8N_ALLOW_UNSANDBOXED": "yes",
        "AUTON8N_JOB_TIMEOUT_S": "60.5",
        "ANTHROPIC_API_KEY": "sk-ant-test",
    }
    s = Settings.from_env(env, {"listen_address": "0.0.0.0:1", "max_concurrent_jobs": "3"})
    assert s.data_dir == Path("/tmp/x") and s.max_concurrent_jobs == 3
    assert s.allow_unsandboxed is True and s.job_timeout_s == 60.5
    assert s.listen_address == "0.0.0.0:1"
    assert s.default_model == DEFAULT_CLAUDE_MODEL
    assert "sk-ant-test" not in repr(s)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"AUTON8N_MAX_CONCURRENT_JOBS": "many"}, "AUTON8N_MAX_CONCURRENT_JOBS"),
        ({"AUTON8N_ALLOW_UNSANDBOXED": "perhaps"}, "AUTON8N_ALLOW_UNSANDBOXED"),
        ({"AUTON8N_LEASE_TIMEOUT_S": "1", "AUTON8N_HEARTBEAT_INTERVAL_S": "2"}, "HEARTBEAT"),
        ({"AUTON8N_MAX_CONCURRENT_JOBS": "0"}, "MAX_CONCURRENT_JOBS"),
        ({"AUTON8N_LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        Settings.from_env(env)


README = Path(__file__).resolve().parents[2] / "README.md"
CLIENT_VARIABLES = {"AUTON8N_SERVER", "AUTON8N_TOKEN"}  # the CLI's, not the server's


def _configuration_table() -> list[tuple[list[str], list[str]]]:
    """(variables, backticked defaults) per row of the README's configuration table."""
    section = README.read_text().split("\n## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        if line.startswith("| `"):
            name_cell, default_cell = line.strip("|").split("|")[:2]
            rows.append(
                (
                    re.findall(r"`([A-Z][A-Z0-9_]+)`", name_cell),
                    re.findall(r"`([^`]*)`", default_cell),
                )
            )
    return rows


def _same(documented: str, default: object) -> bool:
    if isinstance(default, bool):
        return documented == str(default).lower()
    if isinstance(default, int | float):
        return float(documented) == float(default)
    if isinstance(default, Path):
        return Path(documented) == default
    return documented == default


def test_the_readme_documents_every_setting_with_its_default() -> None:
    fields = {env_name(f.name): f for f in dataclasses.fields(Settings)}
    rows = _configuration_table()
    documented = [name for names, _ in rows for name in names]
    assert len(documented) == len(set(documented)), "a variable documented twice"
    assert set(documented) - CLIENT_VARIABLES == set(fields)
    for names, defaults in rows:
        for position, name in enumerate(names):
            if name in CLIENT_VARIABLES:
                continue
            default = fields[name].default
            if default == "":
                continue  # unset, or described in words ("SQLite (WAL) at ...")
            assert len(defaults) == len(names), f"{name}: one backticked default per variable"
            assert _same(defaults[position], default), (name, defaults[position], default)
