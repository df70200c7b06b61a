"""The committed generated code is current, and buf lint is clean."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("plugin_service_pb2.py", "plugin_service_pb2.pyi", "plugin_service_pb2_grpc.py")
# The generator stamps its own version (and the lowest runtime it accepts) into the code: a
# newer grpcio-tools from PyPI changes only these, which is not staleness.
_STAMPS = (
    (re.compile(r"GRPC_GENERATED_VERSION = '[^']*'"), "GRPC_GENERATED_VERSION = '*'"),
    (re.compile(r"# Protobuf Python Version: \S+"), "# Protobuf Python Version: *"),
    (re.compile(r"(Domain\.PUBLIC,)\s*\d+,\s*\d+,\s*\d+,"), r"\1 *,"),
)


def _unstamped(code: str) -> str:
    for pattern, replacement in _STAMPS:
        code = pattern.sub(replacement, code)
    return code


def test_generated_python_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "genprotos.py"), "--out", str(tmp_path)],
        check=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "auton8n" / "v1" / name).read_text()
        committed = (ROOT / "protos" / "auton8n" / "v1" / name).read_text()
        assert _unstamped(fresh) == _unstamped(committed), f"{name} is stale: run `make protos`"


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
