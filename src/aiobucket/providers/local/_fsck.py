"""Debris of interrupted writes: orphan journals, the open-time sweep, and fsck.

A process that dies between placing a blob and committing its row, or between
committing and unlinking the blobs it replaced, leaves blobs that no row names.
They are invisible, but they take space. Two tools reclaim them:

* Journals. Before a blob can become such an orphan, its name is appended to
  ``tmp/<id>.orphans``: before a new blob is renamed into place, and inside the
  transaction that drops rows, before its COMMIT. The operation removes the
  journal when it is over. Journals are not fsynced: they survive a killed
  process, not a lost machine (fsck covers that).
* The sweep, when a provider first opens the index: every tmp file or journal
  untouched for ``MAX_AGE`` belongs to a dead process. A journal's blobs are
  unlinked if no row names them, under the index's write lock, and the commit
  path checks its blob still exists under the same lock, so a sweep can never
  leave a row without its blob.
* :func:`fsck` compares the whole index with the whole blob tree, under the write
  lock: rows whose blob is missing, blobs whose size disagrees with their row,
  blobs no row names, and leftover tmp files. It repairs what it safely can.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import InvalidArgument
from . import _index
from ._index import INDEX

__all__ = ["MAX_AGE", "FsckReport", "Journal", "fsck", "sweep"]

MAX_AGE = 3600.0
"""Seconds a tmp file or journal may sit untouched before it counts as abandoned."""
JOURNAL = ".orphans"
_BLOB = re.compile(r"[0-9a-f]{2}/[0-9a-f]{32}")


class Journal:
    """``tmp/<id>.orphans``: blobs that would be orphaned if this process died now."""

    __slots__ = ("_made", "path")

    def __init__(self, tmpdir: Path) -> None:
        self.path = tmpdir / f"{secrets.token_hex(16)}{JOURNAL}"
        self._made = False

    def note(self, blobs: Iterable[str]) -> None:
        lines = "".join(f"{b}\n" for b in blobs)
        if lines:
            with open(self.path, "a", encoding="ascii") as f:
                f.write(lines)
            self._made = True

    def remove(self) -> None:
        if self._made:
            with contextlib.suppress(OSError):
                self.path.unlink()


def _journal_blobs(path: Path) -> list[str]:
    # Names only as the provider writes them: a damaged journal cannot point outside blobs/.
    return [n for n in path.read_text("ascii", errors="replace").split() if _BLOB.fullmatch(n)]


def _referenced(db: sqlite3.Connection, blob: str) -> bool:
    return db.execute("SELECT 1 FROM versions WHERE blob = ? LIMIT 1", (blob,)).fetchone() is not None


def sweep(root: Path, db: sqlite3.Connection, max_age: float = MAX_AGE) -> None:
    """Best effort, at open: finish the cleanup of operations whose process died."""
    cutoff = time.time() - max_age
    blobs = root / "blobs"
    with contextlib.suppress(OSError), os.scandir(root / "tmp") as it:
        for entry in it:
            with contextlib.suppress(OSError, sqlite3.Error):
                if entry.stat().st_mtime >= cutoff:
                    continue  # may belong to an operation in progress in another process
                if entry.name.endswith(JOURNAL):
                    names = _journal_blobs(Path(entry.path))

                    def reclaim(db: sqlite3.Connection, names: list[str] = names) -> None:
                        for name in names:
                            if not _referenced(db, name):
                                with contextlib.suppress(FileNotFoundError):
                                    os.unlink(blobs / name)

                    _index.transaction(db, reclaim)
                os.unlink(entry.path)


@dataclass
class FsckReport:
    """What :func:`fsck` found (and, unless ``dry_run``, repaired)."""

    root: Path
    dry_run: bool
    missing_blobs: list[tuple[str, str | None, str]] = field(default_factory=list)
    """(key, version, blob) of rows whose blob file is gone: repaired by dropping the row."""
    size_mismatches: list[tuple[str, str | None, str, int, int]] = field(default_factory=list)
    """(key, version, blob, size in the index, size on disk): reported, never repaired."""
    orphan_blobs: list[tuple[str, int]] = field(default_factory=list)
    """(blob, bytes) that no row names: repaired by unlinking."""
    leftover_tmp: list[tuple[str, int]] = field(default_factory=list)
    """(tmp file or journal, bytes) of dead operations: repaired by unlinking."""
    in_progress: list[str] = field(default_factory=list)
    """Debris younger than ``min_age`` or named by a live journal: left alone."""

    @property
    def repairable(self) -> int:
        return len(self.missing_blobs) + len(self.orphan_blobs) + len(self.leftover_tmp)

    @property
    def consistent(self) -> bool:
        """True when nothing is wrong now (after the repair, unless a dry run)."""
        return not self.size_mismatches and (not self.dry_run or self.repairable == 0)

    def lines(self) -> list[str]:
        verb = "found" if self.dry_run else "removed"
        out = [
            f"{verb} index row without its blob: key {k!r} version {v!r} (blob {b})"
            for k, v, b in self.missing_blobs
        ]
        out += [
            f"size mismatch (not repaired): key {k!r} version {v!r} blob {b}: "
            f"the index says {i} bytes, the file has {n}"
            for k, v, b, i, n in self.size_mismatches
        ]
        out += [f"{verb} unreferenced blob {b} ({n} bytes)" for b, n in self.orphan_blobs]
        out += [f"{verb} leftover tmp file {t} ({n} bytes)" for t, n in self.leftover_tmp]
        out += [f"skipped {p}: it may belong to a write in progress" for p in self.in_progress]
        freed = sum(n for _, n in self.orphan_blobs) + sum(n for _, n in self.leftover_tmp)
        summary = "dry run: " if self.dry_run else ""
        summary += f"{self.repairable} problem(s) {'found' if self.dry_run else 'repaired'}"
        summary += f" ({freed} bytes {'reclaimable' if self.dry_run else 'reclaimed'})"
        if self.size_mismatches:
            summary += f", {len(self.size_mismatches)} size mismatch(es) left"
        return [*out, summary]


def fsck(root: Path, *, dry_run: bool = False, min_age: float = MAX_AGE) -> FsckReport:
    """Check the bucket at ``root``: index rows against blob files, and tmp/ debris.

    Runs under the index's write lock, so no commit interleaves with it (writers
    wait). Unless ``dry_run``, it drops rows whose blob is gone (the bytes are lost;
    a versioned key's older version may become current), and unlinks blobs no row
    names and tmp files and journals, when they are older than ``min_age`` seconds
    and no live journal names them. Size mismatches are only reported.
    """
    path = root / INDEX
    if not path.is_file():
        raise InvalidArgument(f"no local bucket at {str(root)!r}: it has no {INDEX}")
    db = _index.open_existing(path)
    try:
        return _index.transaction(db, lambda db: _check(db, root, dry_run, min_age))
    finally:
        db.close()


def _check(db: sqlite3.Connection, root: Path, dry_run: bool, min_age: float) -> FsckReport:
    report = FsckReport(root, dry_run)
    cutoff = time.time() - min_age
    live: set[str] = set()  # blobs named by journals of operations that may still run
    tmp_debris: list[tuple[Path, int]] = []
    with contextlib.suppress(FileNotFoundError), os.scandir(root / "tmp") as it:
        for entry in it:
            st = entry.stat()
            if st.st_mtime >= cutoff:
                report.in_progress.append(f"tmp/{entry.name}")
                if entry.name.endswith(JOURNAL):
                    live.update(_journal_blobs(Path(entry.path)))
            else:
                tmp_debris.append((Path(entry.path), st.st_size))
                report.leftover_tmp.append((f"tmp/{entry.name}", st.st_size))

    files: dict[str, os.stat_result] = {}
    with contextlib.suppress(FileNotFoundError), os.scandir(root / "blobs") as fanout:
        for d in fanout:
            if d.is_dir(follow_symlinks=False):
                with os.scandir(d.path) as it:
                    files.update((f"{d.name}/{f.name}", f.stat()) for f in it)

    referenced: set[str] = set()
    drop: list[int] = []
    for row in db.execute("SELECT seq, key, version, size, blob FROM versions ORDER BY key, seq"):
        referenced.add(row["blob"])
        found = files.get(row["blob"])
        if found is None:
            report.missing_blobs.append((row["key"], row["version"], row["blob"]))
            drop.append(row["seq"])
        elif found.st_size != row["size"]:
            report.size_mismatches.append(
                (row["key"], row["version"], row["blob"], row["size"], found.st_size)
            )
    for name, blob in sorted(files.items()):
        if name in referenced:
            continue
        if name in live or blob.st_mtime >= cutoff:
            report.in_progress.append(f"blobs/{name}")
        else:
            report.orphan_blobs.append((name, blob.st_size))

    if not dry_run:
        for seq in drop:
            db.execute("DELETE FROM versions WHERE seq = ?", (seq,))
        db.execute("DELETE FROM deleted WHERE key NOT IN (SELECT key FROM versions)")
        for name, _ in report.orphan_blobs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(root / "blobs" / name)
        for p, _ in tmp_debris:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    return report
