"""The ``aiobucket`` command: ls, cp, cat, rm, stat, url, buckets, infra, doctor.

It uses the library's configuration (``AIOBUCKET_CONFIG``; with none, buckets
live under ``./.aiobucket``). Objects are named ``BUCKET:KEY``; anything else is
a local path, and ``-`` is stdin or stdout. Errors print one line,
``aiobucket: error: ...``, and exit 2 for bad usage, 1 for everything else.

A misspelt bucket name never makes a bucket: a bucket exists when the
configuration names it or, on the local backend, when its directory holds a
bucket. Anything else is "no such bucket" with the list of those that exist,
and ``cp`` makes a new one only when given ``--create``.

Subcommands live in :data:`COMMANDS`; adding one is one line::

    COMMANDS["serve"] = Command("serve local buckets over HTTP", add_arguments, run)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import json
import os
import posixpath
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import anyio

from .. import __version__, _runtime, config, devserver
from ..bucket import NAME, Bucket
from ..errors import BucketError, InvalidArgument, ObjectNotFound
from ..providers.base import MiB
from ..providers.local import is_bucket, root_of
from ..types import BucketConfig, ObjectAttrs, Preconditions, Query, UploadAttrs
from . import _doctor, _fsck
from ._progress import progress

__all__ = ["COMMANDS", "Command", "CommandError", "UsageError", "main"]

CHUNK = MiB
_REMOTE = re.compile(rf"({NAME.pattern}):(.*)", re.DOTALL)


class UsageError(Exception):
    """The command line is wrong: exit status 2."""


class CommandError(Exception):
    """The command cannot do what was asked (no such bucket, no such folder): exit status 1."""


@dataclass(frozen=True, slots=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | Awaitable[int]]
    """Returns the exit status; a coroutine runs under asyncio, then ``aiobucket.aclose()``."""
    description: str | None = None


# -- locations ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Remote:
    bucket: str
    key: str


def location(text: str) -> Remote | str:
    """``bucket:key`` is an object; anything else (``./a:b``, ``-``) is a local path."""
    m = _REMOTE.fullmatch(text)
    return Remote(m[1], m[2]) if m else text


def remote(text: str, *, key: bool = True) -> Remote:
    loc = location(text)
    if not isinstance(loc, Remote) or (key and not loc.key):
        raise UsageError(f"expected BUCKET:KEY, got {text!r}")
    return loc


def bucket(name: str, args: argparse.Namespace, *, write: bool = False) -> Bucket:
    """Bucket ``name`` as the code would declare it, once it is known to exist.

    The CLI cannot see the code's BucketConfig: a bucket counts as public by
    config.public_reason() (the dev server's rule too), and as versioned with
    --versioned or ``versioned = true`` in its config (as for the dev server). A
    bucket that does not exist is an error, unless ``write`` and --create make it.
    """
    settings = config.resolve(name)
    if not _exists(name, settings):
        known = ", ".join(r["name"] for r in _bucket_table()[0]) or "none yet"
        if not write:
            raise CommandError(f"no such bucket {name!r} (buckets: {known}; see 'aiobucket buckets')")
        if not getattr(args, "create", False):
            raise CommandError(
                f"no such bucket {name!r} (buckets: {known}); pass --create to make a new bucket"
            )
    public = bool(config.public_reason(name, settings))
    versioned = getattr(args, "versioned", False) or settings.options.get("versioned") is True
    return Bucket(name, BucketConfig(versioned=versioned, public=public))


def _exists(name: str, settings: config.BucketSettings) -> bool:
    """Named in the configuration, or a bucket on disk. A bucket that lives elsewhere by the
    default (s3://, gs://) cannot be checked without a request: the backend answers."""
    if name in config.configured_buckets():
        return True
    return is_bucket(root_of(settings.url)) if settings.scheme == "file" else True


def _versioned_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--versioned",
        action="store_true",
        help="treat buckets as declared with BucketConfig(versioned=True) (needed for --version)",
    )


def _version_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--version", dest="object_version", metavar="ID", help="a version of the object")


def _versioned(args: argparse.Namespace) -> None:
    if getattr(args, "object_version", None):
        args.versioned = True


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        _out("  ".join(cells).rstrip())


# -- ls, buckets ----------------------------------------------------------------


def _ls_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bucket", nargs="?", help="a bucket (or BUCKET:PREFIX); none lists the buckets")
    p.add_argument("prefix", nargs="?", default=None, help="only keys starting with this")
    p.add_argument("-r", "--recursive", action="store_true", help="every key, not folders by '/'")
    p.add_argument("--versions", action="store_true", help="every version (versioned buckets)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    _versioned_option(p)


async def _ls(args: argparse.Namespace) -> int:
    if args.bucket is None:
        return _buckets(args)
    loc = location(args.bucket)
    name, prefix = (loc.bucket, loc.key) if isinstance(loc, Remote) else (args.bucket, "")
    if args.prefix is not None:
        if prefix:
            raise UsageError("give the prefix as BUCKET:PREFIX or as a second argument, not both")
        prefix = args.prefix
    if args.versions:
        args.versioned = True
    b = bucket(name, args)
    query = Query(prefix=prefix, delimiter=None if args.recursive else "/")
    items = b.list_versions(query) if args.versions else b.list(query)
    async for err, entry in items:
        if err is not None:
            raise err
        assert entry is not None
        if args.json:
            _out(json.dumps(entry.to_json()))
        elif entry.is_prefix:
            _out(f"{'DIR':>12}  {'':19}  {entry.name}")
        else:
            when = entry.last_modified.strftime("%Y-%m-%d %H:%M:%S") if entry.last_modified else "-"
            version = f"  {entry.version}{'' if entry.is_latest else ' (old)'}" if args.versions else ""
            _out(f"{entry.size:>12}  {when:19}  {entry.name}{version}")
    return 0


def _buckets_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def _bucket_table() -> tuple[list[dict[str, Any]], str]:
    """Configured buckets, buckets found under a local default, and the default itself."""
    rows: list[dict[str, Any]] = []
    configured = config.configured_buckets()
    for name, s in sorted(configured.items()):
        rows.append(
            {
                "name": name,
                "url": s.url,
                "key_prefix": s.key_prefix or None,
                "public_base_url": s.public_base_url,
                "source": "config",
            }
        )
    # "<name>" cannot be a bucket name, so this shows where an unlisted bucket would live.
    default_settings = config.resolve("<name>")
    default = default_settings.url
    root = root_of(default).parent if default_settings.scheme == "file" else None
    if root is not None and root.is_dir():
        rows += [
            {
                "name": d.name,
                "url": config.resolve(d.name).url,
                "key_prefix": None,
                "public_base_url": None,
                "source": "default",
            }
            for d in sorted(root.iterdir())
            if d.name not in configured and NAME.fullmatch(d.name) and is_bucket(d)
        ]
    return rows, default


def _buckets(args: argparse.Namespace) -> int:
    rows, default = _bucket_table()
    if getattr(args, "json", False):
        data = {"config_file": os.environ.get(config.ENV_VAR), "default": default, "buckets": rows}
        _out(json.dumps(data, indent=2))
        return 0
    table = [["NAME", "LOCATION", "NOTES"]]
    for r in rows:
        notes = [f"{k}={r[k]}" for k in ("key_prefix", "public_base_url") if r[k]]
        if r["source"] == "default":
            notes.append("(found under the default location)")
        table.append([r["name"], r["url"], " ".join(notes)])
    table.append(["(default)", default, "where unlisted buckets live"])
    _table(table)
    return 0


# -- cp, cat ----------------------------------------------------------------------


def _cp_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="FILE, BUCKET:KEY or - (stdin)")
    p.add_argument("dst", help="FILE, DIR, BUCKET:KEY, BUCKET: / BUCKET:DIR/ (keeps the name) or - (stdout)")
    p.add_argument("--content-type", help="for uploads (default: guessed from the key)")
    p.add_argument("--create", action="store_true", help="make the destination bucket if it does not exist")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _version_option(p)
    _versioned_option(p)


def _target_key(dst: Remote, src_name: str) -> str:
    if dst.key and not dst.key.endswith("/"):
        return dst.key
    name = posixpath.basename(src_name.replace(os.sep, "/"))
    if not name or src_name == "-":
        raise UsageError(f"name the destination key: {dst.bucket}:KEY")
    return dst.key + name


async def _cp(args: argparse.Namespace) -> int:
    _versioned(args)
    src, dst = location(args.src), location(args.dst)
    if not isinstance(src, Remote) and not isinstance(dst, Remote):
        raise UsageError("one of SRC and DST must be BUCKET:KEY (use cp(1) for local files)")
    if isinstance(src, Remote) and not src.key:
        raise UsageError(f"name the source key: {src.bucket}:KEY")
    if args.object_version and not isinstance(src, Remote):
        raise UsageError("--version applies to a BUCKET:KEY source")
    if args.create and not isinstance(dst, Remote):
        raise UsageError("--create applies to a BUCKET:KEY destination")
    show = not args.quiet
    if not isinstance(src, Remote):
        assert isinstance(dst, Remote)
        attrs = UploadAttrs(content_type=args.content_type)
        key = _target_key(dst, src)
        await upload(src, bucket(dst.bucket, args, write=True), key, attrs, show=show)
    elif not isinstance(dst, Remote):
        await download(bucket(src.bucket, args), src.key, dst, args.object_version, show=show)
    else:
        key = _target_key(dst, src.key)
        source, target = bucket(src.bucket, args), bucket(dst.bucket, args, write=True)
        # The library's copy: on the server where the backend can, else streamed.
        await source.copy(src.key, key, dst_bucket=target, version=args.object_version)
    return 0


def _open_input(path: str) -> tuple[IO[bytes], int | None]:
    if path == "-":
        return sys.stdin.buffer, None
    if os.path.isdir(path):
        raise UsageError(f"{path!r} is a directory")
    f = open(path, "rb")  # noqa: SIM115 - closed by the caller
    st = os.fstat(f.fileno())
    return f, (st.st_size if os.path.isfile(path) else None)


async def upload(path: str, b: Bucket, key: str, attrs: UploadAttrs, *, show: bool) -> ObjectAttrs:
    """Stream a local file (or stdin) into ``b`` with bounded memory."""
    f, total = _open_input(path)
    try:
        with progress(f"{b.name}:{key}", total, show=show) as advance:
            async with b.upload(key, attrs=attrs) as w:
                while chunk := await anyio.to_thread.run_sync(f.read, CHUNK):
                    await w.write(chunk)
                    advance(len(chunk))
            return await w.close()
    finally:
        if f is not sys.stdin.buffer:
            f.close()


def _output_path(dest: str, key: str) -> Path:
    """Where a download goes: ``dest``, or ``dest/<last part of key>`` for a directory.

    The folder must exist: the download is written beside the file, then renamed.
    """
    path = Path(dest)
    if path.is_dir() or dest.endswith(("/", os.sep)):
        path = path / posixpath.basename(key)
    folder = path.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise CommandError(f"cannot write {str(path)!r}: the folder {str(folder) + os.sep!r} {what}")
    return path


async def download(b: Bucket, key: str, dest: str, version: str | None, *, show: bool) -> None:
    """An object to stdout (streamed), or to a local file with ``download_to`` (parallel
    ranges written in place into a temporary file, renamed when complete)."""
    if dest != "-":
        path = _output_path(dest, key)  # a missing folder is named before any request
        attrs = await b.attrs(key, version=version)  # sizes the bar; fails before any file exists
        with progress(key, attrs.size, show=show) as advance:
            await b.download_to(key, path, version=version, on_progress=advance)
        return
    async with b.download(key, version=version) as reader:
        attrs = await reader.attrs()
        out = sys.stdout.buffer
        with progress(key, attrs.size, show=show) as advance:
            async for chunk in reader:
                await anyio.to_thread.run_sync(out.write, chunk)
                advance(len(chunk))
        await anyio.to_thread.run_sync(out.flush)


def _cat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("object", metavar="BUCKET:KEY")
    _version_option(p)
    _versioned_option(p)


async def _cat(args: argparse.Namespace) -> int:
    _versioned(args)
    obj = remote(args.object)
    await download(bucket(obj.bucket, args), obj.key, "-", args.object_version, show=False)
    return 0


# -- rm, stat, url ------------------------------------------------------------------


def _rm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("objects", metavar="BUCKET:KEY", nargs="+", help="with -r: BUCKET:PREFIX")
    p.add_argument("-r", "--recursive", action="store_true", help="every object under each prefix")
    _version_option(p)
    _versioned_option(p)


async def _rm(args: argparse.Namespace) -> int:
    _versioned(args)
    if args.recursive:
        if args.object_version:
            raise UsageError("--version names one object; it cannot go with -r")
        failed = 0
        for t in [remote(o, key=False) for o in args.objects]:
            failed += await _rm_prefix(bucket(t.bucket, args), t.key)
        return 1 if failed else 0
    targets = [remote(o) for o in args.objects]
    buckets = {t.bucket: bucket(t.bucket, args) for t in targets}  # all checked before any removal
    for t in targets:
        await buckets[t.bucket].remove(t.key, version=args.object_version)
    return 0


async def _rm_prefix(b: Bucket, prefix: str) -> int:
    """Remove every object under ``prefix`` in bulk; print each failure; return how many."""

    async def keys() -> AsyncIterator[str]:
        async for err, entry in b.list(Query(prefix=prefix)):
            if err is not None:
                raise err
            assert entry is not None
            yield entry.name

    failed = 0
    async with contextlib.aclosing(b.remove_many(keys())) as results:
        async for err, _key in results:
            if err is not None and not isinstance(err, ObjectNotFound):  # gone already: fine
                _fail(str(err))
                failed += 1
    return failed


def _stat_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("object", metavar="BUCKET:KEY")
    p.add_argument("--json", action="store_true", help="print JSON")
    _version_option(p)
    _versioned_option(p)


async def _stat(args: argparse.Namespace) -> int:
    _versioned(args)
    obj = remote(args.object)
    data = (await bucket(obj.bucket, args).attrs(obj.key, version=args.object_version)).to_json()
    if args.json:
        _out(json.dumps(data, indent=2))
        return 0
    for k, v in data.items():
        shown = "-" if v is None else json.dumps(v) if isinstance(v, dict) else str(v)
        _out(f"{k + ':':<21}{shown}")
    return 0


_URL_HELP = """\
Without --signed: the object's public URL. The CLI cannot see the code's
BucketConfig(public=...), so it treats a bucket as public when its
configuration has a public_base_url or `public = true`, or when code that
declares the local bucket BucketConfig(public=True) has used it, leaving a
marker (the rule `aiobucket serve` follows).
A local bucket without public_base_url gets the dev server's URL.

With --signed get|put: a pre-signed URL to download or upload the object,
valid for --ttl seconds (default 3600, at most 7 days), where the backend can
sign URLs."""


def _url_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("object", metavar="BUCKET:KEY")
    p.add_argument("--signed", choices=("get", "put"), help="a signed download (get) or upload (put) URL")
    p.add_argument("--ttl", type=float, metavar="SECONDS", help="signed URL lifetime (default 3600)")
    p.add_argument(
        "--create-only",
        action="store_true",
        help="with --signed put: a PUT over an existing object is refused",
    )
    _version_option(p)
    _versioned_option(p)


async def _url(args: argparse.Namespace) -> int:
    _versioned(args)
    obj = remote(args.object)
    if args.signed is None and (args.ttl is not None or args.object_version):
        raise UsageError("--ttl and --version need --signed")
    if args.signed == "put" and args.object_version:
        raise UsageError("--version applies to --signed get")
    if args.create_only and args.signed != "put":
        raise UsageError("--create-only applies to --signed put")
    b = bucket(obj.bucket, args)
    if args.signed is None:
        if not b.config.public:
            raise InvalidArgument(
                "no public URL: the bucket is not public; set public_base_url (or, for a local "
                "bucket, public = true) in its configuration, or use --signed get",
                bucket=b.name,
            )
        _out(b.public_url(obj.key))
        return 0
    ttl = 3600.0 if args.ttl is None else args.ttl
    if args.signed == "get":
        _out(await b.signed_download_url(obj.key, ttl=ttl, version=args.object_version))
    else:
        create_only = Preconditions(not_exists=True) if args.create_only else None
        _out(await b.signed_upload_url(obj.key, ttl=ttl, preconditions=create_only))
    return 0


# -- infra ----------------------------------------------------------------------------


def _infra_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="the codebase: each top-level package under it is a service")
    p.add_argument("--format", choices=("json", "iam-aws", "rbac-azure", "mermaid", "cors"), default="json")
    p.add_argument(
        "--origin",
        action="append",
        metavar="ORIGIN",
        help="with --format cors: a page origin allowed to upload, e.g. https://app.example.com "
        "(repeatable; default *)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")


