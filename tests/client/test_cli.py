"""The ``auton8n`` command line against a real grpc.aio server with a scripted fake.

The CLI runs its own event loop (``asyncio.run``), so tests call ``cli.run`` in a thread
while the fake server keeps serving on the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from auton8n.v1 import plugin_service_pb2 as pb
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2

from client import cli

if TYPE_CHECKING:
    from tests.client.conftest import FakeService

Cli = Callable[..., Awaitable[int]]
SPEC = {
    "name": "@elizaos/plugin-time",
    "description": "Provides current time and timezone information",
    "actions": [{"name": "getCurrentTime", "parameters": {"timezone": "string"}}],
}


@pytest.fixture
def auton8n(target: str, fake: FakeService) -> Cli:
    """Runs the CLI against the fake server; returns its exit code."""

    async def invoke(*argv: str, env: dict[str, str] | None = None) -> int:
        args = ["--server", target, "--token", fake.token, *argv]
        return await asyncio.to_thread(cli.run, args, environ=env or {})

    return invoke


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(SPEC))
    return path


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("auton8n: ")
    assert "Traceback" not in stderr
    return lines[0]


async def test_create_watch_download_succeeds(
    auton8n: Cli, spec_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    code = await auton8n("create", "--spec", str(spec_file), "--watch", "--download", str(out_dir))

    out = capsys.readouterr().out
    assert code == cli.Exit.OK == 0
    assert out.splitlines()[0] == "job-1"
    assert "SUCCEEDED" in out and "4 passed, 0 failed" in out and "92/100" in out
    assert f"{out_dir / 'plugin-time'}\n" in out
    assert re.search(r"^sha256 [0-9a-f]{64}$", out, re.MULTILINE)
    assert (out_dir / "plugin-time" / "package.json").is_file()


async def test_create_prints_only_the_job_id(
    auton8n: Cli, fake: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await auton8n("create", "--description", "tells the time", "--request-id", "r1")
    assert (code, capsys.readouterr().out) == (0, "job-1\n")
    assert fake.requests["CreatePlugin"][0].request_id == "r1"


async def test_failed_job_exits_1_with_its_errors(
    auton8n: Cli, fake: FakeService, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.outcome = pb.JOB_STATE_FAILED
    code = await auton8n("create", "--spec", str(spec_file), "--watch", "--download", "x")

    out = capsys.readouterr().out
    assert code == cli.Exit.JOB_FAILED
    assert (
        "FAILED" in out and "src/index.ts:3 TS2322" in out and "ABORTED: gave up [/bold]" in out
    )  # not markup
    assert "3 passed, 1 failed" in out


async def test_cancelled_job_exits_3(
    auton8n: Cli, fake: FakeService, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.outcome = pb.JOB_STATE_CANCELLED
    assert await auton8n("create", "--spec", str(spec_file)) == 0
    assert await auton8n("watch", "job-1") == cli.Exit.JOB_CANCELLED


async def test_plain_progress_prints_a_line_per_change(
    auton8n: Cli, fake: FakeService, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await auton8n("create", "--spec", str(spec_file))
    capsys.readouterr()
    fake.watch_breaks = [3]  # a reconnect in the middle changes nothing visible

    assert await auton8n("watch", "job-1") == 0
    progress = [line for line in capsys.readouterr().out.splitlines() if line.endswith("%")]
    assert progress == EXPECTED_PROGRESS

    # Watching the finished job again replays it; its final snapshot is not shown first.
    assert await auton8n("watch", "job-1") == 0
    again = [line for line in capsys.readouterr().out.splitlines() if line.endswith("%")]
    assert again == EXPECTED_PROGRESS[1:]


EXPECTED_PROGRESS = [
    "QUEUED (position 0) 0%",
    "RUNNING SETUP iteration 1/5 5%",
    "RUNNING GENERATING iteration 1/5 20%",
    "RUNNING BUILDING iteration 1/5 45%",
    "RUNNING TESTING iteration 1/5 60%",
    "RUNNING PACKAGING iteration 1/5 90%",
    "SUCCEEDED iteration 1/5 100%",
]


async def test_watch_json_prints_one_event_per_line(
    auton8n: Cli, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await auton8n("create", "--spec", str(spec_file))
    capsys.readouterr()

    assert await auton8n("watch", "job-1", "--after-seq", "4", "--json") == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [int(e.get("seq", 0)) for e in events if "heartbeat" not in e] == [0, 5, 6, 7]
    assert events[-1]["job"]["state"] == "JOB_STATE_SUCCEEDED"


async def test_not_found_exits_4(auton8n: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert await auton8n("get", "nope") == cli.Exit.NOT_FOUND
    line = one_line(capsys.readouterr().err)
    assert line == "auton8n: NOT_FOUND: job nope not found [JOB_NOT_FOUND]"


async def test_invalid_argument_exits_6_with_violations(
    auton8n: Cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"name": "bad name"}))

    assert await auton8n("create", "--spec", str(spec)) == cli.Exit.INVALID_ARGUMENT
    line = one_line(capsys.readouterr().err)
    assert "[INVALID_SPEC]" in line and "spec.name: must look like @scope/plugin-name" in line


async def test_unreachable_server_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    argv = ["--server", f"127.0.0.1:{port}", "--retry-timeout", "0.3", "get", "job-1"]

    assert await asyncio.to_thread(cli.run, argv, environ={}) == cli.Exit.UNAVAILABLE
    assert f"server 127.0.0.1:{port} unavailable: UNAVAILABLE" in one_line(capsys.readouterr().err)


async def test_missing_token_exits_7(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = await asyncio.to_thread(cli.run, ["get", "job-1"], environ={"AUTON8N_SERVER": target})
    assert code == cli.Exit.PERMISSION
    assert "(set --token or AUTON8N_TOKEN)" in one_line(capsys.readouterr().err)


async def test_environment_supplies_server_and_token(
    target: str, fake: FakeService, spec_file: Path
) -> None:
    env = {"AUTON8N_SERVER": target, "AUTON8N_TOKEN": fake.token}
    assert await asyncio.to_thread(cli.run, ["create", "--spec", str(spec_file)], environ=env) == 0


async def test_rate_limited_exits_8_with_retry_after(
    auton8n: Cli, fake: FakeService, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.fail["ListJobs"] = [
        fake.error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "too many requests",
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=7)),
        )
    ]
    assert await auton8n("list") == cli.Exit.RATE_LIMITED
    assert "retry after 7s" in one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read spec"),
        ("{not json", "bad spec"),
        ('{"name": "@a/b", "actionz": []}', "bad spec"),
    ],
)
async def test_bad_spec_file_exits_2(
    auton8n: Cli,
    fake: FakeService,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str | None,
    message: str,
) -> None:
    spec = tmp_path / "spec.json"
    if content is not None:
        spec.write_text(content)
    assert await auton8n("create", "--spec", str(spec)) == cli.Exit.USAGE
    assert message in one_line(capsys.readouterr().err)
    assert fake.requests["CreatePlugin"] == []


async def test_usage_errors_exit_2(auton8n: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    assert await auton8n("create") == cli.Exit.USAGE  # neither --spec nor --description
    assert await auton8n("list", "--state", "sleeping") == cli.Exit.USAGE
    assert await auton8n("frobnicate") == cli.Exit.USAGE
    assert "Traceback" not in capsys.readouterr().err


async def test_options_after_the_command(
    target: str, fake: FakeService, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["create", "--spec", str(spec_file), "--server", target, "--token", fake.token]
    assert await asyncio.to_thread(cli.run, [*argv, "--json"], environ={}) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "job-1"


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["--help"]) == 0
    out = capsys.readouterr().out
    for code in cli.Exit:
        assert re.search(rf"^\s+{code.value}\s+\S", out, re.MULTILINE), code


async def test_list_cancel_delete(
    auton8n: Cli, spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for _ in range(3):
        await auton8n("create", "--spec", str(spec_file))
    capsys.readouterr()

    assert await auton8n("list", "--limit", "2") == 0
    table = capsys.readouterr().out
    assert "job-3" in table and "job-2" in table and "job-1" not in table
    assert await auton8n("cancel", "job-2") == 0
    assert capsys.readouterr().out == "job-2 CANCELLED\n"
    assert await auton8n("list", "--state", "cancelled", "--json") == 0
    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ["job-2"]
    assert await auton8n("cancel", "job-2") == cli.Exit.ERROR  # FAILED_PRECONDITION
    assert await auton8n("delete", "job-2", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"id": "job-2", "deleted": True}
    assert await auton8n("get", "job-2") == cli.Exit.NOT_FOUND


async def test_download_verifies_and_unpacks(
    auton8n: Cli,
    fake: FakeService,
    spec_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await auton8n("create", "--spec", str(spec_file))
    capsys.readouterr()

    assert await auton8n("download", "job-1", "-o", str(tmp_path / "a"), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["path"] == str(tmp_path / "a" / "plugin-time")
    assert len(result["sha256"]) == 64

    fake.artifact_sha = "0" * 64
    assert await auton8n("download", "job-1", "-o", str(tmp_path / "b")) == cli.Exit.ERROR
    assert "DATA_LOSS: archive sha256 is" in one_line(capsys.readouterr().err)
