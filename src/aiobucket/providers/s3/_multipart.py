"""Multipart uploads and server-side copies on S3.

Invariants:

* Every part carries a checksum the server verifies (``S3Provider.body_hashes``);
  its ETag is kept so a completion whose response was lost can be recognised: the
  object's ETag is then the multipart ETag of our parts (``multipart_etag``).
* An upload of our bytes declares a FULL_OBJECT CRC32C when it starts, and its
  completion sends the whole object's CRC32C, combined from the parts' CRC32Cs in
  part-number order (``crc32c_combine``: parts may be sent concurrently, in any
  order). A server that keeps it returns it on GET/HEAD, so whole downloads of
  the object are verified; servers that do not know the headers ignore them (and
  a wrong body is then refused by the part checksums alone). A copy made of
  UploadPartCopy parts has no bytes of ours to checksum and declares none.
* A completion is retried like any request; after an attempt that may have been
  applied, a 412 (conditional) or NoSuchUpload is resolved against the stored
  object (``S3Provider.resolve``), never reported as a lost race by default.
* A completion or copy may answer 200 and then fail in its body: the whole body is
  checked (``answered``); an <Error> is handled like an error status, an empty or
  truncated body is a retryable failure.
* A refused completion aborts the upload, so nothing is orphaned; ``abort()`` is
  idempotent and a NoSuchUpload answer to it is success.
* A copy is idempotent (retried); a conditional one is resolved like a PUT, with
  the source's ETag as ours when it is a single-part MD5.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from ..._aio import run_to_completion
from ..._checksum import crc32c_combine
from ...errors import BackendError, ObjectChanged
from ...types import ObjectAttrs
from .._http.headers import http_date, precondition_headers, quote_etag, unquote_etag
from .._http.transport import Response
from ..base import CopyOptions, GetOptions, MiB, Part, PutOptions, put_options_from, same_etag
from ._errors import request_ids
from ._fallback import learn
from ._retry import THROTTLED
from ._sigv4 import UNSIGNED_PAYLOAD, quote_path
from ._wire import is_md5, multipart_etag, object_headers, put_attrs, version_of
from ._xml import (
    complete_body,
    error_in_200,
    parse_complete,
    parse_complete_crc32c,
    parse_copy,
    parse_upload_id,
)

if TYPE_CHECKING:
    from ._provider import S3Provider

__all__ = ["Upload", "copy"]


_STATUS_OF = {
    "PreconditionFailed": 412,
    "ConditionalRequestConflict": 409,
    "NoSuchUpload": 404,
    "NoSuchKey": 404,
    "AccessDenied": 403,
}
"""The status an <Error> in a 200 body would have had on its own (error_for and the
lost-response checks read statuses)."""


def answered(result: str) -> Callable[[Response], None]:
    """A ``send`` check for calls that may answer 200 and then fail in the body.

    An <Error> becomes the error answer it stands for (retried or mapped like any
    other); an empty, truncated or foreign body becomes a retryable 500 that may have
    been applied (the server said 200 before it finished).
    """

    def check(resp: Response) -> None:
        problem = error_in_200(resp.body, result)
        if problem is None:
            return
        code, message = problem
        if code:
            resp.status = _STATUS_OF.get(code, 500 if code in THROTTLED else 400)
        else:
            resp.status = 500
        resp.code, resp.message = code, message

    return check


async def xml_body(p: S3Provider, body: bytes) -> tuple[dict[str, str], str]:
    """(headers, payload hash) for a small XML request body: Content-MD5 as for every body."""
    ep = p._ep or await p._endpoint()
    md5 = hashlib.md5(body, usedforsecurity=False).digest()
    headers = {"content-type": "application/xml", "content-md5": base64.b64encode(md5).decode()}
    return headers, hashlib.sha256(body).hexdigest() if ep.signed_payload else UNSIGNED_PAYLOAD


class Upload:
    """One S3 multipart upload: UploadPart / CompleteMultipartUpload / AbortMultipartUpload."""

    def __init__(
        self, provider: S3Provider, key: str, opts: PutOptions, upload_id: str, *, crc32c: bool = True
    ) -> None:
        self._p = provider
        self._key = key
        self._opts = opts
        self.upload_id = upload_id
        self._finished = False
        self._full_crc32c = crc32c
        self._crcs: dict[int, str] = {}
        self._declared = crc32c
        """The upload was started with x-amz-checksum-algorithm: its completion lists the parts' CRC32Cs."""
        """Each part's CRC32C (base64) by part number, as sent."""

    @classmethod
    async def start(cls, p: S3Provider, key: str, opts: PutOptions, *, crc32c: bool = True) -> Upload:
        """``crc32c``: declare a FULL_OBJECT CRC32C (our parts' bytes pass through put_part)."""
        headers = {**object_headers(opts), **p.opt.write}
        kind = p.store.multipart_checksum if crc32c and p.store.checksum_headers else "none"
        if kind != "none":  # composite: the algorithm alone (a checksum of the parts' CRC32Cs)
            headers["x-amz-checksum-algorithm"] = "CRC32C"
        if kind == "full_object":
            headers["x-amz-checksum-type"] = "FULL_OBJECT"
        crc32c = kind == "full_object"
        resp = await p.send("start upload", "POST", key, query=[("uploads", "")], headers=headers)
        if resp.status >= 300:
            raise p.fail(resp, "start upload", key)
        upload = cls(p, key, opts, parse_upload_id(resp.body), crc32c=crc32c)
        upload._declared = kind != "none"
        return upload

    def _query(self, number: int | None = None) -> list[tuple[str, str]]:
        q = [("uploadId", self.upload_id)]
        return q if number is None else [("partNumber", str(number)), *q]

    async def put_part(self, number: int, data: bytes | bytearray | memoryview) -> Part:
        p = self._p
        view = memoryview(data).cast("B")
        checksum, md5_hex, payload_hash = await p.body_hashes(view, whole=False)
        op = f"upload part {number}"
        resp = await p.send(
            op,
            "PUT",
            self._key,
            query=self._query(number),
            headers={**checksum, **p.opt.key} if p.opt.key else checksum,
            body=view,
            payload_hash=payload_hash,
        )
        if resp.status >= 300:
            raise p.fail(resp, op, self._key)
        if "x-amz-checksum-crc32c" in checksum:
            self._crcs[number] = checksum["x-amz-checksum-crc32c"]
        return Part(number, unquote_etag(resp.headers.get("etag")) or md5_hex or "", view.nbytes)

    def _whole_crc32c(self, ordered: list[Part]) -> str | None:
        """The object's CRC32C from its parts', in part-number order; None if one is unknown."""
        if self._p.store.multipart_checksum != "full_object":  # learnt since the start
            return None
        if not self._full_crc32c or any(x.number not in self._crcs for x in ordered):
            return None
        crc = 0  # the CRC32C of no bytes
        for x in ordered:
            part_crc = int.from_bytes(base64.b64decode(self._crcs[x.number]), "big")
            crc = crc32c_combine(crc, part_crc, x.size)
        return base64.b64encode(crc.to_bytes(4, "big")).decode("ascii")

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        p = self._p
        if not parts:
            # S3 refuses an upload without parts: store the empty object instead.
            await self.abort()
            return await p.put(self._key, b"", self._opts)
        ordered = sorted(parts, key=lambda x: x.number)
        pre = self._opts.preconditions
        try:
            # Servers that ignore If-None-Match/If-Match on completion (Ceph RGW
            # 16.2) still refuse outside a race thanks to this check.
            await p.precheck(self._key, pre)
            whole_crc = self._whole_crc32c(ordered)
            started = time.monotonic()
            resp = await self._send_complete(ordered, whole_crc, started)
            if whole_crc is not None and resp.status == 400:
                # Every part's CRC32C was accepted, and the whole one is combined from
                # them: a refusal of the completion is, first of all, a store that keeps
                # composite checksums only (MinIO 2022-09..2025-01 answers InvalidPart or
                # XAmzContentChecksumMismatch, Garage 1.x InvalidDigest). Complete
                # without it, once: nothing was stored, and any other refusal comes again.
                retried = await self._send_complete(ordered, None, started)  # one deadline
                if retried.status < 300:
                    learn(p, f"the store refused a FULL_OBJECT CRC32C at completion ({resp.code})",
                          multipart_checksum="composite")  # fmt: skip
                    whole_crc = None
                resp = retried
            lost = resp.maybe_applied and ((resp.status == 412 and bool(pre)) or resp.code == "NoSuchUpload")
            if lost:
                etag = multipart_etag([x.etag for x in ordered])
                sums = {"crc32c": whole_crc} if whole_crc is not None else None
                attrs = await p.resolve("complete upload", self._key, etag, resp, sums)
                self._finished = True
                return attrs
            if resp.status >= 300:
                if resp.code == "NoSuchUpload":
                    raise BackendError(
                        "complete upload: the multipart upload no longer exists on the server "
                        f"(aborted by someone else, or expired){request_ids(resp)}",
                        key=self._key,
                    )
                raise p.fail(resp, "complete upload", self._key, conditional_write=pre.if_match is not None)
        except Exception:
            # A refused completion leaves the upload open on the server: throw its
            # parts away now so nothing is orphaned.
            with contextlib.suppress(Exception):
                await self.abort()
            raise
        self._finished = True
        etag = parse_complete(resp.body)[0]
        version = resp.headers.get("x-amz-version-id")
        if not etag:  # Ceph RGW 16.2 leaves the ETag out of the response
            etag = (await p.head(self._key, version_of(version))).etag
        size = sum(x.size for x in ordered)
        stored_crc = self._stored_crc32c(resp, whole_crc)
        return put_attrs(
            self._key, self._opts, size, etag, version, http_date(resp.headers.get("date")), crc32c=stored_crc
        )

    async def _send_complete(self, ordered: list[Part], whole_crc: str | None, started: float) -> Response:
        p = self._p
        crcs = self._crcs if self._declared and len(self._crcs) == len(ordered) else None
        body = complete_body([(x.number, x.etag) for x in ordered], crcs)
        headers, payload_hash = await xml_body(p, body)
        headers.update(precondition_headers(self._opts.preconditions))
        headers.update(p.opt.key)
        if whole_crc is not None:
            headers["x-amz-checksum-crc32c"] = whole_crc
            headers["x-amz-checksum-type"] = "FULL_OBJECT"
        return await p.send(
            "complete upload", "POST", self._key, query=self._query(), headers=headers, body=body,
            payload_hash=payload_hash, shield=True, check=answered("CompleteMultipartUploadResult"),
            started=started,
        )  # fmt: skip

    def _stored_crc32c(self, resp: Response, ours: str | None) -> str | None:
        """Our whole-object CRC32C when the completion answer confirms the server stored it
        (SeaweedFS and AWS report it); None when it reports none or another one. A
        server that stored another one fails every whole download of the object with
        IntegrityError: loudly, never silently."""
        reported, kind = parse_complete_crc32c(resp.body)
        reported = reported or resp.headers.get("x-amz-checksum-crc32c", "")
        kind = kind or resp.headers.get("x-amz-checksum-type", "")
        return ours if ours is not None and reported == ours and kind in ("", "FULL_OBJECT") else None

    async def abort(self) -> None:
        if self._finished:
            return
        p = self._p
        resp = await p.send("abort upload", "DELETE", self._key, query=self._query(), shield=True)
        if resp.status >= 300 and resp.code != "NoSuchUpload" and resp.status != 404:
            raise p.fail(resp, "abort upload", self._key)
        self._finished = True


