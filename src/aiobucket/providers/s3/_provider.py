"""S3 and S3-compatible stores (AWS, SeaweedFS, Ceph RGW, MinIO, R2 ...) over our own HTTP path.

Configured as ``s3://cloud-name?region=...&endpoint=...&path_style=true|false``;
credentials come from the options ``access_key_id`` + ``secret_access_key`` (or
``secret_access_key_env``, the name of an environment variable) or else from the
standard AWS chain (through aiobotocore, refreshable credentials included, frozen
per request).

The data plane (GET, HEAD, PUT, DELETE, DeleteObjects, the listings, the multipart
calls and the copies) is signed here (SigV4, ``_sigv4.py``) and sent on one aiohttp
session per provider (``_http/transport.py``, shared with Azure). aiobotocore stays the driver for
credential, region and endpoint resolution when they are not given explicitly, and
for presigned URLs (``client()``).

Retries (``_http/retry.py`` decides, in one place, with S3's codes from
``_retry.py``): every request is retried on 5xx, throttling and connection errors, up
to ``max_attempts`` attempts with full-jitter backoff that a cancel ends at once. An
unconditional PUT (single object or part), DELETE and copy are idempotent and so
retried like reads: S3 and GCS behave the same here. A conditional write
(``not_exists`` / ``if_match`` PUT, copy or completion) is retried too, and if a retry
after a possibly-applied attempt gets 412 (or a completion NoSuchUpload), the stored
object is compared with ours (``resolve``): first by its full-object checksum (the
CRC32C we send with every write; for a copy, any checksum the source has), then by its
ETag (for a PUT our MD5; for a completion the multipart ETag of our parts; for a copy
the source's ETag), which decides "not ours" only where it is an MD5 (not on SSE-KMS
or SSE-C objects). Ours means success, another means PreconditionFailed, and when
neither can decide, OutcomeUnknown. A 409 ConditionalRequestConflict is retried
(``_retry.py``).

Checksums are asked for (``x-amz-checksum-mode: ENABLED``) only on reads whose
bytes a whole-object check verifies: a GET of the whole object, and a HEAD with
``checksums=True``. On an SSE-KMS object that header makes S3 demand kms:Decrypt,
which a plain HEAD (exists, attrs, remove, copy, precondition checks) does not.

Bucket options (``_settings.OptionHeaders``): SSE headers on every new object,
the SSE-C key on every request that touches an SSE-C object's bytes or attributes
(and as copy source), requester-pays and expected-owner headers on every request.

Integrity: every upload body carries Content-MD5 (over http the payload's SHA-256
is signed as well); a mismatch is IntegrityError and nothing is stored. A GET is
checked against its Content-Length and Content-Range; ``ObjectAttrs.md5`` is
filled where the ETag is a vouched MD5, and ``crc32c`` from a FULL_OBJECT
``x-amz-checksum-crc32c`` (single PUTs, and multipart uploads, which declare a
FULL_OBJECT CRC32C: ``_multipart.py``), so the reader verifies whole downloads.

Cancellation: a write that is on the wire is shielded and the cancel re-raised
when it ends; nothing else is (a backoff never is).

Regions (``_region.py``): an answer saying the bucket is in another region is
followed in ``send()``: re-signed for that region (and, on AWS's endpoints, sent to
its endpoint) and re-sent at once, once per request; the region is kept for the
provider's life. With no region configured, one HeadBucket finds it first.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import functools
import ipaddress
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from yarl import URL

from ...errors import (
    BackendError,
    BucketError,
    ConnectionLost,
    InvalidArgument,
    NotModified,
    NotSupported,
    ObjectChanged,
    ObjectNotFound,
    OutcomeUnknown,
    PermissionDenied,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from ...types import BucketConfig, ListEntry, ObjectAttrs, Preconditions, UploadForm
from .._http.body import Body, BytesBody, EmptyBody
from .._http.headers import (
    format_http_date,
    parse_content_range,
    precondition_headers,
    quote_etag,
    unquote_etag,
)
from .._http.ratelimit import SendRate
from .._http.retry import RetryPolicy, RetryQuota
from .._http.transport import Response, Transport, ssl_context
from ..base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    GiB,
    MiB,
    PostPolicy,
    Provider,
    PutOptions,
    check_preconditions,
    check_read,
    same_etag,
)
from ._errors import error_for, request_ids
from ._fallback import FALLBACK_STATUSES, after_resend, fall_back, learn
from ._profiles import StoreProfile, gcs_hint
from ._region import DEFAULT_REGION, Regions, is_region_redirect
from ._retry import S3_RULES
from ._settings import S3Settings, option_headers, parse_settings
from ._sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, Credentials, SigV4Signer, canonical_query, quote_path
from ._wire import digests, is_md5, object_attrs, object_headers, put_attrs, vouched_md5
from ._xml import next_page, parse_list

if TYPE_CHECKING:
    from ...config import BucketSettings
    from ._multipart import Upload

__all__ = ["CAPABILITIES", "S3Provider", "S3Settings", "create"]

CAPABILITIES = Capabilities(
    versioning=True,
    conditional_put=True,
    signed_urls=True,
    signed_forms=True,
    signed_url_length=True,
    server_side_copy=True,
    parallel_parts=True,
    min_part_size=5 * MiB,
    max_parts=10_000,
    default_part_size=8 * MiB,
    default_concurrency=8,
    delete_batch=1000,
)

Query = list[tuple[str, str]]

EXPECT_CONTINUE_MIN = 1 * MiB
"""A single PUT this large sends ``Expect: 100-continue``: a refusal (403, a region redirect)
then costs one round trip, not the body. botocore sends it on every file-like PutObject
and UploadPart body; below 1 MiB the round trip it adds costs more than a resend."""


def _partition(region: str) -> str:
    """The AWS partition a region is in (credentials, and so copies, stay within one)."""
    for prefix in ("cn-", "us-gov-", "us-iso-", "us-isob-", "eu-isoe-", "us-isof-", "eusc-"):
        if region.startswith(prefix):
            return prefix
    return "aws"


def capabilities_of(store: StoreProfile) -> Capabilities:
    """A bucket's declared capabilities, from what its store honours (``_profiles.py``).

    "precheck" counts as honoured: aiobucket checks with a HEAD first, and the README
    says a race window remains there."""
    return replace(
        CAPABILITIES,
        conditional_put=store.conditional_put != "none",
        conditional_multipart=store.conditional_complete != "none",
        conditional_copy=store.conditional_copy != "none",
        versioning=store.versions,
        signed_forms=store.post_forms,
        min_part_size=store.min_part_size,
        max_parts=store.max_parts,
        delete_batch=1000 if store.bulk_delete else 1,
        store=store.name,
    )


@dataclass(slots=True)
class _Endpoint:
    """Where and as whom requests go, resolved once per provider."""

    base: str
    """URL of the bucket without a trailing slash: path-style or virtual-hosted."""
    signer: SigV4Signer
    signed_payload: bool
    """http: the payload's SHA-256 is signed; https: UNSIGNED-PAYLOAD plus Content-MD5."""
    static: Credentials | None
    source: Any = None
    """aiobotocore credentials (refreshable ones refresh themselves) when not static."""

    async def credentials(self) -> Credentials:
        if self.static is not None:
            return self.static
        frozen = await self.source.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token or None)


