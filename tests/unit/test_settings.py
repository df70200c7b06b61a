from __future__ import annotations

from pathlib import Path

import pytest

from server.settings import DEFAULT_CLAUDE_MODEL, Settings, SettingsError


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
