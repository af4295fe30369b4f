"""Staged uploads on Azure: Put Block for each part, one Put Block List to commit.

Invariants:

* Block ids are random per upload and of one fixed length (Azure requires equal
  lengths within a blob): 16 random hex digits, '-', the part number in 6 digits,
  base64-encoded. Two concurrent uploads to one key never share a block id, so they
  can never splice each other's blocks; the later commit finds its blocks discarded
  by the earlier one and fails with InvalidBlockList.
* Every block carries Content-MD5, which Azure checks. The whole object's MD5 is
  computed in stream order (parts may be sent concurrently: each block's MD5 is hashed
  at once, then the part waits for its turn to feed the running MD5) and stored
  as ``x-ms-blob-content-md5`` at commit, so whole reads are verified.
* The commit carries the preconditions; a refused or InvalidBlockList commit after an
  attempt that may have been applied is resolved by the stored MD5.
* Abort is local: uncommitted blocks are discarded by Azure itself (after a week, or at
  the blob's next commit), and there is no call to make.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from typing import TYPE_CHECKING
from urllib.parse import quote

from ...errors import InvalidArgument
from ...types import ObjectAttrs
from .._http.headers import precondition_headers
from ..base import MiB, Part, PutOptions
from ._provider import MAX_BLOCK
from ._xml import block_list_body

if TYPE_CHECKING:
    from ._provider import AzureProvider

__all__ = ["Upload", "block_id"]

_SLICE = MiB


def block_id(upload: str, number: int) -> str:
    return base64.b64encode(f"{upload}-{number:06d}".encode()).decode()


class Upload:
    def __init__(self, provider: AzureProvider, key: str, opts: PutOptions) -> None:
        self._provider = provider
        self._key = key
        self._opts = opts
        self._upload = secrets.token_hex(8)
        self._whole = hashlib.md5(usedforsecurity=False)
        self._hashed = 0
        self._turn = asyncio.Condition()
        self._size = 0

    async def _digest(self, number: int, data: memoryview) -> bytes:
        """The block's MD5 (parts hash concurrently), and the whole object's MD5 fed in
        part order (each part waits for its turn; a resent part number feeds it once)."""
        small = data.nbytes < _SLICE

        def block_md5() -> bytes:
            return hashlib.md5(data, usedforsecurity=False).digest()

        digest = block_md5() if small else await asyncio.to_thread(block_md5)
        async with self._turn:
            await self._turn.wait_for(lambda: self._hashed >= number - 1)
            if self._hashed == number - 1:
                whole = self._whole

                def feed() -> None:
                    for i in range(0, data.nbytes, _SLICE):
                        whole.update(data[i : i + _SLICE])

                if small:
                    feed()
                else:
                    await asyncio.to_thread(feed)
                self._hashed = number
                self._size += data.nbytes
                self._turn.notify_all()
        return digest

    async def put_part(self, number: int, data: bytes | bytearray | memoryview) -> Part:
        view = memoryview(data).cast("B")
        if view.nbytes > MAX_BLOCK:
            raise InvalidArgument(
                f"a block takes at most {MAX_BLOCK} bytes (Put Block), not {view.nbytes}; "
                "use a smaller part_size",
                key=self._key,
            )
        md5 = await self._digest(number, view)
        bid = block_id(self._upload, number)
        resp = await self._provider.send(
            "upload part",
            "PUT",
            self._key,
            query=[("comp", "block"), ("blockid", quote(bid, safe=""))],
            headers={"content-md5": base64.b64encode(md5).decode()},
            body=view,
            shield=True,
        )
        if resp.status >= 300:
            raise self._provider.fail(resp, "upload part", self._key)
        return Part(number, bid, view.nbytes)

    async def complete(self, parts: list[Part]) -> ObjectAttrs:
        from ._provider import object_headers

        if [p.number for p in parts] != list(range(1, len(parts) + 1)) or self._hashed != len(parts):
            raise InvalidArgument(f"complete: parts must be 1..N, each uploaded once (got {len(parts)})")
        md5 = self._whole.hexdigest()
        body = block_list_body([p.etag for p in parts])
        headers = {
            "content-md5": base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode(),
            "x-ms-blob-content-md5": base64.b64encode(bytes.fromhex(md5)).decode(),
            **object_headers(self._opts),
            **precondition_headers(self._opts.preconditions),
        }
        p = self._provider
        resp = await p.send(
            "upload", "PUT", self._key, query=[("comp", "blocklist")], headers=headers, body=body, shield=True
        )
        if resp.status == 400 and resp.code == "InvalidBlockList" and resp.maybe_applied:
            # An earlier attempt may have committed these blocks (they are gone now).
            return await p.resolve("upload", self._key, md5, resp)
        return await p.written("upload", self._key, resp, self._opts, self._size, md5)

    async def abort(self) -> None:
        """Nothing to call: Azure discards uncommitted blocks itself."""
        return None