class S3Provider:
    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self.store = settings.store
        """This instance's copy of the store's profile: runtime fallbacks update it."""
        self.capabilities = capabilities_of(self.store)
        self.bucket = settings.bucket
        self.policy = RetryPolicy(
            settings.max_attempts,
            settings.backoff_base,
            settings.backoff_max,
            rules=S3_RULES,
            deadline=settings.retry_deadline,
            quota=RetryQuota(settings.retry_quota),
            rate=SendRate() if settings.adaptive_retry else None,
        )
        self.transport = Transport(
            pool=settings.max_pool_connections,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )
        self.opt = option_headers(settings)
        self._ep: _Endpoint | None = None
        self.regions = Regions(settings.region)
        self._clients: dict[str | None, Any] = {}
        """aiobotocore clients by region (None: the configured one)."""
        self._session: Any = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None
        self.copy_threshold = 5 * GiB
        """Sources larger than this are copied with UploadPartCopy (CopyObject's limit)."""
        self.copy_part_size = 512 * MiB
        self.copy_concurrency = 4

    # -- aiobotocore: presigning, and resolution when not explicit ---------------------

    async def client(self, region: str | None = None) -> Any:
        """The aiobotocore client for ``region`` (default: the configured one), created on
        first use: presigned URLs and forms, and resolution when not explicit."""
        found = self._clients.get(region)
        if found is not None:
            return found
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if region not in self._clients:
                from aiobotocore.config import AioConfig
                from aiobotocore.session import AioSession

                s = self.settings
                stack = self._stack or contextlib.AsyncExitStack()
                try:
                    session = self._session or (AioSession(profile=s.profile) if s.profile else AioSession())
                    config = AioConfig(
                        region_name=region or s.region,
                        signature_version="s3v4",
                        s3={"addressing_style": "path" if s.path_style else "auto"},
                        connect_timeout=s.connect_timeout,
                        read_timeout=s.read_timeout,
                        user_agent_extra="aiobucket",
                    )
                    client = await stack.enter_async_context(
                        session.create_client(
                            "s3",
                            region_name=region or s.region,
                            endpoint_url=s.endpoint,
                            aws_access_key_id=s.access_key_id,
                            aws_secret_access_key=s.secret_access_key,
                            aws_session_token=s.session_token,
                            config=config,
                        )
                    )
                except BaseException as exc:
                    if self._stack is None:
                        await stack.aclose()
                    if isinstance(exc, Exception):
                        raise _driver_error("connect", exc) from exc
                    raise
                self._stack, self._session = stack, session
                self._clients[region] = client
        return self._clients[region]

    async def _endpoint(self) -> _Endpoint:
        if self._ep is not None:
            return self._ep
        async with self.regions.lock:  # resolved (and a region discovered) once
            if self._ep is None:
                self._ep = await self._resolve()
        return self._ep

    async def _resolve(self) -> _Endpoint:
        s = self.settings
        static: Credentials | None = None
        source: Any = None
        region, endpoint = self.regions.learned or s.region, s.endpoint
        if s.access_key_id is not None and s.secret_access_key is not None:
            static = Credentials(s.access_key_id, s.secret_access_key, s.session_token)
        discover = False
        if static is None or endpoint is None or region is None:
            client = await self.client()
            if region is None:  # not in the URL: the AWS environment (AWS_REGION, the profile)?
                region = self.regions.configured = self._session.get_config_variable("region")
                discover = region is None
            endpoint = endpoint or str(client.meta.endpoint_url).rstrip("/")
            if static is None:
                source = await self._session.get_credentials()
                if source is None:
                    raise PermissionDenied("no S3 credentials found (set access_key_id or the AWS chain)")
        assert endpoint is not None
        if endpoint.startswith("https://"):
            await self._load_tls()
        ep = self._endpoint_at(endpoint, region or DEFAULT_REGION, static, source)
        if discover:  # no region anywhere: ask the bucket, once
            found = await self.regions.discover(functools.partial(self._head_bucket, ep))
            if found != ep.signer.region:
                ep = await self._endpoint_for(found, ep)
        return ep

    async def _load_tls(self) -> None:
        """The CAs that S3's TLS is verified against (see ``_transport.ssl_context``), loaded once."""
        bundle = self.settings.ca_bundle or os.environ.get("AWS_CA_BUNDLE")
        if not bundle and self._session is not None:
            bundle = self._session.get_config_variable("ca_bundle")
        if not bundle and not (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")):
            return  # aiohttp's default context: nothing to load
        try:
            self.transport.ssl = await asyncio.to_thread(ssl_context, bundle)
        except OSError as exc:  # ssl.SSLError included
            where = "the ca_bundle option or AWS_CA_BUNDLE" if bundle else "SSL_CERT_FILE / SSL_CERT_DIR"
            raise InvalidArgument(
                f"cannot load the CA certificates named by {where} ({bundle!r}): {exc}"
            ) from None

    def _endpoint_at(self, endpoint: str, region: str, static: Credentials | None, source: Any) -> _Endpoint:
        scheme, _, host = endpoint.partition("://")
        if self.store.addressing == "path" or "." in self.bucket or _no_subdomains(host):
            base = f"{endpoint}/{quote_path(self.bucket)}"
        else:
            base = f"{scheme}://{self.bucket}.{host}"
        return _Endpoint(base, SigV4Signer(region), scheme == "http", static, source)

    async def _endpoint_for(self, region: str, like: _Endpoint) -> _Endpoint:
        """``like``, signed for ``region``; on AWS's endpoints, sent to that region's."""
        endpoint = self.settings.endpoint
        if endpoint is None:
            endpoint = str((await self.client(region)).meta.endpoint_url).rstrip("/")
        return self._endpoint_at(endpoint, region, like.static, like.source)

    async def _head_bucket(self, ep: _Endpoint, started: float | None = None) -> Response:
        """HeadBucket: its answer names the bucket's region (``x-amz-bucket-region``), whatever its status.

        ``started``: the API call this HeadBucket serves (a re-route) began then, and its
        retries share that call's deadline; None: a call of its own (discovery)."""
        url = ep.base + "/"
        target = URL(url, encoded=True)

        async def attempt() -> Response:
            h: dict[str, str] = {}
            ep.signer.sign("HEAD", url, h, EMPTY_SHA256, ep.static or await ep.credentials())
            return await self.transport.send("HEAD", target, h, None)

        return await self.policy.call(attempt, f"find region (HEAD {self.bucket})", started)

    async def _reroute(self, resp: Response, ep: _Endpoint, started: float) -> _Endpoint | None:
        """After a region redirect to a request sent with ``ep``: where to re-send it (None: nowhere)."""
        async with self.regions.lock:
            current = self._ep
            if current is not None and current.signer.region != ep.signer.region:
                return current  # a concurrent request has already learned where the bucket is
            region = await self.regions.follow(
                resp, ep.signer.region, functools.partial(self._head_bucket, ep, started)
            )
            if region is None:
                return None
            self._ep = moved = await self._endpoint_for(region, ep)
        self.regions.warn_once(self.bucket, region)
        return moved

    # -- the one request path ------------------------------------------------------------

    async def send(
        self,
        op: str,
        method: str,
        key: str | None,
        *,
        query: Query | None = None,
        headers: dict[str, str] | None = None,
        body: memoryview | bytes | None = None,
        payload_hash: str | None = None,
        stream: bool = False,
        shield: bool = False,
        expect: bool = False,
        check: Callable[[Response], None] | None = None,
        started: float | None = None,
    ) -> Response:
        """Sign and send one S3 API call with retries; returns the final response (any status).

        The call's retry deadline (``retry_deadline``) runs from here: every attempt,
        a region re-route and a store-profile fallback resend (each made at once, at
        most once) and their retries spend the one budget, never a fresh one.
        ``shield`` (writes): a cancel while the request is on the wire waits for its
        end. ``check`` may turn a 200 into an error before the retry decision (S3
        answers some failures of CompleteMultipartUpload and CopyObject with 200).
        ``started``: a resend of a call that began then (a caller's own fallback), which
        spends what is left of that call's deadline.
        """
        if started is None:
            started = time.monotonic()
        tail = "/" + quote_path(key) if key is not None else "/"
        if query:
            tail += "?" + canonical_query(query)
        if payload_hash is None:
            payload_hash = EMPTY_SHA256 if body is None else UNSIGNED_PAYLOAD
        base_headers = headers or {}
        if self.opt.every:
            base_headers = {**self.opt.every, **base_headers}
        resp = await self._send(
            op, method, tail, base_headers, body, payload_hash, stream, shield, expect, check, started
        )
        if resp.status in FALLBACK_STATUSES:
            retry_headers = fall_back(self, resp, base_headers, body)
            if retry_headers is not None:  # nothing was stored: resend once, as the store allows
                first = resp
                resp = await self._send(
                    op, method, tail, retry_headers, body, payload_hash, stream, shield, expect, check,
                    started,
                )  # fmt: skip
                after_resend(self, first, base_headers, resp)
        return resp

    async def _send(
        self,
        op: str,
        method: str,
        tail: str,
        base_headers: dict[str, str],
        body: memoryview | bytes | None,
        payload_hash: str,
        stream: bool,
        shield: bool,
        expect: bool,
        check: Callable[[Response], None] | None,
        started: float,
    ) -> Response:
        """One request with its retries, and a region redirect followed once (_region.py),
        within the deadline of the API call that began at ``started``."""
        ep = self._ep or await self._endpoint()
        url = ep.base + tail
        target = URL(url, encoded=True)
        transport = self.transport

        async def attempt() -> Response:
            h = dict(base_headers)
            ep.signer.sign(method, url, h, payload_hash, ep.static or await ep.credentials())
            resp = await transport.send(method, target, h, body, stream=stream, shield=shield, expect=expect)
            if check is not None and resp.status == 200:
                check(resp)
            return resp

        what = f"{op} ({method} {self.bucket})"
        resp = await self.policy.call(attempt, what, started)
        if resp.status < 300 or not is_region_redirect(resp, method, ep.signer.region):
            return resp
        # The bucket is in another region (see _region.py): re-sign and re-send at once, once.
        moved = await self._reroute(resp, ep, started)
        if moved is None:
            return resp
        ep, url = moved, moved.base + tail
        target = URL(url, encoded=True)
        again = await self.policy.call(attempt, what, started)
        again.attempts += resp.attempts
        again.maybe_applied = again.maybe_applied or resp.maybe_applied
        return again

    async def body_hashes(
        self, data: memoryview, *, whole: bool, keep_md5: bool = False
    ) -> tuple[dict[str, str], str | None, str]:
        """(checksum headers, MD5 hex or None, payload hash) for an upload body.

        Every body carries a checksum the server verifies, and each byte is hashed
        as few times as that allows. Where the store verifies ``x-amz-checksum-crc32c``
        (``checksum_headers`` in its profile) that CRC32C is the body's check, as it
        is botocore's: no Content-MD5, and over https an UNSIGNED-PAYLOAD (TLS guards
        the bytes on the way; over http the SHA-256 is signed, which Ceph RGW and AWS
        check too). Elsewhere every body carries Content-MD5, which every S3 server
        checks. ``keep_md5``: the caller needs the MD5 anyway (a conditional write
        compares it with the ETag when its response was lost). Parts and whole objects
        are hashed alike; a whole one also names its algorithm, as the AWS SDKs do.
        """
        ep = self._ep or await self._endpoint()
        signed = ep.signed_payload
        want_crc = self.store.checksum_headers
        md5, sha, crc = await digests(data, md5=keep_md5 or not want_crc, sha=signed, crc=want_crc)
        headers: dict[str, str] = {}
        if md5 is not None:
            headers["content-md5"] = base64.b64encode(md5).decode()
        if crc is not None:
            headers["x-amz-checksum-crc32c"] = crc
            if whole:  # as every AWS SDK says it (moto keeps a PUT's checksum only then)
                headers["x-amz-sdk-checksum-algorithm"] = "CRC32C"
        return headers, md5.hex() if md5 is not None else None, sha or UNSIGNED_PAYLOAD

    def fail(self, resp: Response, op: str, key: str | None, **kw: Any) -> BucketError:
        err = error_for(resp, op=op, bucket=self.bucket, key=key, **kw)
        hint = gcs_hint(self.settings.endpoint)
        if hint:
            err.message += hint
            err.args = (err.message,)
        return err

    def fail_read(
        self, resp: Response, op: str, key: str, version: str | None, *, checksums: bool = True
    ) -> BucketError:
        """The error of a refused GET or HEAD. S3 answers a missing key with 403, not 404,
        when the caller may not list the bucket: the message says so, and which grant
        tells the two apart; and a read that asks for checksums of an SSE-KMS object
        needs kms:Decrypt."""
        err = self.fail(resp, op, key, version=version)
        if isinstance(err, PermissionDenied):
            kms = "; reading an SSE-KMS object needs kms:Decrypt on its key" if checksums else ""
            err = PermissionDenied(
                f"{err.message}: the caller needs s3:GetObject on the key{kms}; and if the object does "
                f"not exist, S3 answers 403 instead of 404 to a caller without s3:ListBucket on bucket "
                f"{self.bucket!r} (grant it to get ObjectNotFound instead)",
                key=key,
                version=version,
            )
        return err

    # -- objects ---------------------------------------------------------------------------

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        view = memoryview(data).cast("B")
        pre = opts.preconditions
        checksum, md5_hex, payload_hash = await self.body_hashes(view, whole=True, keep_md5=bool(pre))
        headers = {**object_headers(opts), **precondition_headers(pre), **checksum, **self.opt.write}
        if pre and self.store.conditional_put == "precheck":
            await self.precheck(key, pre)  # the store may ignore the headers: check first
        resp = await self.send(
            "upload", "PUT", key, headers=headers, body=view, payload_hash=payload_hash, shield=True,
            expect=view.nbytes >= EXPECT_CONTINUE_MIN,
        )  # fmt: skip
        if resp.status == 412 and pre and resp.maybe_applied:
            crc = checksum.get("x-amz-checksum-crc32c")
            return await self.resolve("upload", key, md5_hex, resp, {"crc32c": crc} if crc else None)
        if resp.status >= 300:
            raise self.fail(resp, "upload", key, conditional_write=pre.if_match is not None)
        h = resp.headers
        etag = unquote_etag(h.get("etag"))
        stored_crc = checksum.get("x-amz-checksum-crc32c")
        # Our MD5 where we made one; else the ETag, vouched for by the same rule a HEAD
        # uses (the store checked the body against its CRC32C).
        if md5_hex is not None:
            md5 = md5_hex if same_etag(etag, md5_hex) else None
        else:
            md5 = vouched_md5(etag, h) if self.store.etag_md5 else None
        return put_attrs(
            key, opts, view.nbytes, etag, h.get("x-amz-version-id"), None,
            md5=md5,
            crc32c=stored_crc if h.get("x-amz-checksum-crc32c") == stored_crc else None,
        )  # fmt: skip

    async def resolve(
        self, op: str, key: str, etag: str | None, resp: Response, sums: dict[str, str] | None = None
    ) -> ObjectAttrs:
        """A conditional write was refused after an attempt that may have been applied:
        is the stored object ours? Yes is success; another object is PreconditionFailed;
        not knowable is OutcomeUnknown.

        ``sums``: our full-object checksums by ObjectAttrs field name (``crc32c`` ...);
        ``etag``: the ETag our write gives where it is an MD5 (of the body, or of the
        parts' for a completion). A checksum the stored object has decides; else an
        equal ETag is ours, and an unequal one is another object only where the stored
        ETag is an MD5 of its bytes (not on SSE-KMS or SSE-C objects).
        """
        tries = f"after {resp.attempts} attempts (an earlier one may have been applied)"
        try:
            current, etag_is_md5 = await self._current(key)
        except PermissionDenied as exc:
            raise OutcomeUnknown(
                f"{op}: the write may or may not have been applied: the server answered "
                f"{resp.code or resp.status} {tries}, and the stored object cannot be read to find "
                f"out ({exc.message}); grant s3:GetObject on the key (aiobucket infra does)",
                key=key,
            ) from exc
        ours: bool | None = None
        if current is not None:
            common = [n for n in (sums or {}) if getattr(current, n)]
            if common:
                ours = all(getattr(current, n) == (sums or {})[n] for n in common)
            elif etag is not None and same_etag(current.etag, etag):
                ours = True
            elif etag is not None and etag_is_md5:
                ours = False
        if ours:
            assert current is not None
            return current
        tries += request_ids(resp)  # a failure: S3's ids of the answer that started it
        if ours is False:
            assert current is not None
            raise PreconditionFailed(
                f"{op}: precondition failed {tries}; the object stored now is not ours "
                f"(etag {current.etag!r})",
                key=key,
            )
        found = "the object is gone" if current is None else "neither its checksum nor its etag can tell"
        raise OutcomeUnknown(
            f"{op}: the write may or may not have been applied: the server answered "
            f"{resp.code or resp.status} {tries}, and {found}; read the object to find out",
            key=key,
        )

    async def _current(self, key: str) -> tuple[ObjectAttrs | None, bool]:
        """(the stored object's attrs with its checksums, or None if absent; whether its
        ETag is an MD5 of its bytes). Without kms:Decrypt S3 refuses the checksums of an
        SSE-KMS object with 403: then the attrs without them."""
        headers = {**self.opt.key, "x-amz-checksum-mode": "ENABLED"}
        started = time.monotonic()
        resp = await self.send("attrs", "HEAD", key, headers=headers, started=started)
        if resp.status == 403:  # the same question, without the checksums: the same deadline
            resp = await self.send("attrs", "HEAD", key, headers=self.opt.key, started=started)
        if resp.status == 404:
            return None, False
        if resp.status >= 300:
            raise self.fail(resp, "attrs", key)
        h = resp.headers
        attrs = object_attrs(key, h, int(h.get("content-length") or 0))
        encrypted = h.get("x-amz-server-side-encryption", "AES256") != "AES256" or (
            "x-amz-server-side-encryption-customer-algorithm" in h
        )
        etag = attrs.etag.split("-")[0]
        return attrs, is_md5(etag.lower()) and not encrypted

    async def start_multipart(self, key: str, opts: PutOptions) -> Upload:
        from ._multipart import Upload

        return await Upload.start(self, key, opts)

    async def head(
        self, key: str, version: str | None = None, if_match: str | None = None, *, checksums: bool = False
    ) -> ObjectAttrs:
        headers = dict(self.opt.key)
        if checksums and self.store.checksum_mode:  # a whole read will be verified
            headers["x-amz-checksum-mode"] = "ENABLED"  # report the stored checksums
        if if_match is not None:
            headers["if-match"] = quote_etag(if_match)
        query = self._version_query(version, key)
        resp = await self.send("attrs", "HEAD", key, query=query, headers=headers)
        if resp.status >= 300:
            raise self.fail_read(resp, "attrs", key, version, checksums=checksums)
        return object_attrs(key, resp.headers, int(resp.headers.get("content-length") or 0))

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, Body | BytesBody | EmptyBody]:
        return await self._get(key, opts, reread=True)

    async def _get(
        self, key: str, opts: GetOptions, *, reread: bool
    ) -> tuple[ObjectAttrs, Body | BytesBody | EmptyBody]:
        if opts.length == 0:
            attrs = await self.head(key, opts.version, opts.if_match)
            check_read(attrs, opts, key)
            return attrs, EmptyBody()
        headers = dict(self.opt.key)
        ranged = bool(opts.offset) or opts.length is not None
        if not ranged and self.store.checksum_mode:  # a whole read, which reader.py verifies:
            headers["x-amz-checksum-mode"] = "ENABLED"  # report the stored checksums
        if opts.if_match is not None:
            headers["if-match"] = quote_etag(opts.if_match)
        if opts.if_none_match is not None:
            headers["if-none-match"] = quote_etag(opts.if_none_match) if opts.if_none_match != "*" else "*"
        elif opts.if_modified_since is not None:
            headers["if-modified-since"] = format_http_date(opts.if_modified_since)
        if ranged:
            end = "" if opts.length is None else str(opts.offset + opts.length - 1)
            headers["range"] = f"bytes={opts.offset}-{end}"
        query = self._version_query(opts.version, key)
        resp = await self.send("download", "GET", key, query=query, headers=headers, stream=True)
        if resp.status == 416 and not opts.offset:
            # bytes=0-N on an empty object is a 416 on S3: that object is empty.
            attrs = await self.head(key, opts.version, opts.if_match)
            if attrs.size:  # it was just rewritten: read it again (once)
                if reread:
                    return await self._get(key, opts, reread=False)
                raise ObjectChanged("the object changed while it was being opened", key=key)
            check_read(attrs, opts, key)
            return attrs, EmptyBody()
        if resp.status == 304:
            # S3 answers 304 with little more than the ETag: confirm with a HEAD, whose
            # attrs go into NotModified (check_read raises it); if the object changed
            # since the 304, read it.
            attrs = await self.head(key, opts.version)
            check_read(attrs, replace(opts, offset=0, length=None), key)
            if reread:
                return await self._get(key, opts, reread=False)
            err = NotModified("not modified: the server says the caller's copy is current", key=key)
            err.attrs = attrs
            raise err
        if resp.status >= 300:
            if resp.status == 416 and opts.offset and opts.if_match is not None:
                # A resume past the end of the very object we pinned: the answer we
                # resumed from announced more bytes than the object has.
                raise ConnectionLost(
                    f"the object ends before offset {opts.offset}, where the earlier answer said it went on",
                    key=key,
                )
            if resp.status == 416 and opts.offset:
                raise RangeNotSatisfiable(
                    f"offset {opts.offset} is at or past the end of the object", key=key
                )
            raise self.fail_read(resp, "download", key, opts.version)
        raw = resp.raw
        try:
            attrs, body = self._opened(key, opts, resp, ranged)
            check_read(attrs, opts, key)
        except BaseException:
            if raw is not None:
                raw.close()
            raise
        return attrs, body

    def _opened(
        self, key: str, opts: GetOptions, resp: Response, ranged: bool
    ) -> tuple[ObjectAttrs, Body | BytesBody]:
        """Check a GET answer is the bytes we asked for, of the object we pinned."""
        h = resp.headers
        length = h.get("content-length")
        expected = int(length) if length is not None else None
        limit: int | None = None
        if resp.status == 206:
            span = parse_content_range(h.get("content-range"))
            if (
                span is None
                or span[0] != opts.offset
                or (expected is not None and expected != span[1] - span[0] + 1)
            ):
                raise ConnectionLost(
                    f"the server answered the range read from {opts.offset} with "
                    f"Content-Range {h.get('content-range')!r}",
                    key=key,
                )
            size = span[2]
        else:
            size = expected or 0
            if ranged and opts.offset:
                raise ConnectionLost(
                    f"the server ignored the range read from {opts.offset} and sent the whole object",
                    key=key,
                )
            if ranged:
                limit = opts.length  # bytes=0-N answered with the whole object: read N
        attrs = object_attrs(key, h, size)
        if opts.if_match is not None and not same_etag(attrs.etag, opts.if_match):
            raise ObjectChanged(f"object changed: etag is now {attrs.etag!r}", key=key)
        if opts.version is not None and attrs.version is not None and attrs.version != opts.version:
            raise ObjectChanged(f"the server sent version {attrs.version!r}", key=key)
        if resp.raw is None:  # read whole by the transport (aiohttp checked its length)
            return attrs, BytesBody(resp.body if limit is None else resp.body[:limit])
        return attrs, Body(resp.raw, key, expected, limit)

    async def precheck(self, key: str, pre: Preconditions) -> None:
        """Check preconditions against the current object with a HEAD.

        Used before CopyObject and CompleteMultipartUpload, which also carry the
        conditions as headers (atomic where the server honours them); servers
        that ignore them there (Ceph RGW 16.2) then fail only inside the race
        window between this HEAD and the write.
        """
        if not pre:
            return
        try:
            current: ObjectAttrs | None = await self.head(key, None)
        except ObjectNotFound:
            current = None
        except PermissionDenied:
            # A role without s3:ListBucket gets 403 for a missing key: no early check,
            # the write's own conditional headers decide (atomically, on AWS).
            return
        check_preconditions(current, pre, key)

    async def delete(self, key: str, version: str | None = None) -> None:
        # DeleteObject succeeds on a missing key; the contract says ObjectNotFound.
        await self.head(key, version)
        query = self._version_query(version, key)
        resp = await self.send("remove", "DELETE", key, query=query, shield=True)
        if resp.status >= 300 and not (resp.status == 404 and resp.maybe_applied):
            raise self.fail(resp, "remove", key, version=version)

    async def delete_many(self, keys: Sequence[str]) -> builtins.list[BucketError | None]:
        from ._batch import delete_batch

        return await delete_batch(self, keys)

    async def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        params: dict[str, str] = {
            "prefix": prefix,
            "max-keys": str(min(max(limit or 1000, 1), 1000)),
            "encoding-type": "url",  # any key survives the XML (see _xml.parse_list)
        }
        if delimiter is not None:
            params["delimiter"] = delimiter
        if versions:
            self._version_query("", None)  # NotSupported before any I/O where there are none
            params["versions"] = ""
            if start_after:
                params["key-marker"] = start_after
        else:
            params["list-type"] = "2"
            if start_after:
                params["start-after"] = start_after
        pending: asyncio.Task[bytes] | None = asyncio.ensure_future(self._page(dict(params)))
        try:
            while pending is not None:
                body = await pending
                pending = None
                more = next_page(body, versions=versions)
                page = parse_list(body, versions=versions).entries
                if more is not None and versions and not any(more.values()) and page:
                    # A truncated version page without NextKeyMarker (GCS's S3 interface):
                    # go on after the last version it gave.
                    learn(self, "a truncated version page came without NextKeyMarker", version_markers=False)
                    more = {"key-marker": page[-1].name, "version-id-marker": page[-1].version or ""}
                if more is not None:
                    if not any(more.values()):
                        raise BackendError("list: the server said there is more, but gave no marker")
                    # Ask for the next page first, then parse and hand out this one.
                    params.update({k: v for k, v in more.items() if v})
                    if versions and not more["version-id-marker"]:
                        params.pop("version-id-marker", None)
                    pending = asyncio.ensure_future(self._page(dict(params)))
                for entry in page:
                    yield entry
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _page(self, params: dict[str, str]) -> bytes:
        resp = await self.send("list", "GET", None, query=list(params.items()))
        if resp.status >= 300:
            raise self.fail(resp, "list", None)
        return resp.body

    # -- copies ------------------------------------------------------------------------------

    def can_copy_from(self, source: Provider) -> bool:
        """CopyObject works across buckets of one endpoint and account; on AWS's own
        endpoints also across regions of one partition (S3 copies between regions when
        the request goes to the destination's, as boto3's copy_object does)."""
        if not isinstance(source, S3Provider):
            return False
        a, b = self.settings, source.settings
        if (a.endpoint, a.access_key_id, a.profile) != (b.endpoint, b.access_key_id, b.profile):
            return False
        if a.endpoint is None and a.region and b.region:
            return _partition(a.region) == _partition(b.region)
        return a.region == b.region

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        from ._multipart import copy

        assert isinstance(source, S3Provider)
        return await copy(self, source, src, dst, opts)

    # -- signing and closing ---------------------------------------------------------------------

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        from ._post import sign_post

        self._no_sse_c("an upload form", key)
        return await sign_post(await self._signing_client(), self.bucket, key, policy, self.opt.write)

    async def sign_url(
        self,
        key: str,
        method: Literal["GET", "PUT"],
        ttl: timedelta,
        version: str | None = None,
        *,
        content_type: str | None = None,
        content_length: int | None = None,
        not_exists: bool = False,
    ) -> str:
        if method not in ("GET", "PUT"):
            raise InvalidArgument(f"cannot sign a {method!r} URL; use GET or PUT", key=key)
        self._no_sse_c("a signed URL", key)
        if not_exists and self.store.conditional_put != "native":  # no HEAD precedes a stranger's PUT
            raise NotSupported(f"{self.store.name} does not refuse a PUT by If-None-Match", key=key)
        client = await self._signing_client()
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, **self._signed_params(method)}
        if method == "PUT" and content_type is not None:  # signed headers: S3 refuses others
            params["ContentType"] = content_type
        if method == "PUT" and content_length is not None:
            params["ContentLength"] = content_length
        if method == "PUT" and not_exists:  # a signed header: a PUT without it gets 403
            params["IfNoneMatch"] = "*"
        if version is not None and method == "GET":
            params["VersionId"] = version
        try:
            url: str = await client.generate_presigned_url(
                "get_object" if method == "GET" else "put_object",
                Params=params,
                ExpiresIn=max(1, int(ttl.total_seconds())),
                HttpMethod=method,
            )
        except Exception as exc:
            raise _driver_error("sign url", exc, key) from exc
        return url

    async def _signing_client(self) -> Any:
        """The client that presigns for the bucket's region.

        No request tells a signed URL's holder to re-sign, so the region is made sure of
        first: found (no region configured), learned from a redirect, or else confirmed
        once by a HeadBucket. If that cannot be had (offline, no answer naming a region),
        the configured region is used.
        """
        ep = self._ep or await self._endpoint()
        if self.regions.learned is None and not self.regions.checked:
            self.regions.checked = True
            with contextlib.suppress(BucketError):
                ep = await self._confirm_region(ep)
        region = ep.signer.region
        return await self.client(None if region == self.settings.region else region)

    async def _confirm_region(self, ep: _Endpoint) -> _Endpoint:
        async with self.regions.lock:
            if self.regions.learned is not None and self._ep is not None:
                return self._ep
            found = await self.regions.discover(functools.partial(self._head_bucket, ep))
            if self.regions.learned is None or found == ep.signer.region:
                return ep
            self._ep = moved = await self._endpoint_for(found, ep)
        self.regions.warn_once(self.bucket, found)
        return moved

    def _version_query(self, version: str | None, key: str | None) -> Query | None:
        """``versionId=``, or NotSupported before any I/O where the store keeps no versions
        (a store without them may ignore ``versionId`` and answer with the current object)."""
        if version is None:
            return None
        if not self.store.versions:
            raise NotSupported(
                f"{self.store.name} keeps no object versions (provider={self.store.name}), so "
                "nothing was sent; if this store does, set the bucket option versions=true",
                key=key,
            )
        return [("versionId", version)]

    def _no_sse_c(self, what: str, key: str) -> None:
        if self.settings.sse_customer_key is not None:
            raise NotSupported(
                f"cannot sign {what} on an SSE-C bucket: every request needs the customer key in its "
                "headers, which a browser does not have (and must not be given)",
                key=key,
            )

    def _signed_params(self, method: str) -> dict[str, Any]:
        """The bucket options a presigned request must carry: botocore signs them (as
        query parameters, or as headers the client must send)."""
        s, params = self.settings, dict[str, Any]()
        if s.request_payer is not None:
            params["RequestPayer"] = s.request_payer
        if s.expected_owner is not None:
            params["ExpectedBucketOwner"] = s.expected_owner
        if method == "PUT":
            if s.sse is not None:
                params["ServerSideEncryption"] = s.sse
            if s.sse_kms_key_id is not None:
                params["SSEKMSKeyId"] = s.sse_kms_key_id
            if s.bucket_key is not None:
                params["BucketKeyEnabled"] = s.bucket_key
        return params

    async def aclose(self) -> None:
        stack, self._stack = self._stack, None
        self._clients = {}
        self._ep = None  # the region learned is kept (self.regions)
        try:
            await self.transport.aclose()
        finally:
            if stack is not None:
                await stack.aclose()


def _no_subdomains(host: str) -> bool:
    """An IP literal or localhost: a bucket cannot go in front of it (botocore's rule too)."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _driver_error(op: str, exc: Exception, key: str | None = None) -> BucketError:
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        return PermissionDenied(f"{op}: no S3 credentials found ({exc})", key=key)
    return BackendError(f"{op}: S3 driver error: {type(exc).__name__}: {exc}", key=key)


def create(settings: BucketSettings, name: str, config: BucketConfig) -> Provider:
    """``s3://cloud-name?region=...&endpoint=...&path_style=...`` (see the module docs).

    A URL's ``?prefix=`` never reaches here: config turns it into ``key_prefix``.
    """
    return S3Provider(parse_settings(settings, name))
