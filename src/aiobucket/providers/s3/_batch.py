"""delete_many() on S3: one DeleteObjects call per batch of up to 1,000 keys.

DeleteObjects reports a missing key as deleted, but the contract wants
ObjectNotFound in its slot. The cheap correct way chosen here: list the keys'
common prefix first (a bulk delete walks a listing and removes what it saw, so
the batch's keys are the first ones left under that prefix: one or two pages of
ListObjectsV2 cover them), and HEAD only the keys those pages did not show (a
sparse batch). No start-after: some servers (SeaweedFS) do not list in byte
order, so only a complete listing may prove a key absent. Keys found absent
get ObjectNotFound and are not sent; the rest go in one DeleteObjects (quiet
mode, so only failures come back). A key deleted by someone else between the
listing and the batch is reported deleted: the same race a HEAD-then-DELETE has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ...errors import BucketError, ObjectNotFound
from .._http.transport import Response
from ..base import delete_each
from ._fallback import learn
from ._multipart import xml_body
from ._xml import delete_body, parse_delete, parse_list

if TYPE_CHECKING:
    from ._provider import S3Provider

__all__ = ["delete_batch"]

_LIST_PAGES = 2
"""Listing pages spent looking for a batch's keys before HEADing the rest."""


def _common_prefix(keys: Sequence[str]) -> str:
    first, last = min(keys), max(keys)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


async def _present(p: S3Provider, keys: Sequence[str]) -> set[str]:
    wanted = set(keys)
    params: dict[str, str] = {
        "list-type": "2",
        "encoding-type": "url",  # a foreign key with a control character must not break the page
        "prefix": _common_prefix(keys),
        "max-keys": "1000",
    }
    found: set[str] = set()
    for _ in range(_LIST_PAGES):
        resp = await p.send("remove", "GET", None, query=sorted(params.items()))
        if resp.status >= 300:
            raise p.fail(resp, "remove", None)
        page = parse_list(resp.body, versions=False)
        found.update(e.name for e in page.entries if e.name in wanted)
        if not page.truncated:
            return found  # the whole range was listed: what is not there is missing
        if len(found) == len(wanted):
            return found
        params["continuation-token"] = page.token or ""
    # A sparse batch (or a server that does not list in byte order): HEAD the rest.
    rest = [k for k in wanted if k not in found]
    limit = asyncio.Semaphore(16)

    async def exists(key: str) -> None:
        async with limit:
            try:
                await p.head(key)
            except ObjectNotFound:
                return
            found.add(key)

    async with asyncio.TaskGroup() as tg:
        for key in rest:
            tg.create_task(exists(key))
    return found


async def _one_by_one(
    p: S3Provider, keys: Sequence[str], send: list[str], results: list[BucketError | None]
) -> list[BucketError | None]:
    """DeleteObject per key (16 at a time), for a store without DeleteObjects."""

    async def one(key: str) -> None:
        resp = await p.send("remove", "DELETE", key, shield=True)
        if resp.status >= 300 and resp.status != 404:
            raise p.fail(resp, "remove", key)

    done = dict(zip(send, await delete_each(one, send), strict=True))
    for i, key in enumerate(keys):
        if key in done:
            results[i] = done[key]
    return results


async def delete_batch(p: S3Provider, keys: Sequence[str]) -> list[BucketError | None]:
    results: list[BucketError | None] = [None] * len(keys)
    if not keys:
        return results
    present = await _present(p, keys)
    send = sorted({k for k in keys if k in present})
    for i, key in enumerate(keys):
        if key not in present:
            results[i] = ObjectNotFound("object not found", key=key)
    if not send:
        return results
    if not p.store.bulk_delete:
        return await _one_by_one(p, keys, send, results)
    body = delete_body(send)
    headers, payload_hash = await xml_body(p, body)
    resp = await p.send(
        "remove", "POST", None, query=[("delete", "")], headers=headers, body=body,
        payload_hash=payload_hash, shield=True,
    )  # fmt: skip
    if resp.status == 501 or resp.code == "NotImplemented":
        learn(p, "the store has no DeleteObjects (501)", bulk_delete=False)
        return await _one_by_one(p, keys, send, results)
    if resp.status >= 300:
        raise p.fail(resp, "remove", None)
    failed = parse_delete(resp.body)
    for i, key in enumerate(keys):
        if key in failed:
            code, message = failed[key]
            fake = Response(403 if code == "AccessDenied" else 500, resp.headers, b"")
            fake.code, fake.message = code, message
            results[i] = p.fail(fake, "remove", key)
    return results
