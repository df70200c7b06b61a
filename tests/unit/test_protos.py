"""The committed generated code is current, and buf lint is clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("plugin_service_pb2.py", "plugin_service_pb2.pyi", "plugin_service_pb2_grpc.py")


def test_generated_python_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "genprotos.py"), "--out", str(tmp_path)],
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "auton8n" / "v1" / name).read_text()
        committed = (ROOT / "protos" / "auton8n" / "v1" / name).read_text()
        assert fresh == committed, f"{name} is stale: run `make protos`"


def test_buf_lint_is_clean() -> None:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        npm = shutil.which("npm")
        assert npm, "npm is required"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--silent"], cwd=ROOT, check=True
        )
    result = subprocess.run([str(buf), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
