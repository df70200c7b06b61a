"""The downloadable artifact: a deterministic tar.gz of the plugin's sources.

Same sources -> byte-identical archive -> same sha256: entries sorted, directories
included, mtime 0, uid/gid 0 with empty owner names, fixed modes, a gzip header without
name or time. Only what ``Workspace.read_sources`` returns goes in (src/**, package.json,
README.md, configs), so node_modules, dist, caches, reports and symlinks never do.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping

from server.pipeline.workspace import Workspace

__all__ = ["archive_folder_name", "build_archive", "build_artifact"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def archive_folder_name(files: Mapping[str, str]) -> str:
    """The top folder: the package name without its scope (``@acme/plugin-time`` ->
    ``plugin-time``); ``plugin`` when package.json is missing or unreadable."""
    try:
        name = str(json.loads(files.get("package.json", "")).get("name", ""))
    except (ValueError, AttributeError):
        name = ""
    name = _UNSAFE.sub("-", name.rsplit("/", 1)[-1]).strip(".-")
    return name or "plugin"


def build_archive(files: Mapping[str, str], folder: str) -> tuple[bytes, str]:
    """Pure: (tar.gz bytes, sha256 hex) of ``files`` under ``folder/``."""
    directories: set[str] = {folder}
    for path in files:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            directories.add(f"{folder}/{'/'.join(parts[:i])}")
    entries: list[tuple[str, bytes | None]] = [(d, None) for d in directories]
    entries += [(f"{folder}/{path}", content.encode("utf-8")) for path, content in files.items()]
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(entries):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(tar_buffer.getvalue())
    archive = out.getvalue()
    return archive, hashlib.sha256(archive).hexdigest()


async def build_artifact(workspace: Workspace) -> tuple[bytes, str]:
    """(tar.gz bytes, sha256 hex) of the workspace's sources, top folder named after
    the package (e.g. ``plugin-time/``). Compression runs in a thread."""
    files = await workspace.read_sources()
    return await asyncio.to_thread(build_archive, files, archive_folder_name(files))
