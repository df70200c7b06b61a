"""docs/operations.md: the SQLite online-backup command works as written, on a WAL
database that is being written to while it runs."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"
AUTON8N = Path(sys.executable).with_name("auton8n")  # the console script of this venv


def documented_backup() -> list[str]:
    """The doc's command outside Kubernetes, as argv."""
    found = re.search(r"`(auton8n backup --data-dir \./data [^`]+)`", DOC.read_text())
    assert found, "no 'auton8n backup --data-dir ./data ...' command in docs/operations.md"
    return shlex.split(found.group(1))


def test_sqlite_online_backup_as_documented(tmp_path: Path) -> None:
    argv = documented_backup()
    assert argv[:4] == ["auton8n", "backup", "--data-dir", "./data"]
    data = tmp_path / "data"
    data.mkdir()
    db = data / "auton8n.db"
    with closing(sqlite3.connect(db)) as setup, setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE jobs (id INTEGER PRIMARY KEY, body TEXT)")
        setup.executemany("INSERT INTO jobs (body) VALUES (?)", [("x" * 500,)] * 2000)
    stop = threading.Event()

    def writer() -> None:  # the server keeps writing during the backup
        conn = sqlite3.connect(db)
        while not stop.is_set():
            with conn:
                conn.execute("INSERT INTO jobs (body) VALUES ('y')")
        conn.close()

    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTON8N_")}
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # The doc's destination has a shell substitution: run it through the shell.
        command = " ".join([shlex.quote(str(AUTON8N)), *argv[1:]])
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    backups = list((tmp_path / "backups").glob("auton8n-*.db"))
    assert len(backups) == 1 and "backup written to" in result.stdout
    with closing(sqlite3.connect(backups[0])) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT count(*) FROM jobs").fetchone()[0] >= 2000
