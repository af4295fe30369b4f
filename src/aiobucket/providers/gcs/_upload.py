"""Streaming uploads as GCS resumable sessions, driven chunk by chunk.

The writer above calls ``put_part`` strictly in order, one at a time. A chunk
cannot be sent before we know whether it is the last one (the last PUT must
carry the total size), so the most recent chunk is held back and the previous
one is sent with ``Content-Range: bytes a-b/*``. ``complete()`` sends the held
chunk with the total. At most two chunks are alive: the writer's buffer and the
one held here.

Faults (decided by ``RetryPolicy.resumable``):

* A chunk PUT is never repeated blindly. After a transient failure (connection
  error, 408, 429, 5xx) the session's committed offset is queried
  (``bytes */*``) and the chunk is resent from that offset.
* A session that answers "finished" to a query is accepted only for the final
  chunk, and only if the stored object has every byte we sent and our CRC32C;
  a session finished early is IntegrityError (the truncated object is removed).
* A final chunk whose answer was lost and whose session is then gone (404/410)
  is resolved by reading the object back (``_outcome.py``): ours is success,
  anything else OutcomeUnknown.
* The final chunk carries ``X-Goog-Hash: crc32c=...`` so GCS refuses changed
  bytes; the finished object's CRC32C is compared with ours as well.
* A ``not_exists`` upload refused with 429 until the retry deadline at its
  session's start or its final chunk (or that chunk's offset query: others hold
  the key at GCS's one-write-per-second limit) is settled by reading the object
  (``_outcome.rate_limited``): ours (by size and CRC32C, final chunk only) is
  success, anything else PreconditionFailed, never BackendError.

``abort()`` DELETEs the session URI.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from ..._checksum import Crc32c
from ...errors import BackendError, IntegrityError, InvalidArgument, OutcomeUnknown, PreconditionFailed
from ...types import ObjectAttrs
from ..base import Part, PartOrder, PutOptions
from ._http import HttpError, Kind, error_for_status
from ._outcome import Written, rate_limited, read_back
from ._resource import attrs_from_resource, resource_metadata

if TYPE_CHECKING:
    from ._provider import GcsProvider

CHUNK_MULTIPLE = 256 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d+)")


class ResumableUpload:
    """One resumable session; started lazily by the first part."""

    def __init__(self, provider: GcsProvider, key: str, opts: PutOptions) -> None:
        self._p = provider
        self._key = key
        self._opts = opts
        self._session_uri: str | None = None
        self._generation: str | None = None  # the ifGenerationMatch the session was started with
        self._held: bytes | None = None
        self._offset = 0  # bytes the server has committed
        self._crc = Crc32c()  # of every byte accepted so far, in stream order
        self._order = PartOrder()
        self._done = False

    @property
    def session_uri(self) -> str | None:
        return self._session_uri

    async def _start(self) -> str:
        if self._session_uri is None:
            p = self._p
            conditions = await p.preconditions(self._key, self._opts.preconditions)
            gen = conditions.get("ifGenerationMatch")
            params = {
                "uploadType": "resumable",
                "name": self._key,
                **conditions,
                **p.kms_params("kmsKeyName"),
            }
            o = self._opts
            body = json.dumps(
                resource_metadata(
                    o.content_type,
                    o.cache_control,
                    o.content_disposition,
                    o.metadata,
                    name=self._key,
                    content_encoding=o.content_encoding,
                )
            ).encode()
            headers = {
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Type": o.content_type,
            }
            try:
                # Starting a session creates nothing visible, so a retry is harmless.
                reply = await p.http.call(
                    "POST",
                    p.http.bucket_url(p.bucket, upload=True),
                    kind=Kind.READ,
                    key=self._key,
                    what="start resumable upload",
                    params=params,
                    headers=headers,
                    data=body,
                )
            except HttpError as exc:
                if exc.status == 429 and self._opts.preconditions.not_exists:
                    await self._refused(exc, exc.attempts, None)  # nothing of ours is stored: raises
                raise p.bucket_error(exc, self._key, "start resumable upload") from exc
            location = reply.headers.get("Location")
            if not location:
                raise BackendError("GCS did not return a resumable session URI", key=self._key)
            self._session_uri, self._generation = location, gen
        return self._session_uri

    async def put_part(self, number: int, data: bytes | bytearray | memoryview) -> Part:
        if self._done:
            raise InvalidArgument("the upload is already finished", key=self._key)
        self._order.take(number)
        await self._start()
        if self._held is not None:
            held, self._held = self._held, None
            if len(held) % CHUNK_MULTIPLE:
                raise InvalidArgument(
                    f"GCS resumable chunks must be a multiple of 256 KiB; got {len(held)} bytes",
                    key=self._key,
                )
            await self._send(held, final=False)
        self._held = bytes(data)
        self._crc.update(self._held)
        return Part(number, "", len(data))

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        if self._done:
            raise InvalidArgument("the upload is already finished", key=self._key)
        await self._start()
        held, self._held = self._held or b"", None
        resource = await self._send(held, final=True)
        self._done = True
        if resource is None:
            raise BackendError("GCS did not confirm the finished upload", key=self._key)
        return attrs_from_resource(resource, versioned=self._p.versioned)

    async def abort(self) -> None:
        self._held = None
        if self._done:
            return
        self._done = True
        uri = self._session_uri
        if uri is None:
            return
        try:
            await self._p.http.call(
                "DELETE",
                uri,
                kind=Kind.READ,
                key=self._key,
                what="cancel resumable upload",
                ok=(200, 204, 404, 410, 499),
            )
        except HttpError as exc:
            raise error_for_status(exc.status, exc.body, key=self._key, what="cancel upload") from exc

    # -- chunk transfer --------------------------------------------------------

    async def _send(self, chunk: bytes, final: bool) -> dict[str, Any] | None:
        """PUT ``chunk`` at the committed offset; resume after transient failures.

        Returns the object resource when the upload finished (final chunk).
        """
        p = self._p
        uri = self._session_uri
        assert uri is not None
        start = self._offset
        end = start + len(chunk)
        total = str(end) if final else "*"
        policy = p.http.settings.retry
        started = policy.start()
        view = memoryview(chunk)
        attempt = 0
        sent = False  # an attempt may have reached the server
        while True:
            data = view[self._offset - start :]
            headers = {
                "Content-Range": f"bytes {self._offset}-{end - 1}/{total}" if data else f"bytes */{total}",
                # GCS ignores it on chunk PUTs; some emulators take the object's type from it.
                "Content-Type": self._opts.content_type,
            }
            if final:
                headers["X-Goog-Hash"] = f"crc32c={self._crc.b64()}"
            try:
                reply = await p.http.call(
                    "PUT",
                    uri,
                    kind=Kind.ONCE,
                    key=self._key,
                    what="upload chunk",
                    headers=headers,
                    data=data,
                    ok=(200, 201, 308),
                    long=True,
                    shield=final,  # the final chunk is the commit
                )
                resource = self._answer(reply.status, reply.headers, reply.body)
            except HttpError as exc:
                if exc.status in (404, 410) and final and sent:
                    return await self._lost_final(end)
                if not policy.resumable(attempt, status=exc.status):
                    return await self._given_up(exc, attempt + 1, end, final)
                answer, reason = exc.headers, str(exc.status)  # a Retry-After is honoured
                refusal: HttpError | None = exc
                failure: Exception = self._chunk_error(exc)
            except BackendError as exc:
                # A dropped connection or a cut answer: part of the chunk may be committed.
                cause = exc.__cause__ or exc
                if not policy.resumable(attempt, exc=cause):
                    raise
                answer, reason = None, type(cause).__name__
                refusal, failure = None, exc
            else:
                if resource is not None:
                    return await self._finished(resource, end, final)
                self._check_offset(start, end)
                if self._offset == end and not final:
                    return None
                # The server kept less than we sent (or wants the final total): resend from its offset.
                attempt += 1
                if (policy.attempts is not None and attempt >= policy.attempts) or policy.remaining(
                    started
                ) <= 0:
                    raise BackendError(
                        f"GCS keeps committing only {self._offset} of {end} bytes", key=self._key
                    )
                continue
            sent = True
            if not await policy.wait(attempt, started, answer, what="upload chunk", reason=reason):
                if refusal is not None:  # the retry budget is spent
                    return await self._given_up(refusal, attempt + 1, end, final)
                raise failure
            attempt += 1
            resource = await self._query(total, final, end)
            if resource is not None:
                return await self._finished(resource, end, final)
            self._check_offset(start, end)
            if self._offset == end and not final:
                return None

    def _answer(self, status: int, headers: Any, body: bytes) -> dict[str, Any] | None:
        """A chunk or query answer: 308 updates the committed offset, else the resource."""
        if status == 308:
            self._offset = _committed(headers.get("Range"))
            return None
        try:
            out = json.loads(body)
        except ValueError as exc:
            raise BackendError("GCS sent a non-JSON upload response", key=self._key) from exc
        return out if isinstance(out, dict) else {}

    def _check_offset(self, start: int, end: int) -> None:
        if not start <= self._offset <= end:
            raise BackendError(
                f"GCS reports {self._offset} bytes committed, outside the chunk {start}-{end}",
                key=self._key,
            )

    async def _query(self, total: str, final: bool, end: int) -> dict[str, Any] | None:
        """Ask the session how much it has; returns the resource if it already finished."""
        p = self._p
        assert self._session_uri is not None
        try:
            reply = await p.http.call(
                "PUT",
                self._session_uri,
                kind=Kind.READ,
                key=self._key,
                what="query upload offset",
                headers={"Content-Range": f"bytes */{total}"},
                ok=(200, 201, 308),
            )
        except HttpError as exc:
            if exc.status in (404, 410) and final:
                # The session is gone: did our final chunk finish it before its answer was lost?
                resource = await self._lost_final(end)
                return resource
            return await self._refused(exc, exc.attempts, end, final)
        return self._answer(reply.status, reply.headers, reply.body)

    def _written(self, end: int) -> Written:
        o = self._opts
        replaced = self._generation if self._generation not in (None, "0") else None
        return Written(end, self._crc.b64(), o.content_type, o.metadata, replaced)

    async def _lost_final(self, end: int) -> dict[str, Any]:
        """The final chunk may have finished the upload, and the session is gone: look."""
        p = self._p
        resource = await read_back(
            lambda: p.resource(self._key, None), self._written(end), self._key, "upload"
        )
        if resource is None:
            raise OutcomeUnknown(
                "upload: the session ended while the final chunk's answer was lost, and the object "
                "now stored is not ours; whether ours was stored (and then replaced) cannot be known",
                key=self._key,
            )
        return resource

    async def _finished(self, resource: dict[str, Any], end: int, final: bool) -> dict[str, Any]:
        """Accept a finished session only if it stored exactly what we sent."""
        size = str(resource.get("size", ""))
        if not final or size != str(end):
            await self._p.discard(self._key, resource)
            raise IntegrityError(
                f"GCS finished the upload at {size or 'an unknown number of'} bytes while "
                f"{end} were sent{'' if final else ' and more were to come'}; the object was removed",
                key=self._key,
            )
        crc = resource.get("crc32c")
        if isinstance(crc, str) and crc != self._crc.b64():
            await self._p.discard(self._key, resource)
            raise IntegrityError(
                f"GCS stored bytes whose CRC32C is {crc}, not {self._crc.b64()}; the object was removed",
                key=self._key,
            )
        return resource

    async def _given_up(self, exc: HttpError, attempts: int, end: int, final: bool) -> dict[str, Any]:
        """A chunk refused for good: its error, or (``_refused``) the finished object if ours."""
        return await self._finished(await self._refused(exc, attempts, end, final), end, final)

    async def _refused(
        self, exc: HttpError, attempts: int, end: int | None, final: bool = False
    ) -> dict[str, Any]:
        """A request of the session refused for good: raises its error, except that a
        ``not_exists`` upload held off by 429 is settled by looking at the object, and its
        resource returned if it is ours (only a final chunk's earlier attempt can have stored it)."""
        # Only the requests that meet the object's write limit: the start (where GCS checks
        # the precondition) and the final chunk (the write); a 429 mid-session is a quota.
        if exc.status == 429 and self._opts.preconditions.not_exists and (final or end is None):
            written = self._written(end) if final and end is not None else None
            p = self._p
            return await rate_limited(
                lambda: p.resource(self._key, None), written, self._key, "upload", attempts, exc
            )
        raise self._chunk_error(exc) from exc

    def _chunk_error(self, exc: HttpError) -> Exception:
        if exc.status == 412:
            return PreconditionFailed(
                "precondition failed when the upload was finalized (HTTP 412)", key=self._key
            )
        if exc.status in (404, 410):
            return BackendError(
                f"the resumable upload session is gone (HTTP {exc.status}); start the upload again",
                key=self._key,
            )
        return error_for_status(
            exc.status, exc.body, key=self._key, what="upload chunk", attempts=exc.attempts
        )


def _committed(range_header: str | None) -> int:
    """``Range: bytes=0-N`` means N+1 bytes are committed; no header means none."""
    if not range_header:
        return 0
    m = _RANGE.search(range_header)
    return int(m.group(2)) + 1 if m else 0
