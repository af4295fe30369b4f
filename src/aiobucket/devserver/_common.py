"""Shared pieces of ``aiobucket serve``: which buckets are served, key checks, HTTP helpers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

from aiohttp import web

from .. import config
from ..bucket import NAME, Bucket
from ..errors import (
    BucketError,
    InvalidArgument,
    ObjectNotFound,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from ..keys import validate_key
from ..providers.base import KiB
from ..providers.local import is_bucket, root_of
from ..types import BucketConfig, ObjectAttrs

CHUNK = 256 * KiB
_BAD_SEGMENTS = re.compile(r"(?:^|[/\\])\.{1,2}(?:[/\\]|$)")


@dataclass(frozen=True, slots=True)
class Served:
    """One local bucket as the server sees it."""

    name: str
    root: Path
    key_prefix: str
    public: bool
    public_reason: str
    versioned: bool

    @property
    def exists(self) -> bool:
        """Whether the bucket has been used at all (so looking at it need not create it)."""
        return is_bucket(self.root)

    def bucket(self, *, for_version: bool = False) -> Bucket:
        """The bucket, declared as the server understands it.

        Reads of a given version go through a versioned declaration (reads do not
        depend on it); writes use the declaration from the flags/config, so the
        server never changes whether a bucket keeps history.
        """
        return Bucket(self.name, BucketConfig(versioned=self.versioned or for_version, public=self.public))


class Registry:
    """Decides which buckets are served, and whether each is public.

    Without names, every bucket whose configuration (or the default) puts it on
    the local backend is served, including ones created after startup; with
    names, only those.
    """

    def __init__(self, names: Iterable[str] = (), *, public: Iterable[str] = (), versioned: bool = False):
        self.names = tuple(names)
        self.public = frozenset(public)
        self.versioned = versioned

    def get(self, name: str) -> Served | None:
        if not NAME.fullmatch(name) or (self.names and name not in self.names):
            return None
        settings = config.resolve(name)
        if settings.scheme != "file":
            return None
        root = root_of(settings.url)
        opts = settings.options
        # The CLI's rule (config.public_reason), plus this command's --public.
        reason = "--public" if name in self.public else config.public_reason(name, settings)
        return Served(
            name=name,
            root=root,
            key_prefix=settings.key_prefix,
            public=bool(reason),
            public_reason=reason,
            versioned=self.versioned or opts.get("versioned") is True,
        )

    def all(self) -> list[Served]:
        """The buckets to list on the index page."""
        if self.names:
            found = [s for s in map(self.get, self.names) if s is not None]
            return sorted(found, key=lambda s: s.name)
        names = {n for n, s in config.configured_buckets().items() if s.scheme == "file"}
        # "<name>" is no valid bucket name: it shows where an unlisted bucket would live.
        default = config.resolve("<name>")
        if default.scheme == "file":
            top = root_of(default.url).parent
            if top.is_dir():
                names |= {d.name for d in top.iterdir() if is_bucket(d)}
        return sorted((s for s in map(self.get, names) if s is not None), key=lambda s: s.name)


def check_key(key: str) -> str:
    """The server's key rule: the library's, plus no '.'/'..' segment by '\\' either.

    Keys never become paths on the local backend, so this is defence in depth:
    nothing that looks like a traversal is accepted at all.
    """
    if _BAD_SEGMENTS.search(key) or key.startswith("\\"):
        raise InvalidArgument(f"key {key!r} looks like a path traversal")
    return validate_key(key)


def error_response(exc: BucketError) -> web.Response:
    status = 500
    if isinstance(exc, ObjectNotFound):
        status = 404
    elif isinstance(exc, PreconditionFailed):
        status = 412
    elif isinstance(exc, RangeNotSatisfiable):
        status = 416
    elif isinstance(exc, InvalidArgument):
        status = 400
    elif isinstance(exc, PermissionDenied):
        status = 403
    return web.Response(status=status, text=f"{exc}\n")


def object_headers(attrs: ObjectAttrs) -> dict[str, str]:
    headers = {
        "ETag": f'"{attrs.etag}"',
        "Content-Type": attrs.content_type,
        "Accept-Ranges": "bytes",
    }
    if attrs.last_modified is not None:
        headers["Last-Modified"] = format_datetime(attrs.last_modified, usegmt=True)
    if attrs.cache_control:
        headers["Cache-Control"] = attrs.cache_control
    if attrs.content_disposition:
        headers["Content-Disposition"] = attrs.content_disposition
    if attrs.content_encoding:  # served as stored
        headers["Content-Encoding"] = attrs.content_encoding
    return headers
