"""docs/operations.md: the SQLite online-backup command works as written, on a WAL
database that is being written to while it runs."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "operations.md"


def backup_snippet() -> str:
    found = re.search(r'python -c "(import sqlite3[^"]+)"', DOC.read_text())
    assert found, "no SQLite backup command in docs/operations.md"
    return found.group(1)


def test_sqlite_online_backup_as_documented(tmp_path: Path) -> None:
    db, backup = tmp_path / "auton8n.db", tmp_path / "auton8n-backup.db"
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

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", backup_snippet(), str(db), str(backup)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    with closing(sqlite3.connect(backup)) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT count(*) FROM jobs").fetchone()[0] >= 2000
