"""The local backend's index: one SQLite file that names every object's blob.

Tables::

    versions   one row per (key, version); the newest row (highest seq) of a key is
               its current version unless the key has a delete marker
    deleted    per-key delete markers (versioned buckets)

Invariants: a row is only ever inserted after its blob file is fsynced in place,
and every write is one ``BEGIN IMMEDIATE`` transaction (see :func:`transaction`),
so its checks and its writes are atomic across threads and processes. The schema
is created, and older indexes are migrated, inside such a transaction at open.

Schema versions (``PRAGMA user_version``): 0 is the first release's; 1 adds the
``crc32c`` column (base64, as ObjectAttrs.crc32c). Rows written before it, or by
an older release, have none, and reads of them are simply not checked.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from ...types import ObjectAttrs

T = TypeVar("T")

INDEX = "index.sqlite3"  # the index file; its presence is what makes a directory a bucket

SCHEMA_VERSION = 2  # 2: content_encoding

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- write order: the newest row of a key is current
    key TEXT NOT NULL,
    version TEXT,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    content_type TEXT NOT NULL,
    cache_control TEXT,
    content_disposition TEXT,
    metadata TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    blob TEXT NOT NULL,
    crc32c TEXT,
    content_encoding TEXT
);
CREATE INDEX IF NOT EXISTS versions_by_key ON versions (key ASC, seq DESC);
CREATE TABLE IF NOT EXISTS deleted (key TEXT PRIMARY KEY) WITHOUT ROWID
"""

COLS = (
    "key, version, size, etag, content_type, cache_control, content_disposition,"
    " metadata, last_modified, blob, seq, crc32c, content_encoding"
)
NEWEST = "NOT EXISTS (SELECT 1 FROM versions n WHERE n.key = o.key AND n.seq > o.seq)"
LIVE = "NOT EXISTS (SELECT 1 FROM deleted d WHERE d.key = o.key)"
INSERT = (
    "INSERT INTO versions (key, version, size, etag, content_type, cache_control,"
    " content_disposition, metadata, last_modified, blob, crc32c, content_encoding)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating or migrating) the index. The caller has made the directory."""
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves. The connection may be
    # shared by worker threads; the provider serialises them with a lock.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA busy_timeout = 30000")  # wait for other processes' write transactions
        for attempt in range(100):  # switching to WAL takes a lock the busy handler may not wait for
            try:
                db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                busy = (exc.sqlite_errorcode & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
                if not busy or attempt == 99:
                    raise
                time.sleep(0.05)
        db.execute("PRAGMA synchronous = FULL")  # blobs are fsynced; so is the row naming them
        transaction(db, _create_or_migrate)
    except BaseException:
        db.close()
        raise
    return db


def open_existing(path: Path) -> sqlite3.Connection:
    """Open an index that must exist already, creating and migrating nothing (for fsck)."""
    uri = f"{path.resolve().as_uri()}?mode=rw"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA busy_timeout = 30000")
    return db


def _create_or_migrate(db: sqlite3.Connection) -> None:
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    for statement in _SCHEMA.split(";"):
        db.execute(statement)
    columns = {col["name"] for col in db.execute("PRAGMA table_info(versions)")}
    if "crc32c" not in columns:
        db.execute("ALTER TABLE versions ADD COLUMN crc32c TEXT")  # an index from release 0
    if "content_encoding" not in columns:
        db.execute("ALTER TABLE versions ADD COLUMN content_encoding TEXT")  # an index of schema 1
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def transaction(db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` as one write transaction: all of it commits, or none of it."""
    db.execute("BEGIN IMMEDIATE")  # takes the write lock up front: checks and writes are atomic
    try:
        result = fn(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


def attrs(row: sqlite3.Row) -> ObjectAttrs:
    """A row selected with :data:`COLS` as the object's attributes.

    The etag is the MD5 of the whole object's bytes (for multipart uploads too), so
    it is reported as the object's md5 as well.
    """
    return ObjectAttrs(
        name=row["key"], version=row["version"], size=row["size"], etag=row["etag"],
        content_type=row["content_type"], cache_control=row["cache_control"],
        content_disposition=row["content_disposition"], metadata=json.loads(row["metadata"]),
        last_modified=datetime.fromisoformat(row["last_modified"]), crc32c=row["crc32c"],
        md5=row["etag"], content_encoding=row["content_encoding"],
    )  # fmt: skip


def row_values(a: ObjectAttrs, blob: str) -> tuple[Any, ...]:
    """The values :data:`INSERT` takes for an object stored in ``blob``."""
    assert a.last_modified is not None
    return (
        a.name, a.version, a.size, a.etag, a.content_type, a.cache_control, a.content_disposition,
        json.dumps(dict(a.metadata)), a.last_modified.isoformat(), blob, a.crc32c, a.content_encoding,
    )  # fmt: skip


def find(db: sqlite3.Connection, key: str, version: str | None) -> sqlite3.Row | None:
    """The key's current row (None when absent or deleted), or the row of ``version``."""
    if version is None:
        sql = f"SELECT {COLS} FROM versions o WHERE key = ? AND {LIVE} ORDER BY seq DESC LIMIT 1"
        row: sqlite3.Row | None = db.execute(sql, (key,)).fetchone()
    else:
        sql = f"SELECT {COLS} FROM versions o WHERE key = ? AND version = ?"
        row = db.execute(sql, (key, version)).fetchone()
    return row


def fetch(sql: str, args: dict[str, Any], db: sqlite3.Connection) -> list[Any]:
    return db.execute(sql, args).fetchall()


def list_sql(prefix_end: str | None, versions: bool) -> str:
    """One page of a listing after the cursor (:ck, :cs), in key order, newest first.

    A real upper bound (not "? IS NULL OR ...") so the index range stops at the prefix end.
    The extra column ``latest`` says whether the row is the key's live current version.
    """
    return (
        f"SELECT {COLS}, {NEWEST} AND {LIVE} AS latest FROM versions o"
        " WHERE key >= :ck AND (key > :ck OR seq < :cs)"
        + ("" if prefix_end is None else " AND key < :hi")
        + ("" if versions else f" AND {NEWEST} AND {LIVE}")
        + " ORDER BY key ASC, seq DESC LIMIT :page"
    )


def upper(prefix: str) -> str | None:
    """The least string above every string starting with ``prefix`` (code point order = UTF-8 order)."""
    while prefix:
        nxt = ord(prefix[-1]) + 1
        if nxt <= 0x10FFFF:
            return prefix[:-1] + chr(0xE000 if nxt == 0xD800 else nxt)  # surrogates cannot occur
        prefix = prefix[:-1]
    return None
