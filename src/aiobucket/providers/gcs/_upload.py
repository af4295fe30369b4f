"""Streaming uploads as GCS resumable sessions, driven chunk by chunk.

The writer above calls ``put_part`` strictly in order, one at a time. A chunk
cannot be sent before we know whether it is the last one (the last PUT must
carry the total size), so the most recent chunk is held back and the previous
one is sent with ``Content-Range: bytes a-b/*``. ``complete()`` sends the held
chunk with the total. At most two chunks are alive: the writer's buffer and the
one held here.

A chunk PUT that fails with a retryable error (connection error, 408, 429, 5xx)
is resumed: the session's committed offset is queried (``bytes */*``) and the
rest of the chunk is resent from there. ``abort()`` DELETEs the session URI.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

import aiohttp

from ...errors import BackendError, InvalidArgument, PreconditionFailed
from ...types import ObjectAttrs
from ..base import Part, PartOrder, PutOptions
from ._http import (
    RETRYABLE_STATUS,
    HttpError,
    attrs_from_resource,
    connection_error,
    error_for_status,
    resource_metadata,
)

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
        self._held: bytes | None = None
        self._offset = 0  # bytes the server has committed
        self._order = PartOrder()
        self._done = False

    @property
    def session_uri(self) -> str | None:
        return self._session_uri

    async def _start(self) -> str:
        if self._session_uri is None:
            p = self._p
            params = {"uploadType": "resumable", "name": self._key}
            gen = await p.precondition_generation(self._key, self._opts.preconditions)
            if gen is not None:
                params["ifGenerationMatch"] = gen
            o = self._opts
            body = json.dumps(
                resource_metadata(
                    o.content_type, o.cache_control, o.content_disposition, o.metadata, name=self._key
                )
            ).encode()
            headers = {
                "Content-Type": "application/json; charset=UTF-8",
                "X-Upload-Content-Type": o.content_type,
            }
            try:
                # Starting a session creates nothing visible, so a retry is harmless.
                resp = await p.http.request(
                    "POST",
                    p.http.bucket_url(p.bucket, upload=True),
                    key=self._key,
                    idempotent=True,
                    params=params,
                    headers=headers,
                    data=body,
                    what="start resumable upload",
                )
            except HttpError as exc:
                raise p.bucket_error(exc, self._key, "start resumable upload") from exc
            location = resp.headers.get("Location")
            resp.release()
            if not location:
                raise BackendError("GCS did not return a resumable session URI", key=self._key)
            self._session_uri = location
        return self._session_uri

    async def put_part(self, number: int, data: bytes | bytearray) -> Part:
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
            await self._send(held, final_total=None)
        self._held = bytes(data)
        return Part(number, "", len(data))

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        if self._done:
            raise InvalidArgument("the upload is already finished", key=self._key)
        await self._start()
        held, self._held = self._held or b"", None
        resource = await self._send(held, final_total=self._offset + len(held))
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
        p = self._p
        try:
            resp = await p.http.request(
                "DELETE",
                uri,
                key=self._key,
                idempotent=True,
                ok=(200, 204, 404, 410, 499),
                what="cancel resumable upload",
            )
            resp.release()
        except HttpError as exc:
            raise error_for_status(exc.status, exc.body, key=self._key, what="cancel upload") from exc

    # -- chunk transfer --------------------------------------------------------

    async def _send(self, chunk: bytes, final_total: int | None) -> dict[str, Any] | None:
        """PUT ``chunk`` at the committed offset; resume after retryable failures.

        Returns the object resource when the upload finished (final chunk).
        """
        p = self._p
        uri = self._session_uri
        assert uri is not None
        start = self._offset
        end = start + len(chunk)
        total = "*" if final_total is None else str(final_total)
        policy = p.http.settings.retry
        attempt = 0
        while True:
            sent_from = self._offset
            data = chunk if sent_from == start else chunk[sent_from - start :]
            content_range = f"bytes {sent_from}-{end - 1}/{total}" if data else f"bytes */{total}"
            headers = {
                "Content-Range": content_range,
                # GCS ignores it on chunk PUTs; some emulators take the object's type from it.
                "Content-Type": self._opts.content_type,
            }
            try:
                resp = await p.http.request(
                    "PUT",
                    uri,
                    key=self._key,
                    idempotent=False,
                    headers=headers,
                    data=data,
                    ok=(200, 201, 308),
                    stream=True,
                    what="upload chunk",
                )
                status, resource = await self._read(resp)
            except HttpError as exc:
                if exc.status not in RETRYABLE_STATUS or attempt + 1 >= policy.attempts:
                    raise self._chunk_error(exc) from exc
            except BackendError:
                # A connection error: the chunk may be partly committed.
                if attempt + 1 >= policy.attempts:
                    raise
            else:
                if status != 308:
                    self._offset = end
                    if final_total is None:
                        raise BackendError("GCS finished the upload before the last chunk", key=self._key)
                    return resource
                if not start <= self._offset <= end:
                    raise BackendError(
                        f"GCS reports {self._offset} bytes committed, outside the chunk {start}-{end}",
                        key=self._key,
                    )
                if self._offset == end and final_total is None:
                    return None
                # The server kept less than we sent (or wants the final total):
                # resend from its offset.
                attempt += 1
                if attempt >= policy.attempts:
                    raise BackendError(
                        f"GCS keeps committing only {self._offset} of {end} bytes", key=self._key
                    )
                continue
            await asyncio.sleep(policy.delay(attempt))
            attempt += 1
            resource = await self._query(final_total)
            if resource is not None:
                self._offset = end
                return resource
            if not start <= self._offset <= end:
                raise BackendError(
                    f"GCS reports {self._offset} bytes committed, outside the chunk {start}-{end}",
                    key=self._key,
                )
            if self._offset == end and final_total is None:
                return None

    async def _read(self, resp: aiohttp.ClientResponse) -> tuple[int, dict[str, Any] | None]:
        """Read a chunk or query response: 308 updates the committed offset."""
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise connection_error(exc, self._p.http.api_root, "upload chunk", self._key) from exc
        finally:
            resp.release()
        if resp.status == 308:
            self._offset = _committed(resp.headers.get("Range"))
            return 308, None
        try:
            out = json.loads(raw)
        except ValueError as exc:
            raise BackendError("GCS sent a non-JSON upload response", key=self._key) from exc
        return resp.status, out if isinstance(out, dict) else {}

    async def _query(self, final_total: int | None) -> dict[str, Any] | None:
        """Ask the session how much it has; returns the resource if it already finished."""
        p = self._p
        assert self._session_uri is not None
        total = "*" if final_total is None else str(final_total)
        try:
            resp = await p.http.request(
                "PUT",
                self._session_uri,
                key=self._key,
                idempotent=True,
                headers={"Content-Range": f"bytes */{total}"},
                ok=(200, 201, 308),
                what="query upload offset",
            )
        except HttpError as exc:
            raise self._chunk_error(exc) from exc
        status, resource = await self._read(resp)
        return None if status == 308 else resource

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
        return error_for_status(exc.status, exc.body, key=self._key, what="upload chunk")


def _committed(range_header: str | None) -> int:
    """``Range: bytes=0-N`` means N+1 bytes are committed; no header means none."""
    if not range_header:
        return 0
    m = _RANGE.search(range_header)
    return int(m.group(2)) + 1 if m else 0
