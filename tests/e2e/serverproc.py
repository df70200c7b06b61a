"""A server in a subprocess (``python -m server``) for restart and crash tests."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

from tests.conftest import TOOLCHAIN_DIR, open_to_sandbox

LISTENING = re.compile(r"auton8n listening on ([\d.]+):(\d+)")


class ServerProcess:
    def __init__(self, data_dir: Path, **env: str) -> None:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        open_to_sandbox(data_dir.parent)
        self.data_dir = data_dir
        self.env = {
            **os.environ,
            "AUTON8N_DATA_DIR": str(data_dir),
            "AUTON8N_LISTEN_ADDRESS": "127.0.0.1:0",
            "AUTON8N_METRICS_ADDRESS": "127.0.0.1:0",
            # Tests create jobs in bursts from one loopback address.
            "AUTON8N_RATE_LIMIT_CREATE_PER_HOUR": "0",
            "AUTON8N_TOOLCHAIN_DIR": str(TOOLCHAIN_DIR),
            "AUTON8N_CLAIM_POLL_INTERVAL_S": "0.2",
            "AUTON8N_LOG_LEVEL": "INFO",
            "AUTON8N_LOG_FORMAT": "text",
            **env,
        }
        self.proc: asyncio.subprocess.Process | None = None
        self.logs: list[Path] = []
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60) -> ServerProcess:
        # The server's log goes next to its data folder, for post-mortems.
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        log = self.data_dir.parent / f"server-{id(self):x}-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("ab") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "server",
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        match = LISTENING.search(line.decode())
        assert match, f"server did not start: {line!r}"
        self.port = int(match.group(2))
        return self

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        return await asyncio.wait_for(self.proc.wait(), timeout)
