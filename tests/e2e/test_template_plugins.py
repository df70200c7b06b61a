"""Template plugins really type-check, lint clean, pass their tests and build with the
shared toolchain (tools called directly, no npm, through a link-farm node_modules)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from server.domain.spec import PluginSpec
from server.generators.template import expected_exports, render_plugin
from server.pipeline.toolchain import Toolchain
from tests.conftest import TOOLCHAIN_DIR

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOOLCHAIN_MODULES = Toolchain(TOOLCHAIN_DIR).node_modules  # what `make toolchain` installs

HOSTILE = (
    "Quotes \" and ' and `ticks` ${process.exit(1)} */ /* </script><script>x()</script>"
    "\nnew line \\ back\u2028slash caf\u00e9 \U0001f600 TODO not implemented"
)
ADVERSARIAL: dict[str, dict[str, Any]] = {
    "hostile": {
        "name": '@evil/plugin-h"o`s${t}',
        "description": HOSTILE,
        "actions": [
            {
                "name": "doThing",
                "description": HOSTILE + " " + "long " * 30,
                "parameters": {
                    "query": "string",
                    "count": "integer?",
                    "when": "timestamp",
                    "mode": "'fast' | \"slow\" | `x${y}`",
                    "observer": {"latitude": "number", "meta": {"label": "string"}},
                    "birth date": "date",
                    "tags": "string[]",
                    "value": "string | number",
                    "payload": "object",
                    "text": "string",
                },
            },
            {"name": "noParams", "description": "", "parameters": {}},
        ],
        "providers": [
            {
                "name": "weird provider",
                "description": HOSTILE,
                "dataStructure": {
                    "a b": "string",
                    "nested": {"inner": "number"},
                    "at": "timestamp",
                },
            }
        ],
        "services": [
            {"name": "ShellService", "description": HOSTILE, "methods": ["execute", "stop"]},
            {"name": "idle", "description": "", "methods": []},
        ],
        "evaluators": [
            {"name": "factCheck", "description": HOSTILE, "triggers": ["fact", HOSTILE]},
            {"name": "always", "description": "", "triggers": []},
        ],
        "dependencies": {"left-pad": "^1.3.0"},
        "environmentVariables": [
            {"name": "API_KEY", "description": HOSTILE, "required": True, "sensitive": True},
            {"name": "weird.name", "description": "", "required": False, "sensitive": False},
        ],
    },
    "provider-only": {
        "name": "plugin-news",
        "providers": [
            {
                "name": "newsFeed",
                "description": "Latest headlines",
                "dataStructure": {
                    "headlines": "string[]",
                    "fetchedAt": "timestamp",
                    "count": "number",
                },
            }
        ],
    },
}


def _specs() -> list[Any]:
    params = [
        pytest.param(json.loads(path.read_text()), id=path.stem)
        for path in sorted(EXAMPLES.glob("*.json"))
    ]
    params += [pytest.param(data, id=name) for name, data in ADVERSARIAL.items()]
    return params


@pytest.fixture(scope="module")
def toolchain() -> Path:
    if not (TOOLCHAIN_MODULES / ".bin" / "vitest").exists():
        pytest.skip(f"the shared toolchain is not installed at {TOOLCHAIN_MODULES}")
    return TOOLCHAIN_MODULES


def write_plugin(spec: PluginSpec, workspace: Path, toolchain: Path) -> None:
    """The plugin's files plus a link farm: a real node_modules/ of one symlink per
    top-level toolchain entry (``.bin`` and scoped folders such as ``@elizaos`` whole)."""
    for path, content in render_plugin(spec).items():
        target = workspace / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    modules = workspace / "node_modules"
    modules.mkdir()
    for entry in toolchain.iterdir():
        if entry.name != ".package-lock.json":
            (modules / entry.name).symlink_to(entry)


def run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "NO_COLOR": "1", "CI": "1", "FORCE_COLOR": "0"}
    started = time.monotonic()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    return result, time.monotonic() - started


@pytest.mark.parametrize("data", _specs())
def test_template_plugin_passes_every_tool(
    data: dict[str, Any], tmp_path: Path, toolchain: Path
) -> None:
    spec = PluginSpec.from_json(data)
    write_plugin(spec, tmp_path, toolchain)
    timings: dict[str, float] = {}

    tsc, timings["tsc"] = run(["node", str(toolchain / "typescript/bin/tsc"), "--noEmit"], tmp_path)
    assert tsc.returncode == 0, tsc.stdout + tsc.stderr

    biome_args = [str(toolchain / ".bin/biome"), "check", "--error-on-warnings", "."]
    biome, timings["biome"] = run(biome_args, tmp_path)
    output = biome.stdout + biome.stderr
    assert biome.returncode == 0, output
    assert "Found " not in output, output  # not even an info-level finding

    report = tmp_path / "vitest-report.json"
    vitest_args = [str(toolchain / ".bin/vitest"), "run", "--reporter=json"]
    vitest, timings["vitest"] = run([*vitest_args, f"--outputFile={report}"], tmp_path)
    assert vitest.returncode == 0, vitest.stdout[-4000:] + vitest.stderr[-4000:]
    results = json.loads(report.read_text())
    assert results["numFailedTests"] == 0 and results["numPassedTests"] > 0
    tested = {Path(r["name"]).relative_to(tmp_path).as_posix() for r in results["testResults"]}
    for path in expected_exports(spec):
        if path != "src/index.ts":
            assert path.replace("src/", "src/__tests__/", 1).replace(".ts", ".test.ts") in tested

    build, timings["build"] = run([str(toolchain / ".bin/tsup")], tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (tmp_path / "dist/index.js").is_file() and (tmp_path / "dist/index.d.ts").is_file()
    print(f"{spec.name}: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))


def test_biome_configuration_reports_findings(tmp_path: Path, toolchain: Path) -> None:
    """The generated biome.json really enables the recommended rules (a migrated config
    can silently disable all of them)."""
    spec = PluginSpec.from_json(json.loads((EXAMPLES / "time.json").read_text()))
    write_plugin(spec, tmp_path, toolchain)
    deliberate = tmp_path / "src" / "deliberate.ts"
    deliberate.write_text("export const value: any = 1;\n", encoding="utf-8")
    biome, _ = run([str(toolchain / ".bin/biome"), "check", "--error-on-warnings", "."], tmp_path)
    assert biome.returncode != 0
    assert "lint/suspicious/noExplicitAny" in biome.stdout + biome.stderr