def _infra(args: argparse.Namespace) -> int:
    from .. import infra

    if not os.path.exists(args.path):
        raise UsageError(f"no such file or directory: {args.path!r}")
    manifest = infra.analyse(args.path)
    if args.format == "json":
        _out(json.dumps(infra.to_json(manifest), indent=2))
    else:
        for w in manifest.warnings:
            sys.stderr.write(f"aiobucket: warning: {w}\n")
        if args.format == "iam-aws":
            _out(json.dumps(infra.iam_policies(manifest), indent=2))
        elif args.format == "rbac-azure":
            _out(json.dumps(infra.azure_rbac(manifest), indent=2))
        elif args.format == "cors":
            _out(json.dumps(infra.cors(manifest, args.origin or ["*"]), indent=2))
        else:
            sys.stdout.write(infra.mermaid(manifest))
    return 1 if args.strict and manifest.warnings else 0


# -- the command table and main -------------------------------------------------------

COMMANDS: dict[str, Command] = {
    "ls": Command("list the objects in a bucket (no bucket: list the buckets)", _ls_args, _ls),
    "cp": Command("copy between local files, stdin/stdout and buckets, streaming", _cp_args, _cp),
    "cat": Command("write an object to stdout", _cat_args, _cat),
    "rm": Command("remove objects", _rm_args, _rm),
    "stat": Command("show an object's attributes", _stat_args, _stat),
    "url": Command("print an object's public or signed URL", _url_args, _url, _URL_HELP),
    "buckets": Command("list the configured buckets and where they live", _buckets_args, _buckets),
    "serve": Command(devserver.HELP, devserver.add_arguments, devserver.run, devserver.DESCRIPTION),
    "fsck": Command(_fsck.HELP, _fsck.add_arguments, _fsck.run, _fsck.DESCRIPTION),
    "doctor": Command(_doctor.HELP, _doctor.add_arguments, _doctor.run, _doctor.DESCRIPTION),
    "infra": Command(
        "derive a permissions manifest (JSON, AWS IAM, Azure RBAC, Mermaid) from code, statically",
        _infra_args,
        _infra,
        "Parses every .py file under PATH with ast (nothing is imported) and reports which\n"
        "service (top-level package) uses which bucket with which permissions.",
    ),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"aiobucket: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aiobucket",
        description="Work with aiobucket buckets from the shell. Objects are BUCKET:KEY; "
        "configuration comes from AIOBUCKET_CONFIG (default: local files under ./.aiobucket).",
    )
    parser.add_argument("--version", action="version", version=f"aiobucket {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, cmd in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=cmd.help,
            description=cmd.description or cmd.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_arguments(p)
    return parser


def _fail(message: str) -> None:
    sys.stderr.write(f"aiobucket: error: {message}\n")


async def _closing(run: Coroutine[Any, Any, int]) -> int:
    try:
        return await run
    finally:
        await _runtime.aclose()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``aiobucket`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        result = COMMANDS[args.command].run(args)
        if inspect.iscoroutine(result):
            result = asyncio.run(_closing(result))
        assert isinstance(result, int)
        return result
    except UsageError as exc:
        _fail(f"{exc} (see 'aiobucket {args.command} --help')")
        return 2
    except CommandError as exc:
        _fail(str(exc))
        return 1
    except BucketError as exc:
        _fail(str(exc))
        return 1
    except BrokenPipeError:  # e.g. `aiobucket cat b:k | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc.strerror or exc))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
