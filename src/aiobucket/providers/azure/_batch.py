"""``delete_many`` on Azure: one Blob Batch request of up to 256 Delete Blob subrequests.

Invariants:

* Each subrequest is authorised on its own (SharedKey signature, bearer token or SAS
  query), as Azure requires; the batch request itself is authorised as usual.
* Results are matched to keys by the subrequests' Content-ID, never by position; a key
  whose result is missing gets a BackendError in its slot.
* A missing key is ObjectNotFound in its slot, except after an attempt of the batch
  that may have been applied, when it is taken as removed by that attempt.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from multidict import CIMultiDict, CIMultiDictProxy

from ...errors import BackendError, BucketError
from .._http.transport import Response
from ._errors import error_for

if TYPE_CHECKING:
    from ._provider import AzureProvider

__all__ = ["MAX_BATCH", "delete_batch"]

MAX_BATCH = 256
_STATUS = re.compile(rb"^HTTP/1\.1 (\d{3})", re.M)
_CONTENT_ID = re.compile(rb"^content-id:\s*(\d+)\s*$", re.M | re.I)
_ERROR_CODE = re.compile(rb"^x-ms-error-code:\s*(\S+)\s*$", re.M | re.I)


async def _body(p: AzureProvider, keys: Sequence[str], boundary: str) -> bytes:
    from ._provider import _now_http_date

    date = _now_http_date()
    out: list[str] = []
    for i, key in enumerate(keys):
        path = p.path_of(key)
        headers = {"x-ms-date": date, "content-length": "0"}
        query = await p.auth.authorize("DELETE", path, [], headers)
        target = path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
        lines = [
            f"--{boundary}",
            "Content-Type: application/http",
            "Content-Transfer-Encoding: binary",
            f"Content-ID: {i}",
            "",
            f"DELETE {target} HTTP/1.1",
            *(f"{k}: {v}" for k, v in headers.items()),
            "",
            "",
        ]
        out.append("\r\n".join(lines))
    out.append(f"--{boundary}--\r\n")
    return "".join(out).encode()


async def delete_batch(p: AzureProvider, keys: Sequence[str]) -> list[BucketError | None]:
    from ._provider import check_key

    results: list[BucketError | None] = [None] * len(keys)
    if not keys:
        return results
    if len(keys) > MAX_BATCH:
        raise ValueError(f"a Blob Batch takes at most {MAX_BATCH} keys")
    for i, key in enumerate(keys):
        try:
            check_key(key)
        except BucketError as exc:
            results[i] = exc
    todo = [i for i in range(len(keys)) if results[i] is None]
    if not todo:
        return results
    boundary = "batch_" + secrets.token_hex(16)
    body = await _body(p, [keys[i] for i in todo], boundary)
    resp = await p.send(
        "remove many",
        "POST",
        None,
        query=[("restype", "container"), ("comp", "batch")],
        headers={"content-type": f"multipart/mixed; boundary={boundary}"},
        body=body,
        shield=True,
    )
    if resp.status >= 300:
        raise p.fail(resp, "remove many", None)
    seen: set[int] = set()
    for part in _parts(resp):
        cid = _CONTENT_ID.search(part)
        status = _STATUS.search(part)
        if cid is None or status is None or int(cid.group(1)) >= len(todo):
            continue
        n = int(cid.group(1))
        seen.add(n)
        code = int(status.group(1))
        if code < 300 or (code == 404 and resp.maybe_applied):
            continue
        err_code = _ERROR_CODE.search(part)
        sub = Response(code, CIMultiDictProxy(CIMultiDict()), b"")
        sub.code = err_code.group(1).decode() if err_code else ""
        sub.message = sub.code
        results[todo[n]] = error_for(sub, op="remove", container=p.container, key=keys[todo[n]])
    for n, i in enumerate(todo):
        if n not in seen:
            results[i] = BackendError("remove many: the batch answer has no result for this key", key=keys[i])
    return results


def _parts(resp: Response) -> list[bytes]:
    ctype = resp.headers.get("content-type", "")
    m = re.search(r"boundary=([^;\s]+)", ctype)
    if m is None:
        raise BackendError(f"remove many: the batch answer is not multipart ({ctype!r})")
    delimiter = b"--" + m.group(1).strip('"').encode()
    return resp.body.split(delimiter)[1:]
