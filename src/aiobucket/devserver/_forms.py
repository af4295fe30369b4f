"""``aiobucket serve``: browser upload forms (``POST /upload/{bucket}``) and signed-PUT extras.

A form is ``multipart/form-data``: the fields the library signed (``key``,
``Content-Type`` when fixed, ``policy``, ``signature``), a ``Content-Type`` field
when the policy only fixes a prefix, then the file as the field named ``file``.
As on S3, everything before the file is checked before a byte of it is read:

* the HMAC over the policy, and its expiry (403);
* the ``key`` field equals the policy's stored key, in this bucket (403);
* no field the policy does not allow (403);
* ``Content-Type`` equals the policy's type, or starts with its prefix (403).

The file then streams into ``upload()``, counting bytes: past ``max_size`` the
upload is aborted and the answer is 400; below ``min_size`` at the end, too. The
writer commits only when the block ends without an error, so a refused, cut or
cancelled upload stores nothing, and memory stays at about one part. Fields after
the file are ignored, as S3 ignores them.
"""

from __future__ import annotations

import functools

import anyio.to_thread
from aiohttp import BodyPartReader, web

from ..errors import BucketError, InvalidArgument
from ..providers.base import KiB
from ..providers.local import _signing
from ..types import UploadAttrs
from ._common import CHUNK, Served, check_key, error_response

__all__ = ["add_routes", "check_signed_put"]

MAX_FIELD = 64 * KiB
"""Largest non-file field: a policy is well under 4 KiB."""
MAX_FIELDS = 32
ALLOWED = frozenset({"key", "policy", "signature", "content-type"})
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "ETag"}


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", _signing.FORM_PREFIX + "{bucket}", handle_form)


def _reply(status: int, text: str, **headers: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", headers={**_CORS, **headers})


class _Refused(Exception):
    """The file broke the policy's size range: abort the upload, answer 400."""


def check_signed_put(request: web.Request) -> str | None:
    """For a validly signed PUT URL: None when the request meets its signed Content-Type
    and size, else why not (the caller answers 403, as S3 does for a signed header)."""
    q = request.query
    want_type, want_length = q.get("content_type"), q.get("content_length")
    if want_type is not None:
        got = " ".join(request.headers.get("Content-Type", "").split())
        if got != " ".join(want_type.split()):
            return f"the signed URL requires Content-Type: {want_type} (got {got or 'none'})"
    if want_length is not None and str(request.content_length) != want_length:
        return f"the signed URL requires Content-Length: {want_length} (got {request.content_length})"
    return None


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while chunk := await part.read_chunk(8192):
        data += chunk
        if len(data) > MAX_FIELD:
            raise InvalidArgument(f"form field {part.name!r} is larger than {MAX_FIELD} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise InvalidArgument(f"form field {part.name!r} is not UTF-8") from None


async def handle_form(request: web.Request) -> web.StreamResponse:
    from ._objects import REGISTRY

    if request.method == "OPTIONS":  # a FormData POST needs no preflight; answer one anyway
        return web.Response(
            status=204,
            headers={
                **_CORS,
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Max-Age": "600",
            },
        )
    if request.method != "POST":
        raise web.HTTPMethodNotAllowed(request.method, ["POST", "OPTIONS"])
    served = request.app[REGISTRY].get(request.match_info["bucket"])
    if served is None:
        return _reply(404, f"no such bucket here: {request.match_info['bucket']!r}")
    if request.content_type != "multipart/form-data":
        return _reply(400, "an upload form is POSTed as multipart/form-data")
    try:
        return await _receive(request, served)
    except InvalidArgument as exc:
        return _reply(400, f"bad form: {exc}")
    except BucketError as exc:
        resp = error_response(exc)
        resp.headers.update(_CORS)
        return resp


async def _receive(request: web.Request, served: Served) -> web.Response:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            return _reply(400, "the form has no 'file' field (it must come last)")
        if not isinstance(part, BodyPartReader) or not part.name:
            return _reply(400, "every form part needs a name")
        name = part.name.lower()
        if name == "file":
            break
        if name in fields or len(fields) >= MAX_FIELDS:
            return _reply(400, f"form field {part.name!r} is repeated, or there are too many fields")
        fields[name] = await _read_field(part)

    load = functools.partial(_signing.load_key, served.root, create=False)
    try:
        secret = await anyio.to_thread.run_sync(load)
    except OSError as exc:
        return _reply(403, f"access denied: cannot read the bucket's signing key: {exc}")
    if secret is None:
        return _reply(403, "access denied: this bucket has never signed a form")
    policy, why = _signing.verify_form(secret, fields.get("policy"), fields.get("signature"))
    if policy is None:
        return _reply(403, f"access denied: {why}")
    denied = _check_fields(policy, fields, served.name)
    if denied is not None:
        return _reply(403, f"access denied: {denied}")
    stored: str = policy["key"]
    if not stored.startswith(served.key_prefix) or stored == served.key_prefix:
        return _reply(403, "access denied: the key is outside this bucket's key_prefix")
    key = check_key(stored[len(served.key_prefix) :])
    content_type = fields.get("content-type") or policy["content_type"]
    attrs = UploadAttrs(content_type=content_type, metadata=policy["metadata"])
    low, high = policy["min_size"], policy["max_size"]
    size = 0
    try:
        async with served.bucket().upload(key, attrs=attrs) as w:
            while chunk := await part.read_chunk(CHUNK):
                size += len(chunk)
                if high is not None and size > high:
                    raise _Refused(f"EntityTooLarge: the file is over max_size ({high} bytes)")
                await w.write(chunk)
            if size < low:
                raise _Refused(f"EntityTooSmall: the file is {size} bytes, under min_size ({low} bytes)")
    except _Refused as exc:
        return _reply(400, f"{exc}; nothing was stored")
    except ConnectionResetError:  # the browser went away; the block aborted the upload
        return _reply(400, "the upload was cut off; nothing was stored")
    done = await w.close()  # committed on leaving the block; this returns the same attrs
    return _reply(204, "", ETag=f'"{done.etag}"')


def _check_fields(policy: dict[str, object], fields: dict[str, str], bucket: str) -> str | None:
    """Why the form's fields break the signed policy, or None."""
    if policy.get("bucket") != bucket:
        return "the form was signed for another bucket"
    if fields.get("key") != policy.get("key"):
        return "the key field does not match the policy"
    extra = sorted(set(fields) - ALLOWED)
    if extra:
        return f"the policy does not allow the fields {extra}"
    got = fields.get("content-type")
    exact, prefix = policy.get("content_type"), policy.get("content_type_prefix")
    if isinstance(exact, str) and got != exact:
        return f"the policy requires Content-Type: {exact} (got {got or 'none'})"
    if isinstance(prefix, str) and not (got and got.startswith(prefix)):
        return f"the policy requires a Content-Type starting with {prefix!r} (got {got or 'none'})"
    return None
