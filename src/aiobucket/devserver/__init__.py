"""``aiobucket serve``: a local dev server for local-backend buckets, with a bucket browser.

It makes the URLs the library hands out for ``file://`` buckets work:
``signed_download_url()`` / ``signed_upload_url()`` (HMAC-signed, with expiry),
``signed_upload_form()`` (``POST /upload/{bucket}``, see ``_forms``) and
``public_url()`` for public buckets. Objects are served at
``/o/{bucket}/{stored key}`` with GET, HEAD (Range, ETag, ...), PUT and CORS; the
bucket browser is at ``/``. It binds 127.0.0.1:8787 by default.

This module only holds the command line; aiohttp (``pip install 'aiobucket[serve]'``)
is imported when the command runs, so the rest of the CLI does not need it.
"""

from __future__ import annotations

import argparse

from ..errors import InvalidArgument

__all__ = ["DESCRIPTION", "HELP", "add_arguments", "run"]

HELP = "serve local buckets over HTTP, with a bucket browser (dev only)"

DESCRIPTION = """\
Serve local-backend (file://) buckets over HTTP on 127.0.0.1, so the URLs the
library returns for them work, and browse them at http://HOST:PORT/.

Which buckets: the named ones; with none, every bucket that lives on the local
backend (configured file:// buckets, buckets under the default ./.aiobucket,
and ones created later).

Objects: /o/BUCKET/KEY (KEY includes the bucket's key_prefix, as in
public_url()). GET and HEAD (Range, ETag, Last-Modified), PUT, and CORS.
A URL needs a valid signature from signed_download_url() / signed_upload_url()
(403 when expired or tampered with), except GET and HEAD on a public bucket.

Upload forms: POST /upload/BUCKET (multipart/form-data) with the fields of
signed_upload_form(), then the file. The signed policy is checked before the
file is read (403: expired, tampered, other fields or Content-Type); the file
streams into the bucket and is refused with 400, storing nothing, once it
passes max_size (or ends under min_size).

The server cannot see the code's BucketConfig, so a bucket is public when
--public names it, its configuration has public_base_url or `public = true`,
or code that declares it BucketConfig(public=True) has used it (the local
provider then leaves a `public` marker file in the bucket's root).

The library signs URLs for the bucket option dev_server_url, else
$AIOBUCKET_DEV_SERVER, else http://127.0.0.1:8787: set it when you use
another port."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("buckets", nargs="*", metavar="bucket", help="buckets to serve (default: all local ones)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0 picks a free one)")
    p.add_argument(
        "--public",
        action="append",
        default=[],
        metavar="BUCKET",
        help="serve this bucket's objects without a signature (GET/HEAD); repeatable",
    )
    p.add_argument(
        "--versioned",
        action="store_true",
        help="treat buckets as declared BucketConfig(versioned=True) "
        "(or set `versioned = true` in the config)",
    )


async def run(args: argparse.Namespace) -> int:
    try:
        from ._objects import serve
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] in ("aiohttp", "multidict", "yarl"):
            raise InvalidArgument(
                f"aiobucket serve needs aiohttp ({exc.name}); install 'aiobucket[serve]'"
            ) from exc
        raise
    if not 0 <= args.port <= 65535:
        raise InvalidArgument(f"--port must be 0..65535, got {args.port}")
    return await serve(args.host, args.port, list(args.buckets), public=args.public, versioned=args.versioned)
