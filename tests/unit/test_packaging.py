"""The artifact is deterministic and holds only the plugin's sources."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import time
from pathlib import Path

from server.pipeline.packaging import archive_folder_name, build_archive, build_artifact
from server.pipeline.workspace import Workspace

FILES = {
    "package.json": '{"name": "@acme/plugin-time", "version": "1.0.0"}\n',
    "README.md": "# plugin-time\n",
    "src/index.ts": "export const timePlugin = {};\n",
    "src/actions/getTime.ts": "export const getTimeAction = {};\n",
}


def members(archive: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return tar.getmembers()


def test_same_input_same_bytes_and_sha256() -> None:
    first, sha = build_archive(FILES, "plugin-time")
    second, sha_again = build_archive(dict(reversed(list(FILES.items()))), "plugin-time")
    assert first == second
    assert sha == sha_again == hashlib.sha256(first).hexdigest()
    _, other = build_archive({**FILES, "README.md": "# changed\n"}, "plugin-time")
    assert other != sha


def test_entries_sorted_normalised_and_under_the_package_folder() -> None:
    archive, _ = build_archive(FILES, "plugin-time")
    infos = members(archive)
    names = [i.name for i in infos]
    assert names == sorted(names)
    assert names == [
        "plugin-time",
        "plugin-time/README.md",
        "plugin-time/package.json",
        "plugin-time/src",
        "plugin-time/src/actions",
        "plugin-time/src/actions/getTime.ts",
        "plugin-time/src/index.ts",
    ]
    for info in infos:
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
        assert info.mode == (0o755 if info.isdir() else 0o644)
    with gzip.GzipFile(fileobj=io.BytesIO(archive)) as gz:
        gz.read()
        assert gz.mtime == 0


def test_folder_name_from_package_name() -> None:
    assert archive_folder_name(FILES) == "plugin-time"
    assert archive_folder_name({"package.json": '{"name": "plugin-x"}'}) == "plugin-x"
    assert archive_folder_name({"package.json": "not json"}) == "plugin"
    assert archive_folder_name({}) == "plugin"
    assert archive_folder_name({"package.json": '{"name": "@a/../../etc"}'}) == "etc"


async def test_artifact_from_workspace_has_no_heavy_parts(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    await ws.create()
    report = await ws.write_files(FILES)
    assert report.rejected == ()
    for heavy in ("node_modules/vitest/index.js", "dist/index.js", ".deps/package.json"):
        (ws.root / heavy).parent.mkdir(parents=True, exist_ok=True)
        (ws.root / heavy).write_text("x")
    (ws.root / "node_modules" / ".vite").mkdir()
    (ws.root / "src" / "link.ts").symlink_to(tmp_path / "elsewhere.ts")
    archive, sha = await build_artifact(ws)
    names = {i.name for i in members(archive)}
    assert "plugin-time/src/index.ts" in names
    assert not any(
        part in ("node_modules", "dist", ".deps", "link.ts")
        for name in names
        for part in name.split("/")
    )
    # Same sources written again later (new mtimes, new inodes): same artifact.
    for path in FILES:
        os.utime(ws.root / path, (time.time() + 100, time.time() + 100))
    again, sha_again = await build_artifact(ws)
    assert (again, sha_again) == (archive, sha)
