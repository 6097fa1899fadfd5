"""Reproducible zip archives: the same tree always gives the same bytes.

Entries are sorted, carry one fixed timestamp, and have fixed permissions (0644, or 0755 when the
file had any execute bit, which Lambda needs for `bootstrap` and middlewares). Files that vary from
one build to the next or from one machine to another (bytecode caches, pip's install records) are
left out; only a layer's own bytecode, compiled hash-based for its target (`bytecode.py`), is kept
when asked for.
"""

from __future__ import annotations

import os
import stat
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold
_SKIPPED_DIRS = frozenset({"__pycache__"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
# pip's install records: RECORD lists hashes of files that differ between machines (generated
# scripts), direct_url.json holds local paths; importlib.metadata needs none of them.
_SKIPPED_DIST_INFO = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


@dataclass(frozen=True)
class ArchiveInfo:
    """What was written: the number of files and their total size before compression."""

    files: int
    unpacked_bytes: int


def is_skipped(name: PurePosixPath, keep_bytecode: bool = False) -> bool:
    """True for paths that never go into an archive (caches and pip's install records);
    ``keep_bytecode``: `__pycache__/*.pyc` are kept (a tree whose bytecode is reproducible)."""
    cached = name.parent.name in _SKIPPED_DIRS and name.suffix == ".pyc"
    if not (keep_bytecode and cached):
        if any(part in _SKIPPED_DIRS for part in name.parts):
            return True
        if name.suffix in _SKIPPED_SUFFIXES:
            return True
    return name.parent.name.endswith(".dist-info") and name.name in _SKIPPED_DIST_INFO


def epoch_from(env: Mapping[str, str]) -> int:
    """The archive's timestamp: SOURCE_DATE_EPOCH when set, else 1980-01-01 (zip's earliest)."""
    raw = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return DEFAULT_EPOCH
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"SOURCE_DATE_EPOCH={raw!r} is not a number of seconds") from None
    return max(value, DEFAULT_EPOCH)


def tree_files(root: Path, keep_bytecode: bool = False) -> Iterator[tuple[PurePosixPath, Path]]:
    """Every regular file under ``root`` as (name in the archive, path), sorted by name.

    Symbolic links to files are stored as the file they point to; links to folders are not
    followed, so a link cannot pull a folder from outside ``root`` into the archive.
    """
    found: list[tuple[PurePosixPath, Path]] = []
    for folder, dirs, files in os.walk(root):
        if not keep_bytecode:
            dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        for file in files:
            path = Path(folder, file)
            name = PurePosixPath(path.relative_to(root).as_posix())
            if not is_skipped(name, keep_bytecode) and path.is_file():
                found.append((name, path))
    found.sort(key=lambda item: str(item[0]))
    return iter(found)


def write_zip(
    root: Path, out: Path, epoch: int = DEFAULT_EPOCH, keep_bytecode: bool = False
) -> ArchiveInfo:
    """Write every file under ``root`` into the zip ``out`` (atomically: replaced when complete)."""
    date_time = time.gmtime(epoch)[:6]
    partial = out.with_name(f".{out.name}.partial")
    count = total = 0
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for name, path in tree_files(root, keep_bytecode):
                data = path.read_bytes()
                info = zipfile.ZipInfo(str(name), date_time)
                info.create_system = 3  # Unix, so that the permissions below are honoured
                executable = path.stat().st_mode & 0o111
                info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, data, compresslevel=9)
                count += 1
                total += len(data)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return ArchiveInfo(files=count, unpacked_bytes=total)
