"""Downloaded plugin archives: checksum verification and safe unpacking."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from client._errors import IntegrityError, UnsafeArchiveError

__all__ = ["DEFAULT_MAX_UNPACKED_BYTES", "Artifact", "safe_unpack", "verified_artifact"]

# A plugin archive holds sources without node_modules: a few hundred kB. The cap only
# stops a gzip bomb from filling the disk.
DEFAULT_MAX_UNPACKED_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Artifact:
    """A job's plugin archive (tar.gz) with its verified hex sha256."""

    data: bytes
    sha256: str


def verified_artifact(data: bytes, *, sha256: str, total_size: int) -> Artifact:
    """Returns the archive if it matches the announced sha256 and size.

    Raises:
        IntegrityError: the checksum is missing or differs, or the size differs.
    """
    if len(data) != total_size:
        raise IntegrityError(
            f"archive is {len(data)} bytes, the server announced {total_size}",
            reason="SIZE_MISMATCH",
        )
    if not sha256:
        raise IntegrityError("the server sent no sha256 for the archive", reason="NO_CHECKSUM")
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256.lower():
        raise IntegrityError(f"archive sha256 is {actual}, the server announced {sha256}")
    return Artifact(data=data, sha256=actual)


def safe_unpack(
    data: bytes, directory: Path, *, max_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
) -> Path:
    """Unpacks a tar.gz into ``directory`` and returns the plugin folder.

    Only regular files and directories with relative paths inside the archive are
    accepted; every member is checked before anything is written, then extracted with
    tarfile's ``data`` filter as a second line of defence. The archive is extracted into
    a temporary folder inside ``directory`` and its top-level entries are moved into
    place, so a rejected or broken archive leaves nothing behind.

    Returns:
        ``directory/<top>`` when the archive has a single top-level folder, else
        ``directory``.

    Raises:
        UnsafeArchiveError: an absolute path, a ``..`` component, a link, a device, or
            more than ``max_bytes`` of content.
        IntegrityError: the data is not a readable tar.gz.
        FileExistsError: a top-level entry already exists in ``directory``.

    Blocking (file I/O): run it in a thread from async code.
    """
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise IntegrityError(f"unreadable archive: {error}", reason="BAD_ARCHIVE") from error
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
            raise IntegrityError(f"unreadable archive: {error}", reason="BAD_ARCHIVE") from error
        tops = _check_members(members, max_bytes)
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".auton8n-") as tmp:
            try:
                tar.extractall(tmp, filter="data")
            except tarfile.FilterError as error:
                raise UnsafeArchiveError(f"unsafe archive member: {error}") from error
            existing = sorted(top for top in tops if (directory / top).exists())
            if existing:
                raise FileExistsError(f"{directory / existing[0]} already exists")
            for top in tops:
                os.replace(Path(tmp, top), directory / top)
    if len(tops) == 1 and (directory / next(iter(tops))).is_dir():
        return directory / next(iter(tops))
    return directory


def _check_members(members: list[tarfile.TarInfo], max_bytes: int) -> set[str]:
    """Rejects anything but relative regular files and folders; returns top-level names."""
    tops: set[str] = set()
    total = 0
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or member.name.startswith(("/", "\\")):
            raise UnsafeArchiveError(f"absolute path in archive: {member.name!r}")
        if ".." in path.parts:
            raise UnsafeArchiveError(f"'..' in archive path: {member.name!r}")
        if not (member.isfile() or member.isdir()):
            kind = "link" if member.issym() or member.islnk() else "special file"
            raise UnsafeArchiveError(f"{kind} in archive: {member.name!r}")
        total += member.size
        if total > max_bytes:
            raise UnsafeArchiveError(f"archive unpacks to more than {max_bytes} bytes")
        if path.parts:
            tops.add(path.parts[0])
    if not tops:
        raise UnsafeArchiveError("archive is empty")
    return tops
