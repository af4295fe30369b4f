"""``aiobucket doctor``: probe what an S3-compatible store really does, and compare with its profile.

Invariants:

* It runs only when asked (the CLI's ``doctor`` or ``diagnose()``), never implicitly.
* It writes only under a fresh temporary prefix (``aiobucket-doctor-<hex>/`` inside
  the bucket's key_prefix) and removes everything it wrote, uploads it started
  included, even when a probe fails or it is cancelled.
* It sends raw requests on a private provider built from the same settings, with
  no fallback and no precheck, so what it reports is the store's own behaviour.
* A precondition counts as honoured only when the store refused a write that
  breaks it (412); the absence of an error never proves it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..._aio import run_to_completion
from ..._checksum import crc32c_b64
from ..base import PostPolicy
from ._fallback import MISMATCH
from ._profiles import PROFILES, StoreProfile
from ._sigv4 import EMPTY_SHA256
from ._xml import complete_body, delete_body, parse_list, parse_upload_id

if TYPE_CHECKING:
    from .._http.transport import Response
    from ._provider import S3Provider

__all__ = ["PROBED", "Diagnosis", "diagnose"]

PROBED = (
    "conditional_put",
    "conditional_complete",
    "conditional_copy",
    "checksum_headers",
    "checksum_mode",
    "multipart_checksum",
    "bulk_delete",
    "versions",
    "post_forms",
    "etag_upper",
)
"""The profile fields the doctor observes."""


@dataclass
class Diagnosis:
    """What the probes saw (``observed``: field -> value), beside the declared profile."""

    declared: StoreProfile
    observed: dict[str, object] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    """field -> what the store answered (status and code), for the report."""

    def agrees(self, name: str) -> bool:
        """The declared value claims no more than what was seen (precheck = not honoured)."""
        return _agrees(self.declared, name, self.observed.get(name))

    @property
    def differences(self) -> dict[str, tuple[object, object]]:
        """field -> (declared, observed) where they disagree."""
        return {
            n: (getattr(self.declared, n), self.observed[n])
            for n in PROBED
            if n in self.observed and not self.agrees(n)
        }

    def suggestion(self) -> str:
        """The provider= (and the overrides) that declare what was seen."""

        def fits(p: StoreProfile) -> list[str]:
            return [n for n in PROBED if n in self.observed and not _agrees(p, n, self.observed[n])]

        if not fits(self.declared):
            return f"provider={self.declared.name}"
        addressing = self.declared.addressing
        name = min(PROFILES, key=lambda n: (len(fits(PROFILES[n])), PROFILES[n].addressing != addressing, n))
        overrides = [f"{n}={self.observed[n]}" for n in fits(PROFILES[name])]
        return " ".join([f"provider={name}", *overrides])

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.declared.name,
            "fields": {
                n: {
                    "declared": getattr(self.declared, n),
                    "observed": self.observed.get(n),
                    "agrees": self.agrees(n) if n in self.observed else None,
                    "answer": self.notes.get(n, ""),
                }
                for n in PROBED
            },
            "suggestion": self.suggestion(),
            "cleanup": self.notes.get("cleanup", "done"),
        }


def _agrees(p: StoreProfile, name: str, seen: object) -> bool:
    said: object = getattr(p, name)
    if name.startswith("conditional_"):
        return (said == "native") == (seen == "native")
    return bool(said == seen)


def _answer(resp: Response) -> str:
    return f"{resp.status} {resp.code}".strip()


class _Probe:
    def __init__(self, p: S3Provider, prefix: str) -> None:
        self.p = p
        self.prefix = prefix
        self.uploads: list[tuple[str, str]] = []

    async def raw(
        self,
        method: str,
        key: str | None,
        *,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        from ._sigv4 import canonical_query, quote_path

        tail = "/" + quote_path(key) if key is not None else "/"
        if query:
            tail += "?" + canonical_query(query)
        digest = EMPTY_SHA256 if body is None else hashlib.sha256(body).hexdigest()
        h = dict(headers or {})
        if body is not None:
            h.setdefault(
                "content-md5", base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
            )
        return await self.p._send(
            "doctor", method, tail, h, body, digest, False, False, False, None, time.monotonic()
        )

    def key(self, name: str) -> str:
        return self.prefix + name

    async def multipart(
        self, key: str, *, full: bool, headers: dict[str, str] | None = None, checksums: bool = True
    ) -> Response:
        """A one-part upload with CRC32Cs (a FULL_OBJECT one at completion when ``full``);
        without ``checksums``, a plain one (for stores that refuse the headers)."""
        start = {"x-amz-checksum-algorithm": "CRC32C"} if checksums else {}
        if full:
            start["x-amz-checksum-type"] = "FULL_OBJECT"
        resp = await self.raw("POST", key, query=[("uploads", "")], headers=start)
        if resp.status >= 300:
            return resp
        upload_id = parse_upload_id(resp.body)
        self.uploads.append((key, upload_id))
        data = b"doctor part"
        crc = crc32c_b64(data)
        q = [("partNumber", "1"), ("uploadId", upload_id)]
        part_headers = {"x-amz-checksum-crc32c": crc} if checksums else {}
        part = await self.raw("PUT", key, query=q, headers=part_headers, body=data)
        if part.status >= 300:
            return part
        etag = part.headers.get("etag", "").strip('"')
        body = complete_body([(1, etag)], {1: crc} if checksums else None)
        h = {"content-type": "application/xml", **(headers or {})}
        if full:
            h["x-amz-checksum-crc32c"] = crc
            h["x-amz-checksum-type"] = "FULL_OBJECT"
        return await self.raw("POST", key, query=[("uploadId", upload_id)], headers=h, body=body)

    async def cleanup(self) -> None:
        for key, upload_id in self.uploads:
            with contextlib.suppress(Exception):
                await self.raw("DELETE", key, query=[("uploadId", upload_id)])
        for _ in range(3):
            resp = await self.raw("GET", None, query=[("list-type", "2"), ("prefix", self.prefix)])
            if resp.status >= 300:
                return
            names = [e.name for e in parse_list(resp.body, versions=False).entries]
            if not names:
                return
            for name in names:
                with contextlib.suppress(Exception):
                    await self.raw("DELETE", name)


async def _run(probe: _Probe, d: Diagnosis) -> None:
    o, notes, raw = d.observed, d.notes, probe.raw
    a, b = probe.key("a"), probe.key("b")
    inm = {"if-none-match": "*"}

    # If-None-Match: * twice: the second must be refused.
    first = await raw("PUT", a, headers=inm, body=b"first")
    if first.status >= 300:  # not a verdict on the store: credentials, bucket, endpoint
        err = probe.p.fail(first, "doctor", a)
        if first.code == "SecondLevelDomainForbidden":  # Alibaba OSS's refusal of path style
            err.message += (
                "; the store takes virtual-host requests only: set addressing=virtual (or provider=oss)"
            )
            err.args = (err.message,)
        raise err
    # OSS answers with upper-case hex ETags (a digit-only ETag says nothing: not observed).
    etag = first.headers.get("etag", "").strip('"')
    if etag.lower() != etag.upper():
        o["etag_upper"] = etag == etag.upper()
        notes["etag_upper"] = f"ETag {etag!r}"
    second = await raw("PUT", a, headers=inm, body=b"second")
    o["conditional_put"] = "native" if first.status < 300 and second.status == 412 else "none"
    notes["conditional_put"] = f"first {_answer(first)}, second {_answer(second)}"
    # A wrong If-Match must be refused too.
    wrong = await raw("PUT", a, headers={"if-match": '"00000000000000000000000000000000"'}, body=b"x")
    if wrong.status != 412:
        o["conditional_put"] = "none"
    notes["conditional_put"] += f", wrong If-Match {_answer(wrong)}"

    # Checksums: a right CRC32C is accepted and returned; a wrong one is refused.
    data = b"checksummed"
    sdk = {"x-amz-sdk-checksum-algorithm": "CRC32C"}  # as aiobucket and the AWS SDKs send it
    right = await raw("PUT", b, headers={"x-amz-checksum-crc32c": crc32c_b64(data), **sdk}, body=data)
    mismatch = {"x-amz-checksum-crc32c": crc32c_b64(b"other"), **sdk}
    bad = await raw("PUT", probe.key("c"), headers=mismatch, body=data)
    o["checksum_headers"] = right.status < 300 and bad.status == 400 and bad.code in MISMATCH | {"BadDigest"}
    notes["checksum_headers"] = f"right {_answer(right)}, wrong {_answer(bad)}"
    head = await raw("HEAD", b, headers={"x-amz-checksum-mode": "ENABLED"})
    o["checksum_mode"] = head.status < 300 and head.headers.get("x-amz-checksum-crc32c") == crc32c_b64(data)
    notes["checksum_mode"] = (
        f"HEAD {_answer(head)}, x-amz-checksum-crc32c {head.headers.get('x-amz-checksum-crc32c')!r}"
    )

    # Multipart: a FULL_OBJECT CRC32C on a fresh key; then If-None-Match on an existing one.
    checksums = bool(o["checksum_headers"]) or right.status < 300
    full = await probe.multipart(probe.key("m"), full=True) if checksums else None
    if full is None:
        o["multipart_checksum"] = "none"  # the store refuses the checksum headers themselves
    elif full.status < 300:
        check = await raw("HEAD", probe.key("m"), headers={"x-amz-checksum-mode": "ENABLED"})
        kept = check.headers.get("x-amz-checksum-type", "") == "FULL_OBJECT" or (
            check.headers.get("x-amz-checksum-crc32c") == crc32c_b64(b"doctor part")
        )
        o["multipart_checksum"] = "full_object" if kept else "none"
    elif full.code in MISMATCH or full.status == 400:
        composite = await probe.multipart(probe.key("m2"), full=False)
        o["multipart_checksum"] = "composite" if composite.status < 300 else "none"
    else:
        o["multipart_checksum"] = "none"
    notes["multipart_checksum"] = "not tried" if full is None else f"FULL_OBJECT completion {_answer(full)}"
    done = await probe.multipart(a, full=False, headers=inm, checksums=checksums)
    o["conditional_complete"] = "native" if done.status == 412 else "none"
    notes["conditional_complete"] = f"completion with If-None-Match on an existing key {_answer(done)}"

    # A conditional CopyObject onto an existing key.
    header = d.declared.copy_if_none_match_header
    source = f"/{probe.p.bucket}/{b}"
    copied = await raw("PUT", a, headers={"x-amz-copy-source": source, header: "*"})
    o["conditional_copy"] = "native" if copied.status == 412 else "none"
    notes["conditional_copy"] = f"CopyObject with {header}: * onto an existing key {_answer(copied)}"

    # DeleteObjects and version listing.
    body = delete_body([probe.key("c")])
    deleted = await raw(
        "POST", None, query=[("delete", "")], headers={"content-type": "application/xml"}, body=body
    )
    o["bulk_delete"] = deleted.status < 300
    notes["bulk_delete"] = f"DeleteObjects {_answer(deleted)}"
    listed = await raw("GET", None, query=[("prefix", probe.prefix), ("versions", "")])
    o["versions"] = listed.status < 300 and b"ListVersionsResult" in listed.body
    notes["versions"] = f"ListObjectVersions {_answer(listed)}"

    # A POST form upload.
    o["post_forms"], notes["post_forms"] = await _post_form(probe)


async def _post_form(probe: _Probe) -> tuple[bool, str]:
    import aiohttp

    from ._post import sign_post

    key = probe.key("form")
    policy = PostPolicy(ttl=timedelta(minutes=5), max_size=1024, min_size=0, content_type="text/plain")
    try:
        form = await sign_post(await probe.p.client(), probe.p.bucket, key, policy)
    except Exception as exc:
        return False, f"cannot sign: {exc}"
    data = aiohttp.FormData()
    for k, v in form.fields.items():
        data.add_field(k, v)
    data.add_field("file", b"form", filename="f.txt", content_type="text/plain")
    try:
        async with aiohttp.ClientSession() as session, session.post(form.url, data=data) as resp:
            await resp.read()
            status = resp.status
    except aiohttp.ClientError as exc:
        return False, f"POST failed: {exc}"
    if status >= 300:
        return False, f"POST {status}"
    stored = await probe.raw("HEAD", key)
    return stored.status < 300, f"POST {status}, HEAD {stored.status}"


async def diagnose(p: S3Provider, key_prefix: str = "") -> Diagnosis:
    """Probe the store behind ``p``'s settings under a temporary prefix, then clean up."""
    from ._provider import S3Provider

    private = S3Provider(p.settings)  # no learnt state in, none out
    probe = _Probe(private, f"{key_prefix}aiobucket-doctor-{uuid.uuid4().hex[:12]}/")
    d = Diagnosis(declared=p.settings.store)
    try:
        await _run(probe, d)
    finally:
        await run_to_completion(asyncio.ensure_future(_cleanup(private, probe, d)))
    return d


async def _cleanup(private: S3Provider, probe: _Probe, d: Diagnosis) -> None:
    """Remove what the probes wrote; a failure here is reported, never masks the probes' own."""
    try:
        await probe.cleanup()
    except Exception as exc:
        d.notes["cleanup"] = f"could not remove {probe.prefix!r}: {exc}"
    finally:
        await private.aclose()
