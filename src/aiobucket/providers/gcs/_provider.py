"""Google Cloud Storage backend: the JSON API over aiohttp, credentials from gcloud-aio.

Configuration: ``gs://cloud-bucket-name[?endpoint=URL][&emulator=true]``.
Credentials come from the standard Google chain (the ``service_file`` option,
``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application-default login, or the
metadata server on GKE, Cloud Run and Compute Engine) and are sent to any
endpoint (Private Service Connect, regional); only an emulator named as one
(``emulator=true``, or ``STORAGE_EMULATOR_HOST``) gets none. Options are parsed
in ``_settings.py``: timeouts, the retry schedule, ``universe_domain``,
``user_project`` (requester pays), ``kms_key_name`` (CMEK), a customer-supplied
key (``encryption_key`` or ``encryption_key_env``), ``signing_service_account``,
``iam_endpoint``, ``trace_configs`` (aiohttp TraceConfig objects). Proxies come
from the environment (``HTTPS_PROXY``, ``NO_PROXY``).

Signed URLs and upload forms are signed with the service account's key when the
credentials hold one, and through IAM ``signBlob`` otherwise (``_iam.py``).

Semantics at the contract level:

* ``version`` is the GCS generation (a decimal string). ``ObjectAttrs.version``
  is set only when the bucket is declared ``versioned``, as on every backend;
  ``version=`` arguments are sent as ``generation=`` either way.
* ``Preconditions.if_match`` takes an **ETag** (``ObjectAttrs.etag``, as on
  every backend). It is resolved to the object's current generation with a
  metadata GET, and the write is sent with ``ifGenerationMatch=<generation>`` and
  ``ifMetagenerationMatch=<metageneration>`` (an etag also changes with the
  metadata), so the check is atomic on the server. ``not_exists`` is
  ``ifGenerationMatch=0``.
* A read is one media GET: its answer's headers give the attrs (generation, size,
  CRC32C, MD5, encoding, etag; ``_download.py``), and ``if_match``, the caching
  conditions and the range are judged on them before a byte is used. A resumed
  or parallel range is pinned to the etag (and the generation on versioned
  buckets), so a body never splices two versions. Only where the headers lack
  something does a metadata GET follow, pinned to the served generation.
* Streams run without a total timeout (only connect and socket-read timeouts).

Faults (decided in ``_retry.py``: Google's schedule, 1 s doubling to 60 s, within
a 120 s deadline per request; ``retries`` may bound the attempts too):

* Reads, lists, metadata and starting a session retry on 408, 429, 5xx and
  connection errors; a metadata answer cut after its headers is retried too.
* An unconditional small upload, rewrite or delete retries the same way: it is
  idempotent in effect (the same bytes and attributes, or "gone"), which is the
  rule the S3 backend follows too. A delete whose retry finds nothing (404)
  after an attempt that may have been applied has succeeded.
* A ``not_exists`` upload (small or resumable) or copy still refused with 429
  at the deadline (other writers at GCS's one-write-per-second limit) is
  resolved by reading the object: ours is success, anything else
  PreconditionFailed (``_outcome.rate_limited``).
* A conditional write (``ifGenerationMatch``: ``not_exists``, ``if_match``,
  a generation-pinned delete) retries too; a 412 after an attempt that may have
  been applied is resolved by reading the object back and comparing its size,
  CRC32C, content type and metadata with ours (``_outcome.py``): ours is
  success, a mismatch PreconditionFailed, unreadable OutcomeUnknown.
* Resumable chunks resume from the offset the session reports (``_upload.py``).
* A cancel ends a backoff at once; only an attempt of a commit that may be on
  the wire is awaited to its answer.

Integrity: uploads send their CRC32C (multipart metadata, or ``X-Goog-Hash`` on
the final chunk) and the stored object's CRC32C and size are compared with ours;
a mismatch is IntegrityError and the bad generation is removed. Downloads ask
for the stored bytes (``Accept-Encoding: gzip``: a gzip-encoded object is not
decompressed on the way), so the reader checks a whole one against the stored
CRC32C; ranged ones must be a 206 of exactly the asked range (``_download.py``).
An answer GCS decompressed anyway is accepted as decoded bytes (``MediaBody.decoded``).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from ..._checksum import crc32c_b64
from ...errors import (
    BackendError,
    BucketError,
    IntegrityError,
    NotSupported,
    ObjectNotFound,
    PreconditionFailed,
)
from ...types import BucketConfig, ListEntry, ObjectAttrs, Preconditions, UploadForm
from ..base import (
    Capabilities,
    CopyOptions,
    GetOptions,
    KiB,
    MiB,
    PostPolicy,
    Provider,
    PutOptions,
    check_read,
    delete_each,
)
from ._download import MediaBody, MediaCheck, range_header
from ._http import (
    GcsHttp,
    HttpError,
    HttpSettings,
    Kind,
    error_for_status,
)
from ._iam import sign_blob_signer
from ._listing import list_entries
from ._outcome import Written, rate_limited, read_back
from ._resource import attrs_from_resource, resource_metadata
from ._settings import http_settings
from ._sign import Signer, pem_signer, sign_v4, ttl_seconds
from ._upload import ResumableUpload

if TYPE_CHECKING:
    from ...config import BucketSettings


CAPABILITIES = Capabilities(
    versioning=True,
    conditional_put=True,
    signed_urls=True,
    signed_forms=True,
    server_side_copy=True,
    parallel_parts=False,
    min_part_size=256 * KiB,
    part_size_multiple=256 * KiB,
    max_parts=1_000_000,  # resumable sessions have no part limit; objects may reach 5 TiB
    default_part_size=8 * MiB,
    default_concurrency=1,
    served_cache_control=True,  # https://cloud.google.com/storage/docs/caching (built-in caching)
)

__all__ = ["CAPABILITIES", "GcsProvider", "create"]


def _account(p: GcsProvider) -> tuple[str | None, str | None]:
    return p.http.settings.endpoint, p.http.settings.service_file


class GcsProvider:
    capabilities = CAPABILITIES

    def __init__(
        self,
        bucket: str,
        *,
        versioned: bool,
        http: HttpSettings,
    ) -> None:
        self.bucket = bucket
        self.versioned = versioned
        self.http = GcsHttp(http)

    # -- helpers ---------------------------------------------------------------

    def bucket_error(self, exc: HttpError, key: str | None, what: str) -> BucketError:
        """For requests on the bucket itself (uploads, lists): a 404 means no bucket."""
        if exc.status == 404:
            return BackendError(f"{what}: GCS bucket {self.bucket!r} does not exist", key=key)
        return error_for_status(exc.status, exc.body, key=key, what=what, attempts=exc.attempts)

    async def resource(self, key: str, version: str | None) -> dict[str, Any]:
        """The object's resource (JSON API metadata), read with retries."""
        params = {"generation": version} if version is not None else None
        return await self.http.json(
            "GET",
            self.http.object_url(self.bucket, key),
            kind=Kind.READ,
            key=key,
            version=version,
            params=params,
            what="get object metadata",
        )

    async def preconditions(self, key: str, pre: Preconditions) -> dict[str, str]:
        """The query parameters that make a write conditional on ``pre`` ({} for none).

        ``if_match`` sends ``ifMetagenerationMatch`` beside ``ifGenerationMatch``:
        a GCS etag changes when the metadata changes, so the generation alone
        would let a write through after someone else's metadata update.
        """
        if pre.not_exists:
            return {"ifGenerationMatch": "0"}
        if pre.if_match is None:
            return {}
        try:
            res = await self.resource(key, None)
        except ObjectNotFound:
            raise PreconditionFailed(
                f"precondition if_match={pre.if_match!r} failed: the object does not exist", key=key
            ) from None
        etag = str(res.get("etag", "")).strip('"')
        if etag != pre.if_match:
            raise PreconditionFailed(
                f"precondition if_match={pre.if_match!r} failed: its etag is {etag!r}", key=key
            )
        out = {"ifGenerationMatch": str(res["generation"])}
        if res.get("metageneration") is not None:
            out["ifMetagenerationMatch"] = str(res["metageneration"])
        return out

    def kms_params(self, name: str) -> dict[str, str]:
        """The CMEK parameter of an upload (``kmsKeyName``) or rewrite (``destinationKmsKeyName``)."""
        kms = self.http.settings.kms_key_name
        return {} if kms is None else {name: kms}

    async def discard(self, key: str, resource: Mapping[str, Any]) -> None:
        """Remove one bad generation we stored (failed verification); best effort.

        Pinned with ifGenerationMatch, so it never removes anyone else's write.
        """
        gen = str(resource.get("generation", ""))
        if not gen:
            return
        with contextlib.suppress(HttpError, BucketError):  # the IntegrityError raised says enough
            await self.http.call(
                "DELETE",
                self.http.object_url(self.bucket, key),
                kind=Kind.CONDITIONAL,
                key=key,
                what="remove the unverified object",
                params={"generation": gen, "ifGenerationMatch": gen},
                ok=(200, 204, 404, 412),
                shield=True,
            )

    async def _verified(self, key: str, res: dict[str, Any], written: Written, what: str) -> ObjectAttrs:
        """The stored object's attrs, if its size and CRC32C are ours; else remove it."""
        crc = res.get("crc32c")
        size = str(res.get("size", ""))
        if size != str(written.size) or (isinstance(crc, str) and crc != written.crc32c):
            await self.discard(key, res)
            raise IntegrityError(
                f"{what}: GCS stored {size} bytes with CRC32C {crc} where we sent {written.size} "
                f"with {written.crc32c}; the object was removed",
                key=key,
            )
        return attrs_from_resource(res, versioned=self.versioned)

    # -- the contract ----------------------------------------------------------

    async def put(self, key: str, data: bytes, opts: PutOptions) -> ObjectAttrs:
        conditions = await self.preconditions(key, opts.preconditions)
        gen = conditions.get("ifGenerationMatch")
        params = {"uploadType": "multipart", **conditions, **self.kms_params("kmsKeyName")}
        crc = crc32c_b64(data)
        meta = resource_metadata(
            opts.content_type,
            opts.cache_control,
            opts.content_disposition,
            opts.metadata,
            name=key,
            content_encoding=opts.content_encoding,
        )
        meta["crc32c"] = crc  # GCS refuses the upload if the bytes it got hash otherwise
        boundary = os.urandom(16).hex()
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(meta).encode(),
                f"\r\n--{boundary}\r\nContent-Type: {opts.content_type}\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        replaced = gen if gen not in (None, "0") else None
        written = Written(len(data), crc, opts.content_type, opts.metadata, replaced)
        try:
            reply = await self.http.call(
                "POST",
                self.http.bucket_url(self.bucket, upload=True),
                kind=Kind.OVERWRITE if gen is None else Kind.CONDITIONAL,
                key=key,
                what="upload",
                params=params,
                data=body,
                headers={"Content-Type": f"multipart/related; boundary={boundary}"},
                long=len(body) > 1 * MiB,
                shield=True,  # the commit: once sent, its answer is awaited
            )
        except HttpError as exc:
            if exc.status == 429 and gen == "0":
                ours = await rate_limited(
                    lambda: self.resource(key, None), written, key, "upload", exc.attempts, exc
                )
                return attrs_from_resource(ours, versioned=self.versioned)
            if exc.status != 412 or not exc.maybe_applied:
                raise self.bucket_error(exc, key, "upload") from exc
            # Our earlier attempt may be what the precondition now meets.
            found = await read_back(lambda: self.resource(key, None), written, key, "upload")
            if found is None:
                raise self.bucket_error(exc, key, "upload") from exc
            return attrs_from_resource(found, versioned=self.versioned)
        try:
            res = reply.json(key, "upload")
            str(res["name"])
        except (BackendError, KeyError) as exc:
            # Stored (2xx), but the answer is unreadable: read the object instead.
            found = await read_back(lambda: self.resource(key, None), written, key, "upload")
            if found is None:
                raise BackendError("upload: GCS sent an unreadable answer", key=key) from exc
            res = found
        return await self._verified(key, res, written, "upload")

    async def start_multipart(self, key: str, opts: PutOptions) -> ResumableUpload:
        return ResumableUpload(self, key, opts)

    async def get(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, MediaBody]:
        """One media GET; its headers are the attrs (``_download.py``).

        A conditional read (``if_none_match``, ``if_modified_since``) is judged on the
        resource first, so a NotModified transfers no body; the media GET that follows
        is pinned to the generation that was judged.
        """
        if opts.length == 0:  # nothing to transfer: the attrs alone
            attrs = await self.head(key, opts.version)
            check_read(attrs, replace(opts, offset=0), key)
            return attrs, MediaBody(None, 0, key)
        if opts.if_none_match is None and opts.if_modified_since is None:
            return await self._media(key, opts)
        for _ in range(3):
            res = await self.resource(key, opts.version)
            check_read(attrs_from_resource(res, versioned=self.versioned), opts, key)
            pinned = replace(opts, version=str(res["generation"]), if_none_match=None, if_modified_since=None)
            try:
                return await self._media(key, pinned)
            except ObjectNotFound:
                if opts.version is not None:
                    raise
                # replaced between the two requests: judge the new one
        raise BackendError("the object kept changing while the download was starting", key=key)

    async def _media(self, key: str, opts: GetOptions) -> tuple[ObjectAttrs, MediaBody]:
        # The query as a string (a version is a decimal generation, safe as is): cheaper
        # than aiohttp merging a params dict on every read.
        query = (
            "alt=media" if opts.version is None else f"alt=media&generation={quote(opts.version, safe='')}"
        )
        url = self.http.media_url(self.bucket, key, query)
        headers = {"Accept-Encoding": "gzip"}  # the stored bytes: no decompressive transcoding
        rng = range_header(opts.offset, opts.length)
        if rng is not None:
            headers["Range"] = rng
        check = MediaCheck(key, opts, versioned=self.versioned)
        try:
            resp = await self.http.open(url, key=key, what="download", headers=headers, accept=check)
        except HttpError as exc:
            if exc.status == 416 and not opts.offset:  # a range from byte 0 of an empty object
                attrs = await self.head(key, opts.version)
                check_read(attrs, opts, key)
                return attrs, MediaBody(None, 0, key)
            if exc.status == 404 and opts.if_match is not None:
                raise PreconditionFailed("object changed while being read", key=key) from exc
            raise error_for_status(
                exc.status, exc.body, key=key, version=opts.version, what="download", attempts=exc.attempts
            ) from exc
        try:
            found = check.attrs
            if found is None:  # the headers lack something: the resource of the served generation
                try:
                    res = await self.resource(key, check.generation or opts.version)
                except ObjectNotFound as exc:
                    if opts.if_match is None:
                        raise
                    raise PreconditionFailed("object changed while being read", key=key) from exc
                found = check.settle(attrs_from_resource(res, versioned=self.versioned))
        except BaseException:
            resp.close()
            raise
        return found, MediaBody(resp, check.expected, key, decoded=check.decoded)

    async def head(self, key: str, version: str | None = None, *, checksums: bool = False) -> ObjectAttrs:
        return attrs_from_resource(await self.resource(key, version), versioned=self.versioned)

    async def delete(self, key: str, version: str | None = None) -> None:
        params = None if version is None else {"generation": version, "ifGenerationMatch": version}
        try:
            await self.http.call(
                "DELETE",
                self.http.object_url(self.bucket, key),
                kind=Kind.OVERWRITE if version is None else Kind.CONDITIONAL,
                key=key,
                what="delete",
                params=params,
                shield=True,
            )
        except HttpError as exc:
            if exc.status == 404 and exc.maybe_applied:
                return  # an earlier attempt removed it; its answer was lost
            raise error_for_status(
                exc.status, exc.body, key=key, version=version, what="delete", attempts=exc.attempts
            ) from exc

    def list(
        self,
        prefix: str,
        *,
        start_after: str | None = None,
        delimiter: str | None = None,
        versions: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[ListEntry]:
        return list_entries(
            self, prefix, start_after=start_after, delimiter=delimiter, versions=versions, limit=limit
        )

    def can_copy_from(self, source: Provider) -> bool:
        # rewrite works across buckets that this provider's credentials can reach.
        return isinstance(source, GcsProvider) and _account(source) == _account(self)

    async def copy(self, source: Provider, src: str, dst: str, opts: CopyOptions) -> ObjectAttrs:
        assert isinstance(source, GcsProvider)
        origin = source
        conditions = await self.preconditions(dst, opts.preconditions)
        gen = conditions.get("ifGenerationMatch")
        params: dict[str, str] = {**conditions, **self.kms_params("destinationKmsKeyName")}
        if opts.version is not None:
            params["sourceGeneration"] = opts.version
        r = opts.replace
        body = (
            {}
            if r is None
            else resource_metadata(
                r.content_type,
                r.cache_control,
                r.content_disposition,
                r.metadata,
                content_encoding=r.content_encoding,
            )
        )
        url = (
            f"{self.http.object_url(origin.bucket, src)}/rewriteTo/b/"
            f"{quote(self.bucket, safe='')}/o/{quote(dst, safe='')}"
        )
        data = json.dumps(body).encode()
        while True:
            try:
                reply = await self.http.call(
                    "POST",
                    url,
                    kind=Kind.OVERWRITE if gen is None else Kind.CONDITIONAL,
                    key=src,
                    what="copy",
                    params=params,
                    data=data,
                    headers={
                        "Content-Type": "application/json; charset=UTF-8",
                        **origin.http.encryption_headers("x-goog-copy-source-"),
                    },
                    shield=True,
                )
            except HttpError as exc:
                if exc.status == 412 and exc.maybe_applied:
                    return await self._copied(origin, src, dst, opts, gen, exc)
                if exc.status == 429 and gen == "0":
                    return await self._copy_rate_limited(origin, src, dst, opts, exc)
                raise error_for_status(
                    exc.status, exc.body, key=src, version=opts.version, what="copy", attempts=exc.attempts
                ) from exc
            res = reply.json(src, "copy")
            if res.get("done") or not res.get("rewriteToken"):
                break
            params["rewriteToken"] = str(res["rewriteToken"])
        resource = res.get("resource")
        if not isinstance(resource, dict):
            raise BackendError("GCS did not return the copied object", key=dst)
        return attrs_from_resource(resource, versioned=self.versioned)

    @staticmethod
    def _copy_written(source: Mapping[str, Any], opts: CopyOptions, gen: str | None) -> Written:
        """What a copy of the source resource ``source`` stores."""
        r = opts.replace
        return Written(
            int(source.get("size", -1)),
            source.get("crc32c"),
            None if r is None else r.content_type,
            None if r is None else r.metadata,
            gen if gen not in (None, "0") else None,
        )

    async def _copied(
        self, origin: GcsProvider, src: str, dst: str, opts: CopyOptions, gen: str | None, exc: HttpError
    ) -> ObjectAttrs:
        """A conditional copy met a 412 after an attempt that may have been applied: look."""
        try:
            source = await origin.resource(src, opts.version)
        except BucketError as err:
            raise error_for_status(412, exc.body, key=dst, what="copy") from err
        written = self._copy_written(source, opts, gen)
        found = await read_back(lambda: self.resource(dst, None), written, dst, "copy")
        if found is None:
            raise error_for_status(412, exc.body, key=dst, what="copy") from exc
        return attrs_from_resource(found, versioned=self.versioned)

    async def _copy_rate_limited(
        self, origin: GcsProvider, src: str, dst: str, opts: CopyOptions, exc: HttpError
    ) -> ObjectAttrs:
        """A ``not_exists`` copy refused with 429 until the deadline: settled by looking."""
        try:
            written: Written | None = self._copy_written(await origin.resource(src, opts.version), opts, "0")
        except BucketError:
            written = None  # the source cannot be read: nothing stored can be recognised as ours
        found = await rate_limited(lambda: self.resource(dst, None), written, dst, "copy", exc.attempts, exc)
        return attrs_from_resource(found, versioned=self.versioned)

    async def delete_many(self, keys: Sequence[str]) -> builtins.list[BucketError | None]:
        return await delete_each(self.delete, keys)

    async def sign_post(self, key: str, policy: PostPolicy) -> UploadForm:
        from ._post import sign_post_v4

        email, signer = await self._signer(key)
        return await sign_post_v4(
            base_url=self.http.api_root,
            bucket=self.bucket,
            key=key,
            policy=policy,
            client_email=email,
            signer=signer,
        )

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
        if content_length is not None:
            raise NotSupported(
                "GCS signed URLs cannot fix the upload size; use signed_upload_form(max_size=...)", key=key
            )
        ttl_seconds(ttl, key)  # a bad ttl is refused before any signing request
        extra: dict[str, str] = {}
        if version is not None and method == "GET":
            extra["generation"] = version
        if self.http.settings.user_project is not None:
            extra["userProject"] = self.http.settings.user_project  # as python-storage signs it
        email, signer = await self._signer(key)
        # The endpoint the bucket uses (Google's vectors: "endpoint on client"), else storage.{universe}.
        return await sign_v4(
            base_url=self.http.api_root,
            bucket=self.bucket,
            key=key,
            method=method,
            ttl=ttl,
            client_email=email,
            signer=signer,
            extra_query=extra,
            content_type=content_type if method == "PUT" else None,
            not_exists=not_exists and method == "PUT",
        )

    async def _signer(self, key: str) -> tuple[str, Signer]:
        """(the signing account's email, its signer): the local key, else IAM signBlob."""
        if self.http.settings.encryption_key is not None:
            raise NotSupported(
                "signed URLs and upload forms for a bucket with a customer-supplied encryption key "
                "would need the key in every client's headers; aiobucket does not make them",
                key=key,
            )
        auth = self.http.auth
        pair = auth.private_key()
        if pair is not None:
            return pair[0], pem_signer(pair[1], key)
        if auth.is_emulator:
            raise NotSupported(
                "signing against an emulator needs a service-account key: set the bucket's "
                "service_file option to a service-account JSON file",
                key=key,
            )
        email = await self.http.signing_email(key)
        return email, sign_blob_signer(self.http, email, key)

    async def aclose(self) -> None:
        await self.http.aclose()


def create(settings: BucketSettings, name: str, config: BucketConfig) -> Provider:
    """``gs://cloud-name[?endpoint=URL][&emulator=true]``; the cloud name defaults to the bucket name.

    A URL's ``prefix=`` never reaches here: config turns it into ``key_prefix``.
    """
    cloud_name, http = http_settings(settings, name)
    return GcsProvider(cloud_name, versioned=config.versioned, http=http)