def full_object_sums(attrs: ObjectAttrs) -> dict[str, str]:
    """The full-object checksums an object has, by ObjectAttrs field name: a copy of its
    bytes has the same ones (S3 keeps a copy's checksum algorithm)."""
    named = {"crc32c": attrs.crc32c, "crc32": attrs.crc32, "crc64nvme": attrs.crc64nvme}
    return {name: value for name, value in named.items() if value}


def _copy_source(bucket: str, key: str, version: str | None) -> str:
    source = "/" + quote_path(f"{bucket}/{key}")
    return source if version is None else f"{source}?versionId={quote_path(version)}"


async def copy(p: S3Provider, source: S3Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
    pre = opts.preconditions
    # A conditional copy may need the source's checksums to recognise its own result
    # (CopyObject reads the source, so this needs no permission the copy does not).
    source_attrs = await source.head(src, opts.version, checksums=bool(pre))
    put = opts.replace or put_options_from(source_attrs)
    if source_attrs.size > p.copy_threshold:
        if p.store.part_copy:
            try:
                return await _multipart_copy(p, source, src, dst, source_attrs, put, opts)
            except _NoPartCopy:
                pass
        return await _streamed_copy(p, source, src, dst, source_attrs, put, opts)
    headers = {
        "x-amz-copy-source": _copy_source(source.bucket, src, opts.version),
        **precondition_headers(pre),
        **p.opt.write,
        **source.opt.source,
    }
    if pre.not_exists and "if-none-match" in headers:
        # R2 takes a copy's not_exists in its own header (cf-copy-destination-if-none-match).
        headers[p.store.copy_if_none_match_header] = headers.pop("if-none-match")
    if opts.replace is not None:
        headers.update(object_headers(opts.replace))
        headers["x-amz-metadata-directive"] = "REPLACE"
    await p.precheck(dst, pre)
    resp = await p.send("copy", "PUT", dst, headers=headers, shield=True, check=answered("CopyObjectResult"))
    if resp.status == 412 and pre and resp.maybe_applied:
        ours = source_attrs.etag if is_md5(source_attrs.etag) else None
        return await p.resolve("copy", dst, ours, resp, full_object_sums(source_attrs))
    if resp.status >= 300:
        raise p.fail(resp, "copy", dst, conditional_write=pre.if_match is not None)
    etag, modified, _ = parse_copy(resp.body)
    return put_attrs(dst, put, source_attrs.size, etag, resp.headers.get("x-amz-version-id"), modified)


MAX_PARTS = 10_000
"""S3's limit of parts per upload; a part is at most 5 GiB, an object at most 5 TiB
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html)."""


def copy_part_size(size: int, preferred: int) -> int:
    """The part size for copying ``size`` bytes: ``preferred``, or the smallest whole MiB
    that keeps the copy within 10,000 parts (524.3 MiB at S3's 5 TiB object limit,
    far below the 5 GiB part limit)."""
    needed = -(-size // MAX_PARTS)
    return max(preferred, -(-needed // MiB) * MiB)


async def _multipart_copy(
    p: S3Provider,
    src_provider: S3Provider,
    src: str,
    dst: str,
    source: ObjectAttrs,
    put: PutOptions,
    opts: CopyOptions,
) -> ObjectAttrs:
    upload = await Upload.start(p, dst, replace(put, preconditions=opts.preconditions), crc32c=False)
    copy_source = _copy_source(src_provider.bucket, src, opts.version)
    extra = {**p.opt.key, **src_provider.opt.source}
    # Sized from the source, and within the store's max_parts (1,000 on Scaleway).
    step = max(copy_part_size(source.size, p.copy_part_size), -(-source.size // p.store.max_parts))
    ranges = [(i // step + 1, i, min(i + step, source.size) - 1) for i in range(0, source.size, step)]
    limit = asyncio.Semaphore(p.copy_concurrency)

    async def one(number: int, first: int, last: int) -> Part:
        headers = {"x-amz-copy-source": copy_source, "x-amz-copy-source-range": f"bytes={first}-{last}"}
        headers.update(extra)
        if source.etag and p.store.part_copy_if_match:
            # Pin every part to the source we measured: a concurrent overwrite fails loudly.
            headers["x-amz-copy-source-if-match"] = quote_etag(source.etag)
        op = f"copy part {number}"
        async with limit:
            resp = await p.send(
                op, "PUT", dst, query=upload._query(number), headers=headers, check=answered("CopyPartResult")
            )
        if resp.status == 501 or resp.code == "NotImplemented":
            learn(p, "the store has no UploadPartCopy (501)", part_copy=False)
            raise _NoPartCopy
        if resp.status >= 300:
            raise p.fail(resp, op, dst)
        etag, _, _ = parse_copy(resp.body)
        return Part(number, etag, last - first + 1)

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(*r)) for r in ranges]
        parts = [t.result() for t in tasks]
    except BaseException as exc:
        await run_to_completion(upload.abort())
        if isinstance(exc, BaseExceptionGroup):
            first = exc.exceptions[0]
            raise first from first.__cause__
        raise
    if not p.store.part_copy_if_match:
        # The store ignores x-amz-copy-source-if-match on UploadPartCopy: pin the source
        # by a HEAD after the parts, so an overwrite while they were copied fails loudly.
        now = await src_provider.head(src, opts.version)
        if not same_etag(now.etag, source.etag):
            await run_to_completion(upload.abort())
            raise ObjectChanged(
                f"copy: the source changed while it was copied (etag now {now.etag!r})", key=src
            )
    return await upload.complete(parts)


class _NoPartCopy(Exception):
    """UploadPartCopy answered 501: the copy goes on as a streamed one."""


async def _streamed_copy(
    p: S3Provider,
    src_provider: S3Provider,
    src: str,
    dst: str,
    source: ObjectAttrs,
    put: PutOptions,
    opts: CopyOptions,
) -> ObjectAttrs:
    """A copy through this process, for stores without UploadPartCopy: each range is read
    pinned to the source's ETag (an overwrite meanwhile fails loudly) and uploaded as a
    part with its own checksum; one part in memory at a time."""
    size = max(p.store.min_part_size, 8 * 1024 * 1024, -(-source.size // p.store.max_parts))
    upload = await Upload.start(p, dst, replace(put, preconditions=opts.preconditions))
    parts: list[Part] = []
    try:
        for number, first in enumerate(range(0, source.size, size), 1):
            length = min(size, source.size - first)
            get = GetOptions(version=opts.version, offset=first, length=length, if_match=source.etag or None)
            _, body = await src_provider.get(src, get)
            try:
                data = b"".join([chunk async for chunk in body])
            finally:
                await body.aclose()
            if len(data) != length:
                raise ObjectChanged(f"copy: the source's range at {first} came back short", key=src)
            parts.append(await upload.put_part(number, data))
    except BaseException:
        await run_to_completion(upload.abort())
        raise
    return await upload.complete(parts)
